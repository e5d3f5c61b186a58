//! Compliance: the audit chain finds any edit, removal or reordering made directly in the
//! database; tenant deletion shreds the tenant's key and files and yields a certificate
//! that verifies with the appliance's key and fails after one changed byte.

use bulkhead::appliance::ApplianceError;
use bulkhead::audit::{AuditEvent, Outcome};
use bulkhead::index::SearchMode;
use bulkhead::portability::PortabilityError;
use bulkhead::store::Store;

use crate::support::{
    all_files, cli, fresh_appliance, ingest, new_tenant, sample_contract, stderr, stdout,
};

fn event(tenant: &str, action: &'static str) -> AuditEvent {
    AuditEvent {
        tenant_id: Some(tenant.to_owned()),
        actor: "u_test".into(),
        action,
        resource: "r".into(),
        outcome: Outcome::Ok,
    }
}

#[test]
fn audit_chain_names_the_first_tampered_entry() {
    let dir = tempfile::tempdir().unwrap();
    Store::init(dir.path()).unwrap();
    bulkhead::auth::tokens::Signer::init(dir.path()).unwrap();
    let store = Store::open(dir.path()).unwrap();
    for action in [
        "ask",
        "search",
        "document.upload",
        "ask",
        "document.delete",
        "ask",
    ] {
        store
            .append_audit(&event("t_0123456789abcdef0123", action))
            .unwrap();
    }
    assert!(bulkhead::audit::verify_chain(&store.audit_chain().unwrap()).ok);
    assert!(cli(dir.path(), &["audit", "verify"]).status.success());
    drop(store);

    // The triggers refuse changes through SQL...
    let database = dir.path().join("system.db");
    let connection = rusqlite::Connection::open(&database).unwrap();
    for statement in [
        "UPDATE audit_events SET outcome = 'denied' WHERE seq = 3",
        "DELETE FROM audit_events WHERE seq = 3",
    ] {
        match connection.execute(statement, []) {
            Err(rusqlite::Error::SqliteFailure(_, Some(message))) => {
                assert_eq!(message, "the audit log is append-only", "{statement}")
            }
            other => panic!("{statement}: {other:?}"),
        }
    }
    // ...but someone with the file can drop them (each open of the store puts them back,
    // so the tampering drops them every time): the chain still tells.
    let tamper = |sql: &str| {
        connection
            .execute_batch(&format!(
                "DROP TRIGGER IF EXISTS audit_events_no_update; DROP TRIGGER IF EXISTS audit_events_no_delete; {sql}"
            ))
            .unwrap();
    };
    let check = |expected: i64| {
        let output = cli(dir.path(), &["audit", "verify"]);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(report["ok"], false);
        assert_eq!(report["first_bad_seq"], expected, "{report}");
        assert!(stderr(&output).contains("broken"));
    };
    tamper("UPDATE audit_events SET outcome = 'denied' WHERE seq = 3;");
    check(3);
    tamper("UPDATE audit_events SET outcome = 'ok' WHERE seq = 3;");
    assert!(
        cli(dir.path(), &["audit", "verify"]).status.success(),
        "restored"
    );
    tamper("DELETE FROM audit_events WHERE seq = 4;");
    check(5);
    tamper(
        "UPDATE audit_events SET seq = 40 WHERE seq = 2; UPDATE audit_events SET seq = 2 WHERE seq = 5; \
         UPDATE audit_events SET seq = 5 WHERE seq = 40;",
    );
    check(2);
}

