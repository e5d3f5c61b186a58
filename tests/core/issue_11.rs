//! Issue 11's smaller findings: export file mode, stale temporaries, bounded imports and
//! allow-listed content types.

use std::io::{Cursor, Read};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use bulkhead::appliance::Appliance;
use sha2::Digest;

use crate::support::{cli, config_for, fresh_appliance, ingest, new_tenant, stderr, stdout};

const CONTRACT: &str = "The Supplier shall deliver the hosting services described in Schedule 1. \
    Either party may terminate this agreement with sixty days written notice.";

#[test]
fn issue_11_plaintext_export_is_private_and_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(cli(data, &["init"]).status.success());
    let created = cli(data, &["tenant", "create", "Alpha", "--json"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let tenant: serde_json::Value = serde_json::from_str(&stdout(&created)).unwrap();
    let tenant = tenant["tenant_id"].as_str().unwrap();
    let out = dir.path().join("alpha.tar");
    // Even a file that already exists with a wider mode ends up private.
    std::fs::write(&out, b"old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();

    let exported = cli(
        data,
        &["export", "--tenant", tenant, "--out", out.to_str().unwrap()],
    );
    assert!(exported.status.success(), "{}", stderr(&exported));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "export mode is {mode:o}");
    assert!(
        stderr(&exported).contains("warning") && stderr(&exported).contains("not encrypted"),
        "{}",
        stderr(&exported)
    );
}

#[test]
fn issue_11_stale_temporaries_are_removed_when_the_tenant_opens() {
    let (dir, appliance) = fresh_appliance();
    let alpha = new_tenant(&appliance, "Alpha");
    ingest(&appliance, &alpha, &[("terms.txt", CONTRACT)]);
    drop(appliance);
    let tenant_dir = dir.path().join("tenants").join(alpha.tenant_id().as_str());
    let long_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    let mut planted = Vec::new();
    for area in [tenant_dir.clone(), tenant_dir.join("blobs")] {
        std::fs::create_dir_all(&area).unwrap();
        let stale = area.join(".tmp-0123456789ab");
        std::fs::write(&stale, b"ciphertext left by a crash").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        planted.push(stale);
    }
    // A write in progress in another process is left alone.
    let in_flight = tenant_dir.join("blobs").join(".tmp-in-flight");
    std::fs::write(&in_flight, b"being written").unwrap();

    // Start-up does no per-tenant work (issue 12): the tenant's first use sweeps them.
    let appliance = Appliance::open(config_for(dir.path())).unwrap();
    appliance
        .search(&alpha, "terms", 3, bulkhead::index::SearchMode::Keyword)
        .unwrap();
    for stale in &planted {
        assert!(!stale.exists(), "{} survived the open", stale.display());
    }
    assert!(in_flight.exists());
    // The tenant's real files are untouched.
    assert_eq!(appliance.list_documents(&alpha).unwrap().len(), 1);
}

/// The archive with each file passed through `edit`, and the manifest recomputed to match.
fn rewrite_archive(archive: &[u8], edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let mut files = Vec::new();
    let mut reader = tar::Archive::new(archive);
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if path != "manifest.json" {
            files.push((path.clone(), edit(&path, data)));
        } else {
            files.push((path, data));
        }
    }
    pack(files)
}

