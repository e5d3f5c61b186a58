//! Issue 11, findings 9 and 10: what a deletion claims is checked, and a tampered audit
//! log is reported as such without ever blocking a tenant's deletion.

use std::process::Command;

use serde_json::Value;

use crate::harness::{Server, binary, client, create_tenant, models_dir, send};

#[tokio::test(flavor = "multi_thread")]
async fn issue_11_a_tampered_audit_row_never_blocks_deletion_and_verify_names_it() {
    let server = Server::start(&[]);
    let alpha = create_tenant(&server, "Alpha").await;
    let beta = create_tenant(&server, "Beta").await;
    let reader = server.caller(&alpha, "alice", &["reader"]);
    let (status, _) = reader.get("/documents").await;
    assert_eq!(status, 200);

    // Behind the appliance's back: the append-only trigger dropped, a column's type
    // changed on the first row and on the chain's head.
    let database = rusqlite::Connection::open(server.data.path().join("system.db")).unwrap();
    database
        .execute_batch(
            "PRAGMA busy_timeout = 5000;
             DROP TRIGGER audit_events_no_update;
             UPDATE audit_events SET at = 'yesterday' WHERE seq = (SELECT MIN(seq) FROM audit_events);
             UPDATE audit_events SET hash = 'not a hash' WHERE seq = (SELECT MAX(seq) FROM audit_events);",
        )
        .unwrap();
    drop(database);

    // The deletion goes through, with its certificate.
    let platform = server.platform_token();
    let (status, deleted) = send(
        client()
            .delete(server.url(&format!("/v1/tenants/{alpha}")))
            .bearer_auth(&platform),
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["certificate"]["tenant_id"], alpha.as_str());
    assert!(deleted["jws"].is_string());
    // Other tenants' audit logs still read.
    let auditor = server.caller(&beta, "carol", &["auditor"]);
    let (status, events) = auditor.get("/audit").await;
    assert_eq!(status, 200, "{events}");

    // Verification names the tampered row as an integrity error, over HTTP and the CLI.
    let (status, report) = send(
        client()
            .get(server.url("/v1/audit/verify"))
            .bearer_auth(&platform),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], Value::Bool(false));
    let problem = report["problem"].as_str().unwrap();
    assert!(
        problem.contains("tampered") && problem.contains("`at`"),
        "{problem}"
    );
    let verified = Command::new(binary())
        .arg("--data-dir")
        .arg(server.data.path())
        .arg("--models-dir")
        .arg(models_dir())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(verified.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert!(stderr.contains("integrity error"), "{stderr}");
}
