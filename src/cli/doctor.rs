//! `bulkhead doctor`: checks what an installed appliance needs (CPU features, models, key
//! file permissions, disk space, TLS files) and says what to fix. Reads nothing of any
//! tenant and changes nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::Config;

use super::UserFailure;

/// Free space below which the data directory's disk is a failure (uploads, indexes and
/// the WAL need room).
const MIN_FREE_BYTES: u64 = 1 << 30;

enum Verdict {
    Ok(String),
    Warn(String),
    Fail(String),
}

pub(super) fn doctor(
    config: &Config,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
) -> Result<(), UserFailure> {
    let mut verdicts = vec![cpu()];
    verdicts.extend(models(config));
    verdicts.extend(keys(&config.data_dir));
    verdicts.extend(private_models(config));
    verdicts.push(disk(&config.data_dir));
    verdicts.extend(tls(tls_cert.as_deref(), tls_key.as_deref()));
    let mut failed = 0;
    for verdict in &verdicts {
        match verdict {
            Verdict::Ok(line) => println!("ok    {line}"),
            Verdict::Warn(line) => println!("warn  {line}"),
            Verdict::Fail(line) => {
                failed += 1;
                println!("FAIL  {line}");
            }
        }
    }
    if failed == 0 {
        println!("the appliance is ready");
        Ok(())
    } else {
        Err(UserFailure(format!(
            "{failed} check(s) failed: fix what the FAIL lines say, then run `bulkhead doctor` again"
        )))
    }
}

fn cpu() -> Verdict {
    #[cfg(target_arch = "x86_64")]
    {
        let missing: Vec<&str> = [
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("f16c", std::arch::is_x86_feature_detected!("f16c")),
        ]
        .into_iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| name)
        .collect();
        if missing.is_empty() {
            Verdict::Ok("CPU has AVX2, FMA and F16C (fast inference)".into())
        } else {
            Verdict::Warn(format!(
                "CPU lacks {}: answers will be slow; use a CPU from 2015 or later (Haswell, Zen)",
                missing.join(", ")
            ))
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Verdict::Ok(format!("CPU architecture {}", std::env::consts::ARCH))
    }
}

/// Enterprise tenants' own models (issue 12): each pinned file present with its checksum.
/// Reads the pins only (no tenant data); nothing when the data directory is not ready.
fn private_models(config: &Config) -> Vec<Verdict> {
    let Ok(appliance) = crate::appliance::Appliance::open(config.clone()) else {
        return Vec::new();
    };
    let Ok(models) = appliance.private_models() else {
        return Vec::new();
    };
    models
        .into_iter()
        .map(
            |(tenant, model)| match crate::appliance::check_model_file(&model) {
                Ok(()) => Verdict::Ok(format!(
                    "tenant {tenant}'s own model {} (sha256 {})",
                    model.path.display(),
                    model.sha256
                )),
                Err(problem) => Verdict::Fail(format!("tenant {tenant}: {problem}")),
            },
        )
        .collect()
}

fn models(config: &Config) -> Vec<Verdict> {
    let fetch = format!(
        "run models/fetch.sh from the source tree (with --optional NAME for an optional model chosen by --llm), or copy models/ to {}",
        config.models_dir.display()
    );
    let mut verdicts = Vec::new();
    let mut required: Vec<PathBuf> = ["config.json", "tokenizer.json", "model.safetensors"]
        .iter()
        .map(|name| config.embedding_model_dir.join(name))
        .collect();
    required.push(config.llm_model.clone());
    for path in required {
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() > 0 => {
                verdicts.push(Verdict::Ok(format!("model file {}", path.display())))
            }
            _ => verdicts.push(Verdict::Fail(format!(
                "model file {} is missing: {fetch}",
                path.display()
            ))),
        }
    }
    verdicts
}

fn keys(data_dir: &Path) -> Vec<Verdict> {
    if !data_dir.join(crate::store::DATABASE_FILE).exists() {
        return vec![Verdict::Fail(format!(
            "{} is not initialised: run `bulkhead --data-dir {} init` as the service user (keys are never created silently)",
            data_dir.display(),
            data_dir.display()
        ))];
    }
    let mut verdicts = Vec::new();
    let master_from_env = std::env::var_os(crate::store::MASTER_KEY_ENV).is_some();
    for (name, optional) in [
        (crate::store::MASTER_KEY_FILE, master_from_env),
        (crate::auth::tokens::SIGNING_KEY_FILE, false),
    ] {
        let path = data_dir.join(name);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.permissions().mode() & 0o077 == 0 => {
                verdicts.push(Verdict::Ok(format!("{} is private (0600)", path.display())))
            }
            Ok(meta) => verdicts.push(Verdict::Fail(format!(
                "{} is readable by others (mode {:o}): chmod 600 {}",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            ))),
            Err(_) if optional => verdicts.push(Verdict::Ok(format!(
                "master key from {}",
                crate::store::MASTER_KEY_ENV
            ))),
            Err(_) => verdicts.push(Verdict::Fail(format!(
                "{} is missing: restore it from your backup (without it the data cannot be read)",
                path.display()
            ))),
        }
    }
    verdicts
}

fn disk(data_dir: &Path) -> Verdict {
    let mut dir = data_dir;
    while !dir.exists() {
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => dir = parent,
            _ => {
                dir = Path::new(".");
                break;
            }
        }
    }
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return Verdict::Warn(format!("cannot check the free space of {}", dir.display()));
    };
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stats` a valid, writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return Verdict::Warn(format!("cannot check the free space of {}", dir.display()));
    }
    let free = stats.f_bavail as u64 * stats.f_frsize as u64;
    let gib = free as f64 / (1u64 << 30) as f64;
    if free < MIN_FREE_BYTES {
        Verdict::Fail(format!(
            "only {gib:.1} GiB free under {}: free space or move the data directory (1 GiB at least)",
            dir.display()
        ))
    } else {
        Verdict::Ok(format!("{gib:.1} GiB free under {}", dir.display()))
    }
}

fn tls(cert: Option<&Path>, key: Option<&Path>) -> Vec<Verdict> {
    match (cert, key) {
        (None, None) => vec![Verdict::Warn(
            "no TLS certificate: serve on loopback behind a TLS proxy, or pass --tls-cert and --tls-key".into(),
        )],
        (Some(_), None) | (None, Some(_)) => vec![Verdict::Fail(
            "TLS needs both --tls-cert and --tls-key".into(),
        )],
        (Some(cert), Some(key)) => {
            let certificate = match std::fs::read(cert) {
                Ok(bytes) if rustls_pemfile::certs(&mut bytes.as_slice()).any(|c| c.is_ok()) => {
                    Verdict::Ok(format!("TLS certificate {}", cert.display()))
                }
                Ok(_) => Verdict::Fail(format!("{} holds no PEM certificate", cert.display())),
                Err(error) => Verdict::Fail(format!("cannot read {}: {error}", cert.display())),
            };
            let private_key = match std::fs::read(key) {
                Ok(bytes)
                    if matches!(
                        rustls_pemfile::private_key(&mut bytes.as_slice()),
                        Ok(Some(_))
                    ) =>
                {
                    Verdict::Ok(format!("TLS private key {}", key.display()))
                }
                Ok(_) => Verdict::Fail(format!("{} holds no PEM private key", key.display())),
                Err(error) => Verdict::Fail(format!("cannot read {}: {error}", key.display())),
            };
            vec![certificate, private_key]
        }
    }
}