#[test]
fn tenant_deletion_shreds_the_key_and_files_and_certifies_it() {
    let (dir, appliance) = fresh_appliance();
    let doomed = new_tenant(&appliance, "Doomed Corp");
    let survivor = new_tenant(&appliance, "Survivor Inc");
    let (name, text) = sample_contract("SoupmanInc");
    let doomed_text = format!("DOOMEDMARKER77 {text}");
    ingest(
        &appliance,
        &doomed,
        &[("doomed-FILEMARK.txt", &doomed_text)],
    );
    ingest(&appliance, &survivor, &[(&name, &text)]);
    let doomed_id = doomed.tenant_id().to_string();
    let wrapped_key: Vec<u8> = rusqlite::Connection::open(dir.path().join("system.db"))
        .unwrap()
        .query_row(
            "SELECT wrapped_key FROM tenants WHERE tenant_id = ?1",
            [&doomed_id],
            |row| row.get(0),
        )
        .unwrap();
    drop(appliance);

    let output = cli(dir.path(), &["tenant", "delete", &doomed_id]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let certificate = &printed["certificate"];
    assert_eq!(certificate["tenant_id"], doomed_id.as_str());
    assert_eq!(certificate["deleted"]["documents"], 1);
    assert!(certificate["deleted"]["chunks"].as_u64().unwrap() > 3);
    assert_eq!(certificate["deleted"]["bytes"], doomed_text.len());
    assert_eq!(
        certificate["destroyed_key_ids"].as_array().unwrap().len(),
        1
    );

    // The certificate verifies, and fails after one changed byte.
    let file = dir.path().join("certificate.json");
    std::fs::write(&file, printed.to_string()).unwrap();
    assert!(
        cli(
            dir.path(),
            &["certificate", "verify", file.to_str().unwrap()]
        )
        .status
        .success()
    );
    let mut forged = printed.clone();
    forged["certificate"]["deleted"]["chunks"] = serde_json::json!(0);
    std::fs::write(&file, forged.to_string()).unwrap();
    assert_eq!(
        cli(
            dir.path(),
            &["certificate", "verify", file.to_str().unwrap()]
        )
        .status
        .code(),
        Some(1)
    );
    let mut jws = printed["jws"].as_str().unwrap().to_owned();
    let middle = jws.len() / 2;
    let flipped = if &jws[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    jws.replace_range(middle..=middle, flipped);
    let mut tampered = printed.clone();
    tampered["jws"] = serde_json::json!(jws);
    std::fs::write(&file, tampered.to_string()).unwrap();
    assert_eq!(
        cli(
            dir.path(),
            &["certificate", "verify", file.to_str().unwrap()]
        )
        .status
        .code(),
        Some(1)
    );

    // Nothing of the tenant remains on disk: no directory, no wrapped key, no content.
    assert!(!dir.path().join("tenants").join(&doomed_id).exists());
    for path in all_files(dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        for needle in [
            wrapped_key.as_slice(),
            b"DOOMEDMARKER77",
            b"doomed-FILEMARK",
            b"Doomed Corp",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "tenant data left in {}",
                path.display()
            );
        }
    }
    // The chain still verifies and the other tenant is untouched.
    assert!(cli(dir.path(), &["audit", "verify"]).status.success());
    let appliance =
        bulkhead::appliance::Appliance::open(crate::support::config_for(dir.path())).unwrap();
    assert!(
        appliance
            .list_tenants()
            .unwrap()
            .iter()
            .all(|t| t.tenant_id.as_str() != doomed_id)
    );
    let results = appliance
        .search(&survivor, "franchise guarantee", 3, SearchMode::Hybrid)
        .unwrap();
    assert!(!results.is_empty());
    assert_eq!(
        cli(dir.path(), &["ask", "--tenant", &doomed_id, "anything"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn deleted_documents_never_come_back_and_tombstones_are_compacted() {
    let (_dir, appliance) = fresh_appliance();
    let tenant = new_tenant(&appliance, "Deleter");
    let contracts: Vec<(String, String)> = [
        "ADUROBIOTECH",
        "LifewayFoods",
        "DRAGONSYSTEMS",
        "SoupmanInc",
    ]
    .iter()
    .map(|prefix| sample_contract(prefix))
    .collect();
    let documents: Vec<(&str, &str)> = contracts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    ingest(&appliance, &tenant, &documents);
    let listed = appliance.list_documents(&tenant).unwrap();
    // Delete three of four: far past the compaction threshold.
    for document in listed
        .iter()
        .filter(|d| !d.filename.starts_with("SoupmanInc"))
    {
        appliance
            .delete_document(&tenant, &document.document_id)
            .unwrap();
    }
    let deleted: Vec<String> = listed
        .iter()
        .filter(|d| !d.filename.starts_with("SoupmanInc"))
        .map(|d| d.document_id.to_string())
        .collect();
    let check = |appliance: &bulkhead::appliance::Appliance| {
        for query in [
            "Illinois endorsement",
            "consulting agreement term",
            "Dragon outsourcing notice",
        ] {
            for mode in [SearchMode::Hybrid, SearchMode::Vector, SearchMode::Keyword] {
                for result in appliance.search(&tenant, query, 20, mode).unwrap() {
                    assert!(
                        !deleted.contains(&result.chunk.chunk_id.document_id().to_string()),
                        "{query}"
                    );
                }
            }
        }
        let answer = appliance
            .ask(
                &tenant,
                "Which state's laws govern the Lifeway endorsement agreement?",
                None,
                &mut |_| true,
            )
            .unwrap();
        assert!(!answer.grounded, "{}", answer.text);
    };
    check(&appliance);
    // And after a restart (snapshots reloaded).
    let config = appliance.config().clone();
    drop(appliance);
    let appliance = bulkhead::appliance::Appliance::open(config).unwrap();
    check(&appliance);
    assert_eq!(appliance.list_documents(&tenant).unwrap().len(), 1);
}

#[test]
fn export_then_import_answers_the_same_and_holds_nothing_of_other_tenants() {
    let (dir, appliance) = fresh_appliance();
    let alpha = new_tenant(&appliance, "Exporter");
    let beta = new_tenant(&appliance, "Bystander");
    let (aduro, aduro_text) = sample_contract("ADUROBIOTECH");
    let (lifeway, lifeway_text) = sample_contract("LifewayFoods");
    ingest(
        &appliance,
        &alpha,
        &[(&aduro, &aduro_text), (&lifeway, &lifeway_text)],
    );
    let beta_text = format!("BYSTANDERMARKER42 {}", sample_contract("SoupmanInc").1);
    ingest(&appliance, &beta, &[("bystander.txt", &beta_text)]);
    let question = "Which state's laws govern the Lifeway endorsement agreement?";
    let before = appliance
        .ask(&alpha, question, None, &mut |_| true)
        .unwrap();
    assert!(before.grounded);

    // Plain export: a tar with a manifest; nothing of the other tenant.
    let mut archive = Vec::new();
    let summary = appliance.export_tenant(&alpha, &mut archive, None).unwrap();
    assert_eq!(summary.documents, 2);
    assert!(!archive.windows(17).any(|w| w == b"BYSTANDERMARKER42"));
    assert!(archive.windows(13).any(|w| w == b"manifest.json"));

    // Encrypted export: no plaintext at all; opens only with the matching identity.
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let mut sealed = Vec::new();
    appliance
        .export_tenant(&alpha, &mut sealed, Some(&recipient))
        .unwrap();
    assert!(!sealed.windows(13).any(|w| w == b"manifest.json"));
    assert!(
        !sealed
            .windows(20)
            .any(|w| w == &lifeway_text.as_bytes()[200..220])
    );

    // Import into another appliance: same answer, same citations.
    let (_other_dir, other) = fresh_appliance();
    let target = new_tenant(&other, "Importer");
    let secret = {
        use age::secrecy::ExposeSecret;
        identity.to_string().expose_secret().to_owned()
    };
    let wrong = age::x25519::Identity::generate();
    let wrong_secret = {
        use age::secrecy::ExposeSecret;
        wrong.to_string().expose_secret().to_owned()
    };
    let refused = other.import_tenant(&target, std::io::Cursor::new(&sealed), Some(&wrong_secret));
    assert!(
        matches!(
            refused,
            Err(ApplianceError::Portability(PortabilityError::Decrypt(_)))
        ),
        "{refused:?}"
    );
    let imported = other
        .import_tenant(&target, std::io::Cursor::new(&sealed), Some(&secret))
        .unwrap();
    assert_eq!(imported.documents, 2);
    assert_eq!(imported.chunks, summary.chunks);
    let after = other.ask(&target, question, None, &mut |_| true).unwrap();
    assert_eq!(after.text, before.text);
    let spans = |answer: &bulkhead::appliance::Answer| -> Vec<(String, usize, usize, String)> {
        answer
            .citations
            .iter()
            .map(|c| (c.filename.clone(), c.start, c.end, c.text.clone()))
            .collect()
    };
    assert_eq!(spans(&after), spans(&before));

    // A tampered archive is refused before anything is stored.
    let mut tampered = archive.clone();
    let position = tampered
        .windows(16)
        .position(|w| w == &lifeway_text.as_bytes()[300..316])
        .unwrap();
    tampered[position] ^= 0x20;
    let victim = new_tenant(&other, "Victim");
    match other.import_tenant(&victim, std::io::Cursor::new(&tampered), None) {
        Err(ApplianceError::Portability(PortabilityError::Integrity(message))) => assert!(
            message.ends_with("/original does not match its SHA-256"),
            "{message}"
        ),
        other => panic!("a tampered archive must fail its manifest check: {other:?}"),
    }
    assert!(other.list_documents(&victim).unwrap().is_empty());
    drop(dir);
}

#[test]
fn signed_checkpoints_pin_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    Store::init(dir.path()).unwrap();
    bulkhead::auth::tokens::Signer::init(dir.path()).unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let signer = std::sync::Arc::new(bulkhead::auth::tokens::Signer::load(dir.path()).unwrap());
    store.set_checkpoint_signer(signer.clone());
    for _ in 0..bulkhead::audit::CHECKPOINT_EVERY + 5 {
        store
            .append_audit(&event("t_0123456789abcdef0123", "ask"))
            .unwrap();
    }
    assert_eq!(store.audit_checkpoints().unwrap().len(), 1);
    assert!(store.verify_audit(signer.as_ref()).unwrap().ok);
    drop(store);
    // Rewriting the whole chain consistently (here: recomputing every hash after an edit)
    // still contradicts the signed checkpoint.
    let connection = rusqlite::Connection::open(dir.path().join("system.db")).unwrap();
    connection
        .execute_batch("DROP TRIGGER IF EXISTS audit_events_no_update; DROP TRIGGER IF EXISTS audit_events_no_delete;")
        .unwrap();
    connection
        .execute(
            "UPDATE audit_events SET outcome = 'denied' WHERE seq = 7",
            [],
        )
        .unwrap();
    let mut entries = Store::open(dir.path()).unwrap().audit_chain().unwrap();
    let mut prev = bulkhead::audit::GENESIS.to_vec();
    for entry in &mut entries {
        entry.prev_hash = prev.clone();
        entry.hash = bulkhead::audit::entry_hash(
            &entry.prev_hash,
            entry.seq,
            entry.at,
            entry.tenant_id.as_deref(),
            &entry.actor,
            &entry.action,
            &entry.resource,
            &entry.outcome,
        )
        .to_vec();
        prev = entry.hash.clone();
    }
    connection
        .execute_batch("DROP TRIGGER IF EXISTS audit_events_no_update; DROP TRIGGER IF EXISTS audit_events_no_delete;")
        .unwrap();
    for entry in &entries {
        connection
            .execute(
                "UPDATE audit_events SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
                rusqlite::params![entry.prev_hash, entry.hash, entry.seq],
            )
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(
        bulkhead::audit::verify_chain(&store.audit_chain().unwrap()).ok,
        "the chain alone is consistent"
    );
    let report = store.verify_audit(signer.as_ref()).unwrap();
    assert!(!report.ok);
    assert!(report.problem.unwrap().contains("signed checkpoint"));
}

#[test]
fn the_command_line_is_on_the_record_in_the_tenants_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    assert!(cli(dir.path(), &["init"]).status.success());
    let created = cli(dir.path(), &["tenant", "create", "Northwind"]);
    let tenant = stdout(&created).trim().to_owned();
    let (name, path) = crate::common::sample_file("LifewayFoods");
    let ingested = cli(
        dir.path(),
        &["ingest", "--tenant", &tenant, path.to_str().unwrap()],
    );
    assert!(ingested.status.success(), "{}", stderr(&ingested));
    let asked = cli(
        dir.path(),
        &[
            "ask",
            "--tenant",
            &tenant,
            "Which law governs the endorsement agreement?",
        ],
    );
    assert!(asked.status.success(), "{}", stderr(&asked));

    let review = cli(
        dir.path(),
        &[
            "report",
            "access-review",
            "--tenant",
            &tenant,
            "--format",
            "csv",
        ],
    );
    assert!(review.status.success(), "{}", stderr(&review));
    let review = stdout(&review);
    let operator_rows: Vec<&str> = review
        .lines()
        .filter(|line| line.contains(",operator:u_"))
        .collect();
    for action in ["document.upload", "ask"] {
        assert!(
            operator_rows
                .iter()
                .any(|row| row.contains(&format!(",{action},")) && row.contains("[command-line]")),
            "no operator `{action}` in the access review:\n{review}"
        );
    }
    // Pseudonymised like users: neither the operator's login nor the file name is there.
    assert!(!review.contains(&name), "{review}");
    if let Ok(user) = std::env::var("USER") {
        assert!(!review.contains(&format!("operator:{user}")), "{review}");
    }

    let verified = cli(dir.path(), &["audit", "verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let report: serde_json::Value = serde_json::from_str(&stdout(&verified)).unwrap();
    assert_eq!(report["ok"], true);
    assert!(report["entries"].as_u64().unwrap() >= 2, "{report}");
}

#[test]
fn a_pdfs_pages_travel_with_its_export() {
    let (_dir, appliance) = fresh_appliance();
    let exporter = new_tenant(&appliance, "Exporter");
    let importer = new_tenant(&appliance, "Importer");
    let pdf = crate::common::hosting_agreement_pdf();
    let original = appliance
        .upload(&exporter, "hosting.pdf", None, &pdf)
        .unwrap();
    for outcome in appliance.process_jobs(&exporter, &mut |_| {}).unwrap() {
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    }
    let pages = appliance
        .document_page_starts(&exporter, &original)
        .unwrap()
        .expect("a PDF indexed now knows its pages");
    assert!(pages.len() > 1, "{pages:?}");

    let mut archive = Vec::new();
    appliance
        .export_tenant(&exporter, &mut archive, None)
        .unwrap();
    appliance
        .import_tenant(&importer, std::io::Cursor::new(&archive), None)
        .unwrap();
    let imported = appliance.list_documents(&importer).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(
        appliance
            .document_page_starts(&importer, &imported[0].document_id)
            .unwrap(),
        Some(pages)
    );
}
