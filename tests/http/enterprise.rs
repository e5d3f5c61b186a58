//! Issue 12 §3: an enterprise tenant's customer-held key (BYOK). Until its admin unlocks
//! it with the customer's age identity, nobody reads its data — not its own users, not the
//! operator holding the master key, not a restarted server.

use std::process::{Command, Stdio};

use bulkhead::crypto::CustomerIdentity;
use serde_json::json;

use crate::harness::*;

const MARKER: &str = "ZEPHYRQUARTZ";

/// A server with one enterprise tenant holding an indexed document that names `MARKER`;
/// returns (server, tenant id, document id).
async fn enterprise_tenant_with_a_document() -> (Server, String, String) {
    let server = Server::start(&[]);
    let (status, body) = send(
        client()
            .post(server.url("/v1/tenants"))
            .bearer_auth(server.platform_token())
            .json(&json!({"name": "Gamma Bottling", "tier": "enterprise"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let tenant = body["tenant_id"].as_str().unwrap().to_owned();
    let editor = server.caller(&tenant, "erin", &["editor"]);
    let text = format!(
        "SUPPLY AGREEMENT\n\n1. Confidentiality. The supplier keeps the {MARKER} formula secret and discloses it to no third party.\n"
    );
    let (status, body) = editor.upload("supply.txt", text.into_bytes(), true).await;
    assert_eq!(status, 201, "{body}");
    let document = body["document_id"].as_str().unwrap().to_owned();
    (server, tenant, document)
}

async fn enrol(server: &Server, tenant: &str, recipient: &str) -> (u16, serde_json::Value) {
    send(
        client()
            .put(server.url(&format!("/v1/tenants/{tenant}/customer-key")))
            .bearer_auth(server.platform_token())
            .json(&json!({"recipient": recipient})),
    )
    .await
}

/// Every way a tenant's users read its data, each refused with 423 `tenant_locked`.
async fn assert_locked(admin: &Caller<'_>, document: &str) {
    let reads = [
        admin.get("/documents").await,
        admin.get(&format!("/documents/{document}")).await,
        admin.get(&format!("/documents/{document}/content")).await,
        admin.post("/search", json!({"query": "formula"})).await,
        admin
            .post(
                "/ask",
                json!({"question": "What must the supplier keep secret?"}),
            )
            .await,
        admin.post("/export", json!({})).await,
    ];
    for (status, body) in reads {
        assert_error(status, &body, 423, "tenant_locked");
    }
    let (status, body) = admin
        .upload("more.txt", b"another clause".to_vec(), false)
        .await;
    assert_error(status, &body, 423, "tenant_locked");
}

async fn search_finds_marker(admin: &Caller<'_>) -> bool {
    let (status, body) = admin
        .post(
            "/search",
            json!({"query": "formula secret", "mode": "keyword"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|result| result["text"].as_str().unwrap_or("").contains(MARKER))
}

/// The operator's own command line, with the master key, on the server's data directory.
fn operator_cli(server: &Server, args: &[&str]) -> (bool, String) {
    let output = Command::new(binary())
        .arg("--data-dir")
        .arg(server.data.path())
        .arg("--models-dir")
        .arg(models_dir())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn enterprise_locked_tenant_is_unreadable_even_by_the_operator_until_its_key_unlocks_it() {
    let (mut server, tenant, document) = enterprise_tenant_with_a_document().await;
    let identity = CustomerIdentity::generate();
    let recipient = identity.recipient();
    let admin = server.caller(&tenant, "alice", &["admin"]);
    assert!(search_finds_marker(&admin).await);

    let (status, body) = enrol(&server, &tenant, recipient.as_str()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["locked"], true);
    assert_eq!(body["customer_key"], recipient.as_str());
    assert_locked(&admin, &document).await;
    // Its admin still sees its tokens, without the users' names (sealed with its key).
    let (status, listed) = admin.get("/tokens").await;
    assert_eq!(status, 200, "{listed}");
    let users: Vec<&serde_json::Value> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["user"])
        .collect();
    assert!(
        !users.is_empty() && users.iter().all(|user| user.is_null()),
        "{listed}"
    );

    // The operator with the master key gets nothing out either.
    for args in [
        vec![
            "ask",
            "--tenant",
            &tenant,
            "What must the supplier keep secret?",
        ],
        vec!["search", "--tenant", &tenant, "formula"],
        vec!["export", "--tenant", &tenant, "--out", "/dev/null"],
    ] {
        let (ok, stderr) = operator_cli(&server, &args);
        assert!(!ok, "{args:?} succeeded on a locked tenant");
        assert!(stderr.contains("locked"), "{args:?}: {stderr}");
    }
    // And every byte on disk stays ciphertext.
    for entry in walk(server.data.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "{} holds the marker in plaintext",
            entry.display()
        );
    }

    // The operator's `tenant unlock` checks a key file (and holds it for its own run only).
    let keys = tempfile::tempdir().unwrap();
    let (right_file, wrong_file) = (keys.path().join("right.key"), keys.path().join("wrong.key"));
    std::fs::write(&right_file, format!("{}\n", *identity.to_secret_string())).unwrap();
    let stranger = CustomerIdentity::generate();
    std::fs::write(&wrong_file, format!("{}\n", *stranger.to_secret_string())).unwrap();
    let unlock_with = |file: &std::path::Path| {
        operator_cli(
            &server,
            &[
                "tenant",
                "unlock",
                &tenant,
                "--key-file",
                file.to_str().unwrap(),
            ],
        )
    };
    let (ok, stderr) = unlock_with(&wrong_file);
    assert!(!ok && stderr.contains("does not open"), "{stderr}");
    let (ok, stderr) = unlock_with(&right_file);
    assert!(ok, "{stderr}");
    assert_locked(&admin, &document).await;

    // A wrong key: 401, audited in the tenant's log.
    let wrong = CustomerIdentity::generate();
    let (status, body) = admin
        .post("/unlock", json!({"identity": *wrong.to_secret_string()}))
        .await;
    assert_error(status, &body, 401, "customer_key_rejected");
    let (status, body) = admin.get("/audit").await;
    assert_eq!(status, 200, "{body}");
    let denied = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|event| event["action"] == "tenant.unlock" && event["outcome"] == "denied");
    assert!(denied, "the wrong key is not in the audit log: {body}");

    // The right key (as `age-keygen` writes it, with its comment lines) unlocks.
    let key_file = format!(
        "# created: 2026-12-02T10:00:00Z\n# public key: {}\n{}\n",
        recipient.as_str(),
        *identity.to_secret_string()
    );
    let refused_at = std::time::Instant::now();
    let (status, _) = admin.post("/search", json!({"query": "formula"})).await;
    let refused = refused_at.elapsed();
    assert_eq!(status, 423);
    let unlock_at = std::time::Instant::now();
    let (status, body) = admin.post("/unlock", json!({"identity": key_file})).await;
    let unlocked = unlock_at.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["locked"], false);
    eprintln!("over HTTP: a locked tenant's search refused in {refused:?}; unlock in {unlocked:?}");
    assert!(search_finds_marker(&admin).await);
    let (status, _) = admin.get(&format!("/documents/{document}/content")).await;
    assert_eq!(status, 200);

    // Lock drops it: by the tenant's admin, and by a platform admin.
    let (status, body) = admin.post("/lock", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["locked"], true);
    assert_locked(&admin, &document).await;
    let (status, _) = admin.post("/unlock", json!({"identity": key_file})).await;
    assert_eq!(status, 200);
    let platform = server.caller_with(&tenant, server.platform_token());
    let (status, body) = platform.post("/lock", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_locked(&admin, &document).await;

    // A restarted server holds no customer key: the tenant is locked again.
    let (status, _) = admin.post("/unlock", json!({"identity": key_file})).await;
    assert_eq!(status, 200);
    assert!(search_finds_marker(&admin).await);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let (child, base) = crate::common::spawn_server(server.data.path(), &[], &[], Stdio::inherit());
    (server.child, server.base) = (child, base);
    let admin = server.caller(&tenant, "alice", &["admin"]);
    assert_locked(&admin, &document).await;
    let (status, _) = admin.post("/unlock", json!({"identity": key_file})).await;
    assert_eq!(status, 200);
    assert!(search_finds_marker(&admin).await);
}

#[tokio::test]
async fn enterprise_unlock_is_refused_after_five_wrong_keys_and_only_the_tenant_admin_unlocks() {
    let (server, tenant, _document) = enterprise_tenant_with_a_document().await;
    let identity = CustomerIdentity::generate();
    let (status, body) = enrol(&server, &tenant, identity.recipient().as_str()).await;
    assert_eq!(status, 200, "{body}");
    let right = json!({"identity": *identity.to_secret_string()});

    // Neither a reader nor a platform admin may unlock, even with the right key.
    let reader = server.caller(&tenant, "rita", &["reader"]);
    let (status, body) = reader.post("/unlock", right.clone()).await;
    assert_error(status, &body, 403, "forbidden");
    let platform = server.caller_with(&tenant, server.platform_token());
    let (status, body) = platform.post("/unlock", right.clone()).await;
    assert_error(status, &body, 403, "forbidden");
    // Not a key at all: 400, and it does not count.
    let admin = server.caller(&tenant, "alice", &["admin"]);
    let (status, body) = admin.post("/unlock", json!({"identity": "hunter2"})).await;
    assert_error(status, &body, 400, "invalid_request");

    for _ in 0..5 {
        let wrong = CustomerIdentity::generate();
        let (status, body) = admin
            .post("/unlock", json!({"identity": *wrong.to_secret_string()}))
            .await;
        assert_error(status, &body, 401, "customer_key_rejected");
    }
    // The sixth attempt is refused, the right key too.
    let response = admin
        .request(reqwest::Method::POST, "/unlock")
        .json(&right)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 60, "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let (status, body) = admin.post("/search", json!({"query": "formula"})).await;
    assert_error(status, &body, 423, "tenant_locked");
}

#[tokio::test]
async fn enterprise_customer_key_enrolment_checks_its_input_and_the_certificate_names_it() {
    let server = Server::start(&[]);
    let platform = server.platform_token();
    let identity = CustomerIdentity::generate();
    let recipient = identity.recipient();
    let create = |body: serde_json::Value| {
        send(
            client()
                .post(server.url("/v1/tenants"))
                .bearer_auth(&platform)
                .json(&body),
        )
    };
    // A bad recipient, or a customer key below the enterprise tier: 400, nothing created.
    let (status, body) =
        create(json!({"name": "Bad", "tier": "enterprise", "customer_key": "age1nope"})).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) =
        create(json!({"name": "Bad", "tier": "premium", "customer_key": recipient.as_str()})).await;
    assert_error(status, &body, 400, "invalid_request");
    let (_, listed) = send(
        client()
            .get(server.url("/v1/tenants"))
            .bearer_auth(&platform),
    )
    .await;
    assert_eq!(listed["tenants"].as_array().unwrap().len(), 0, "{listed}");
    // A standard tenant cannot be enrolled: 409.
    let standard = create_tenant(&server, "Plain").await;
    let (status, body) = enrol(&server, &standard, recipient.as_str()).await;
    assert_error(status, &body, 409, "conflict");
    // A tenant's own admin cannot enrol (it is the platform's act): 403.
    let admin = server.caller(&standard, "alice", &["admin"]);
    let (status, body) = send(
        admin
            .request(reqwest::Method::PUT, "/customer-key")
            .json(&json!({"recipient": recipient.as_str()})),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");

    // Created locked, with its key.
    let (status, body) =
        create(json!({"name": "Delta", "tier": "enterprise", "customer_key": recipient.as_str()}))
            .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["customer_key"], recipient.as_str());
    let tenant = body["tenant_id"].as_str().unwrap().to_owned();
    let admin = server.caller(&tenant, "alice", &["admin"]);
    let (status, body) = admin.get("/documents").await;
    assert_error(status, &body, 423, "tenant_locked");
    // A tenant holding its customer's key stays enterprise: a tier change would drop it.
    let (status, body) = send(
        client()
            .patch(server.url(&format!("/v1/tenants/{tenant}")))
            .bearer_auth(&platform)
            .json(&json!({"tier": "standard"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    let (status, body) = send(
        client()
            .delete(server.url(&format!("/v1/tenants/{tenant}")))
            .bearer_auth(&platform),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let held = &body["certificate"]["customer_held_key"];
    assert_eq!(held["recipient"], recipient.as_str(), "{body}");
    assert!(
        held["statement"]
            .as_str()
            .unwrap()
            .contains("no operator holding the master key can undo it"),
        "{body}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.is_file() {
            files.push(path);
        }
    }
    files
}