/// A tar of `files` (the manifest last), the manifest recomputed to list the others.
fn pack(mut files: Vec<(String, Vec<u8>)>) -> Vec<u8> {
    let (manifest_path, manifest) = files.pop().unwrap();
    assert_eq!(manifest_path, "manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    manifest["files"] = files
        .iter()
        .map(|(path, data)| {
            serde_json::json!({"path": path, "bytes": data.len(), "sha256": hex::encode(sha2::Sha256::digest(data))})
        })
        .collect();
    files.push((manifest_path, manifest.to_string().into_bytes()));
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        builder.append_data(&mut header, path, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

#[test]
fn issue_11_import_allows_known_content_types_only_and_is_bounded() {
    let (dir, appliance) = fresh_appliance();
    let alpha = new_tenant(&appliance, "Alpha");
    ingest(&appliance, &alpha, &[("terms.txt", CONTRACT)]);
    let mut archive = Vec::new();
    appliance.export_tenant(&alpha, &mut archive, None).unwrap();

    let with_content_type = |content_type: &str| {
        rewrite_archive(&archive, |path, data| {
            if !path.ends_with("document.json") {
                return data;
            }
            let mut description: serde_json::Value = serde_json::from_slice(&data).unwrap();
            description["content_type"] = content_type.into();
            description.to_string().into_bytes()
        })
    };
    let beta = new_tenant(&appliance, "Beta");
    for hostile in [
        "text/html\r\nSet-Cookie: session=stolen",
        "application/x-msdownload",
        "image/svg+xml",
        "text/plain; charset=utf-7",
    ] {
        let error = appliance
            .import_tenant(&beta, Cursor::new(with_content_type(hostile)), None)
            .expect_err(hostile)
            .to_string();
        assert!(error.contains("content type"), "{hostile}: {error}");
    }
    assert!(appliance.list_documents(&beta).unwrap().is_empty());
    // A known type (even another one than the original's) still imports.
    let summary = appliance
        .import_tenant(&beta, Cursor::new(with_content_type("text/markdown")), None)
        .unwrap();
    assert_eq!(summary.documents, 1);
    let imported = appliance.list_documents(&beta).unwrap();
    assert_eq!(imported[0].content_type.as_deref(), Some("text/markdown"));
    // ... stored sealed, like the rest of the tenant's content: nowhere in plaintext.
    for file in crate::support::all_files(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(13).any(|window| window == b"text/markdown"),
            "the imported content type in plaintext in {}",
            file.display()
        );
    }

    // Over the configured bounds: refused with a clear error, nothing stored.
    let gamma = new_tenant(&appliance, "Gamma");
    for (max_archive_bytes, max_entry_bytes) in
        [(archive.len() as u64 / 4, u64::MAX), (u64::MAX, 64)]
    {
        let mut config = config_for(dir.path());
        config.import_limits.max_archive_bytes = max_archive_bytes;
        config.import_limits.max_entry_bytes = max_entry_bytes;
        let bounded = Appliance::open(config).unwrap();
        let error = bounded
            .import_tenant(&gamma, Cursor::new(&archive), None)
            .expect_err("over the limit")
            .to_string();
        assert!(error.contains("too large to import"), "{error}");
    }
    assert!(appliance.list_documents(&gamma).unwrap().is_empty());
}

#[test]
fn issue_11_two_indexers_on_one_data_directory_index_each_document_once() {
    // A server and a `bulkhead ingest` are two appliances on one data directory.
    let (dir, first) = fresh_appliance();
    let second = std::sync::Arc::new(Appliance::open(config_for(dir.path())).unwrap());
    let alpha = new_tenant(&first, "Alpha");
    let uploaded: Vec<_> = (0..8)
        .map(|n| {
            let text = format!("Contract number {n}. {CONTRACT}");
            first
                .upload(&alpha, &format!("c{n}.txt"), None, text.as_bytes())
                .unwrap()
        })
        .collect();
    let runs: Vec<_> = [first.clone(), second.clone(), first.clone(), second]
        .into_iter()
        .map(|appliance| {
            let alpha = alpha.clone();
            std::thread::spawn(move || appliance.process_jobs(&alpha, &mut |_| {}).unwrap())
        })
        .collect();
    let outcomes: Vec<_> = runs
        .into_iter()
        .flat_map(|run| run.join().unwrap())
        .collect();
    let mut indexed: Vec<_> = outcomes
        .iter()
        .map(|outcome| {
            assert!(outcome.result.is_ok(), "{:?}", outcome.result);
            outcome.document_id.clone()
        })
        .collect();
    indexed.sort();
    let mut expected = uploaded.clone();
    expected.sort();
    assert_eq!(indexed, expected, "each document indexed exactly once");
    for document_id in &uploaded {
        let record = first.document(&alpha, document_id).unwrap();
        assert_eq!(record.status.as_str(), "indexed", "{:?}", record.error);
    }
    assert_eq!(
        first
            .search(
                &alpha,
                "hosting services",
                3,
                bulkhead::index::SearchMode::Hybrid
            )
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn issue_11_a_deletion_by_another_process_drops_the_cached_key_and_index_at_once() {
    // `server` serves the tenant; `cli` is `bulkhead tenant delete` beside it.
    let (dir, server) = fresh_appliance();
    let alpha = new_tenant(&server, "Alpha");
    let beta = new_tenant(&server, "Beta");
    ingest(&server, &alpha, &[("terms.txt", CONTRACT)]);
    ingest(&server, &beta, &[("terms.txt", CONTRACT)]);
    let search = |appliance: &Appliance, scope| {
        appliance.search(
            scope,
            "hosting services",
            3,
            bulkhead::index::SearchMode::Keyword,
        )
    };
    assert!(!search(&server, &alpha).unwrap().is_empty());

    let wrapped: Vec<u8> = rusqlite::Connection::open(dir.path().join("system.db"))
        .unwrap()
        .query_row(
            "SELECT wrapped_key FROM tenants WHERE tenant_id = ?1",
            [alpha.tenant_id().as_str()],
            |row| row.get(0),
        )
        .unwrap();
    let cli = Appliance::open(config_for(dir.path())).unwrap();
    let signer = bulkhead::auth::tokens::Signer::load(dir.path()).unwrap();
    let deleted = cli
        .delete_tenant(alpha.tenant_id(), "operator", &signer)
        .unwrap();
    let claims = &deleted.certificate["deleted"];
    for field in ["vector_index", "text_index", "blobs"] {
        assert_eq!(claims[field], serde_json::Value::Bool(true), "{field}");
    }
    assert_eq!(
        deleted.certificate["wal_truncated"],
        serde_json::Value::Bool(true)
    );
    // No copy of the wrapped key is left in the database or its WAL.
    for file in ["system.db", "system.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(wrapped.len()).any(|window| window == wrapped),
            "{file} still holds the wrapped key"
        );
    }

    // The server drops the deleted tenant's open index and key, not the other's.
    assert_eq!(
        server.forget_deleted_tenants().unwrap(),
        [alpha.tenant_id().clone()]
    );
    assert!(
        search(&server, &alpha).is_err(),
        "the deleted tenant still answers"
    );
    assert!(!search(&server, &beta).unwrap().is_empty());
}

#[test]
fn issue_11_key_rotate_leaves_a_deleted_tenant_in_old_backups_unrecoverable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(cli(data, &["init"]).status.success());
    let alpha = cli_tenant(data, "Alpha");
    let beta = cli_tenant(data, "Beta");
    // The operator's backup: the database (with its WAL) and the master key.
    let backup = tempfile::tempdir().unwrap();
    for file in ["system.db", "system.db-wal", "master.key"] {
        if data.join(file).exists() {
            std::fs::copy(data.join(file), backup.path().join(file)).unwrap();
        }
    }
    assert!(cli(data, &["tenant", "delete", &beta]).status.success());
    let rotated = cli(data, &["key", "rotate"]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(
        stdout(&rotated).contains("1 tenant keys"),
        "{}",
        stdout(&rotated)
    );
    let listed = cli(data, &["tenant", "list", "--json"]);
    assert!(stdout(&listed).contains(&alpha) && !stdout(&listed).contains(&beta));
    // The old backup does not open with the key that exists now.
    std::fs::copy(data.join("master.key"), backup.path().join("master.key")).unwrap();
    assert!(matches!(
        bulkhead::store::Store::open(backup.path()),
        Err(bulkhead::store::StoreError::WrongMasterKey)
    ));
    assert!(cli(data, &["audit", "verify"]).status.success());
}

/// Finding 6: audit appends that arrive together share one transaction (one fsync), and
/// the chain and its signed checkpoint every 100th entry stay exactly as one by one.
/// Prints rows per second one at a time (what every append cost before: one commit each,
/// behind one connection) and from 8 threads at once.
#[test]
fn issue_11_audit_appends_arriving_together_share_one_commit() {
    use bulkhead::audit::{AuditEvent, Outcome};
    use bulkhead::auth::tokens::Signer;
    use bulkhead::store::Store;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    Store::init(dir.path()).unwrap();
    Signer::init(dir.path()).unwrap();
    let signer = Arc::new(Signer::load(dir.path()).unwrap());
    let mut store = Store::open(dir.path()).unwrap();
    store.set_checkpoint_signer(signer.clone());
    let store = Arc::new(store);
    let event = |n: usize| AuditEvent {
        tenant_id: Some("t_0123456789abcdef0123".into()),
        actor: format!("u_{n}"),
        action: "access.cross_tenant",
        resource: format!("attempt {n}"),
        outcome: Outcome::Denied,
    };

    const ALONE: usize = 60;
    let started = std::time::Instant::now();
    for n in 0..ALONE {
        store.append_audit(&event(n)).unwrap();
    }
    let alone_per_second = ALONE as f64 / started.elapsed().as_secs_f64();
    assert_eq!(
        store.audit_commits(),
        ALONE as u64,
        "one commit per lone append"
    );

    const THREADS: usize = 8;
    const EACH: usize = 40;
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..EACH)
                    .map(|n| {
                        store
                            .append_audit(&event(1000 * (thread + 1) + n))
                            .unwrap()
                            .0
                    })
                    .collect::<Vec<i64>>()
            })
        })
        .collect();
    let mut seqs: Vec<i64> = handles
        .into_iter()
        .flat_map(|handle| handle.join().unwrap())
        .collect();
    let together_per_second = (THREADS * EACH) as f64 / started.elapsed().as_secs_f64();
    let together_commits = store.audit_commits() - ALONE as u64;
    println!(
        "audit appends: {alone_per_second:.0} rows/s one at a time, {together_per_second:.0} rows/s from {THREADS} threads ({} rows in {together_commits} commits)",
        THREADS * EACH
    );
    // Every append got its own distinct sequence number...
    seqs.sort_unstable();
    let total = ALONE + THREADS * EACH;
    assert_eq!(
        seqs,
        ((ALONE as i64 + 1)..=total as i64).collect::<Vec<_>>()
    );
    // ... in fewer transactions than entries ...
    assert!(
        together_commits < (THREADS * EACH) as u64,
        "{together_commits} commits for {} appends arriving together",
        THREADS * EACH
    );
    // ... and the chain verifies with its signed checkpoints at 100, 200 and 300.
    let report = store.verify_audit(signer.as_ref()).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, total);
    let checkpoints: Vec<i64> = store
        .audit_checkpoints()
        .unwrap()
        .into_iter()
        .map(|(seq, _, _)| seq)
        .collect();
    assert_eq!(checkpoints, [100, 200, 300]);
}

