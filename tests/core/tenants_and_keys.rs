//! Keys, tenants and the command line's contract: a wrong master key is refused clearly,
//! tenants open lazily and are evicted, exit codes and JSON shapes follow API.md.

use bulkhead::appliance::Appliance;
use bulkhead::crypto::SecretKey;
use bulkhead::store::{Store, StoreError};

use crate::support::{cli, config_for, sample_contract, stderr, stdout};

#[test]
fn wrong_master_key_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    Store::init(dir.path()).unwrap();
    bulkhead::auth::tokens::Signer::init(dir.path()).unwrap();
    assert!(matches!(
        Store::open_with_key(dir.path(), SecretKey::generate()),
        Err(StoreError::WrongMasterKey)
    ));
    let output = std::process::Command::new(crate::support::binary())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["tenant", "list"])
        .env(
            "BULKHEAD_MASTER_KEY",
            SecretKey::generate().to_hex().as_str(),
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("master key does not match"),
        "{}",
        stderr(&output)
    );
    // The right key still works: nothing was damaged.
    assert!(Store::open(dir.path()).is_ok());
}

#[test]
fn init_creates_private_keys_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let key = std::fs::read(data.join("master.key")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["master.key", "signing.key"] {
            let mode = std::fs::metadata(data.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    assert!(cli(&data, &["init"]).status.success());
    assert_eq!(
        std::fs::read(data.join("master.key")).unwrap(),
        key,
        "init never replaces a key"
    );
}

#[test]
fn command_line_follows_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert_eq!(
        cli(data, &["tenant", "list"]).status.code(),
        Some(1),
        "not initialised"
    );
    assert!(stderr(&cli(data, &["tenant", "list"])).contains("bulkhead init"));
    assert!(cli(data, &["init"]).status.success());
    assert_eq!(cli(data, &["no-such-command"]).status.code(), Some(2));
    assert_eq!(cli(data, &["ask", "--tenant"]).status.code(), Some(2));

    let created = cli(
        data,
        &[
            "tenant",
            "create",
            "Acme Corp",
            "--tier",
            "premium",
            "--json",
        ],
    );
    let tenant: serde_json::Value = serde_json::from_str(&stdout(&created)).unwrap();
    assert_eq!(tenant["name"], "Acme Corp");
    assert_eq!(tenant["tier"], "premium");
    let tenant_id = tenant["tenant_id"].as_str().unwrap();
    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&cli(data, &["tenant", "list", "--json"]))).unwrap();
    assert_eq!(listed["tenants"][0]["tenant_id"], tenant_id);

    let unknown = cli(
        data,
        &["ask", "--tenant", "t_00000000000000000000", "anything"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no tenant"));
    let malformed = cli(data, &["ask", "--tenant", "../etc", "anything"]);
    assert_eq!(malformed.status.code(), Some(1));

    let folder = tempfile::tempdir().unwrap();
    let (name, text) = sample_contract("ADUROBIOTECH");
    std::fs::write(folder.path().join(&name), text).unwrap();
    let ingested = cli(
        data,
        &[
            "ingest",
            "--tenant",
            tenant_id,
            "--json",
            folder.path().to_str().unwrap(),
        ],
    );
    assert!(ingested.status.success(), "{}", stderr(&ingested));
    let report: serde_json::Value = serde_json::from_str(&stdout(&ingested)).unwrap();
    assert_eq!(report["indexed"], 1);
    assert!(report["documents"][0]["chunks"].as_u64().unwrap() > 5);

    let asked = cli(
        data,
        &[
            "ask",
            "--tenant",
            tenant_id,
            "--json",
            "Until when does the consulting agreement continue?",
        ],
    );
    assert!(asked.status.success(), "{}", stderr(&asked));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&asked)).unwrap();
    assert_eq!(answer["grounded"], true, "{answer}");
    let citation = &answer["citations"][0];
    assert_eq!(citation["filename"], name.as_str());
    for field in ["document_id", "chunk_id", "text", "start", "end"] {
        assert!(!citation[field].is_null(), "citation lacks {field}");
    }
    assert!(answer["timings_ms"]["total"].as_u64().is_some());
    // Citation spans are character offsets into the extracted text.
    let text: Vec<char> = std::fs::read_to_string(folder.path().join(&name))
        .unwrap()
        .chars()
        .collect();
    let (start, end) = (
        citation["start"].as_u64().unwrap() as usize,
        citation["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(
        text[start..end].iter().collect::<String>(),
        citation["text"].as_str().unwrap()
    );
}

/// Issue 11: rotating the signing key ends every token it signed, but the audit log's
/// checkpoints and the certificates it signed still verify (with the retired keys).
#[test]
fn issue_11_rotating_the_signing_key_keeps_checkpoints_and_certificates_verifiable() {
    use bulkhead::audit::{AuditEvent, Outcome};
    use bulkhead::auth::tokens::{Signer, Verifier};
    let dir = tempfile::tempdir().unwrap();
    assert!(cli(dir.path(), &["init"]).status.success());
    let doomed = stdout(&cli(dir.path(), &["tenant", "create", "Doomed"]))
        .trim()
        .to_owned();
    let kept = stdout(&cli(dir.path(), &["tenant", "create", "Kept"]))
        .trim()
        .to_owned();
    let deleted = cli(dir.path(), &["tenant", "delete", &doomed]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let certificate = dir.path().join("certificate.json");
    std::fs::write(&certificate, stdout(&deleted)).unwrap();
    {
        // Enough entries for signed checkpoints.
        let appliance = Appliance::open(config_for(dir.path())).unwrap();
        for _ in 0..bulkhead::audit::CHECKPOINT_EVERY + 5 {
            appliance
                .audit(&AuditEvent {
                    tenant_id: None,
                    actor: "operator".into(),
                    action: "test.event",
                    resource: String::new(),
                    outcome: Outcome::Ok,
                })
                .unwrap();
        }
    }
    let old_token = stdout(&cli(
        dir.path(),
        &[
            "token", "--tenant", &kept, "--user", "u", "--role", "reader",
        ],
    ))
    .trim()
    .to_owned();
    assert!(cli(dir.path(), &["audit", "verify"]).status.success());

    let rotated = cli(dir.path(), &["signing-key", "rotate"]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));

    let verified = cli(dir.path(), &["audit", "verify"]);
    assert!(verified.status.success(), "{}", stdout(&verified));
    let path = certificate.to_str().unwrap();
    let verified = cli(dir.path(), &["certificate", "verify", path]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let verifier = Verifier::new(&Signer::load(dir.path()).unwrap());
    assert!(
        verifier.verify(&old_token).is_err(),
        "an old token outlived the rotation"
    );
    let new_token = stdout(&cli(
        dir.path(),
        &[
            "token", "--tenant", &kept, "--user", "u", "--role", "reader",
        ],
    ))
    .trim()
    .to_owned();
    assert!(verifier.verify(&new_token).is_ok());
}