/// Small finding: an import streams the archive, holding one document at a time: the
/// `bulkhead import` process's peak memory for 12 documents of 10 MB (a 120 MB archive) is
/// about that for one of them (before, every file was held until the manifest, which comes
/// last, had been checked: 110 MB more).
#[test]
fn issue_11_import_streams_the_archive_one_document_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(cli(data, &["init"]).status.success());
    let alpha = cli_tenant(data, "Alpha");
    let contract = data.join("terms.txt");
    std::fs::write(&contract, CONTRACT).unwrap();
    let ingested = cli(
        data,
        &["ingest", "--tenant", &alpha, contract.to_str().unwrap()],
    );
    assert!(ingested.status.success(), "{}", stderr(&ingested));
    let exported = data.join("alpha.tar");
    let export = cli(
        data,
        &[
            "export",
            "--tenant",
            &alpha,
            "--out",
            exported.to_str().unwrap(),
        ],
    );
    assert!(export.status.success(), "{}", stderr(&export));
    let mut one = Vec::new();
    let mut manifest = None;
    let mut reader = tar::Archive::new(std::fs::File::open(&exported).unwrap());
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        match path
            .split_once('/')
            .and_then(|(_, rest)| rest.split_once('/'))
        {
            Some((_, file)) => one.push((file.to_owned(), bytes)),
            None => manifest = Some((path, bytes)),
        }
    }
    let manifest = manifest.unwrap();

    // The one document `copies` times over, each with a 10 MB original, imported into a
    // tenant of its own: the archive's size and the import's peak resident memory.
    const ORIGINAL_BYTES: usize = 10 << 20;
    let import = |copies: usize| -> (u64, u64) {
        let mut files = Vec::new();
        for copy in 0..copies {
            for (file, bytes) in &one {
                let bytes = if file == "original" {
                    let line = format!("Copy {copy}: {CONTRACT}\n").into_bytes();
                    line.iter().copied().cycle().take(ORIGINAL_BYTES).collect()
                } else {
                    bytes.clone()
                };
                files.push((format!("documents/{copy}/{file}"), bytes));
            }
        }
        files.push(manifest.clone());
        let archive = data.join(format!("copies-{copies}.tar"));
        std::fs::write(&archive, pack(files)).unwrap();
        let tenant = cli_tenant(data, &format!("Copies {copies}"));
        let mut child = std::process::Command::new(crate::support::binary())
            .arg("--data-dir")
            .arg(data)
            .arg("--models-dir")
            .arg(bulkhead::config::default_models_dir())
            .args(["import", "--tenant", &tenant])
            .arg(&archive)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The high-water mark of its resident memory, sampled until it exits.
        let status_file = format!("/proc/{}/status", child.id());
        let mut peak_kib = 0u64;
        while child.try_wait().unwrap().is_none() {
            if let Ok(status) = std::fs::read_to_string(&status_file)
                && let Some(line) = status.lines().find(|line| line.starts_with("VmHWM:"))
            {
                let kib = line.split_whitespace().nth(1).unwrap().parse().unwrap();
                peak_kib = peak_kib.max(kib);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stdout(&output).contains(&format!("imported {copies} documents")),
            "{}",
            stdout(&output)
        );
        assert!(peak_kib > 0, "no memory sample taken");
        (std::fs::metadata(&archive).unwrap().len(), peak_kib * 1024)
    };
    let (small_archive, small_peak) = import(1);
    let (large_archive, large_peak) = import(12);
    println!(
        "import peak resident memory: {} MB for a {} MB archive, {} MB for a {} MB archive",
        small_peak >> 20,
        small_archive >> 20,
        large_peak >> 20,
        large_archive >> 20
    );
    let archive_growth = large_archive - small_archive;
    assert!(
        large_peak.saturating_sub(small_peak) < archive_growth / 3,
        "peak memory grew {} MB for {} MB more archive: the import holds more than a document",
        large_peak.saturating_sub(small_peak) >> 20,
        archive_growth >> 20
    );
}

/// Creates a tenant with the CLI; returns its id.
fn cli_tenant(data: &std::path::Path, name: &str) -> String {
    let created = cli(data, &["tenant", "create", name, "--json"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let created: serde_json::Value = serde_json::from_str(&stdout(&created)).unwrap();
    created["tenant_id"].as_str().unwrap().to_owned()
}
