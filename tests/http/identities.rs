//! Issue 11, "the identities above the tenants": a platform admin reaches a tenant only
//! through its single-use first-admin invitation; minted tokens name their minter, live no
//! longer than it and can be revoked; each signed purpose has its own `typ` and key.

use std::process::Command;

use base64::Engine;
use serde_json::{Value, json};

use crate::harness::{Server, assert_error, binary, cli, client, models_dir, send};

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn header(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap()
}

async fn create(server: &Server, name: &str) -> Value {
    let (status, body) = send(
        client()
            .post(server.url("/v1/tenants"))
            .bearer_auth(server.platform_token())
            .json(&json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn accept(server: &Server, invitation: &str, user: &str) -> (u16, Value) {
    send(
        client()
            .post(server.url("/v1/invitations/accept"))
            .json(&json!({"invitation": invitation, "user": user})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_11_platform_admins_cannot_mint_tenant_tokens_only_invite_one_first_admin() {
    let server = Server::start(&[]);
    let created = create(&server, "Northwind").await;
    let tenant = created["tenant_id"].as_str().unwrap().to_owned();
    for field in ["name", "tier", "created_at"] {
        assert!(created[field].is_string(), "{created}");
    }
    let invitation = created["invitation"].as_str().unwrap().to_owned();
    let platform = server.platform_token();
    let tokens = server.url(&format!("/v1/tenants/{tenant}/tokens"));

    // The platform admin cannot mint an admin token for the tenant (the review's path to
    // its content).
    let (status, body) = send(
        client()
            .post(&tokens)
            .bearer_auth(&platform)
            .json(&json!({"user": "ops", "roles": ["admin"]})),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");

    // The invitation is stored hashed, never as itself.
    let database = std::fs::read(server.data.path().join("system.db")).unwrap();
    let secret = invitation.as_bytes();
    assert!(
        !database
            .windows(secret.len())
            .any(|window| window == secret)
    );

    // Accepted once: an admin token of that tenant, which works.
    let (status, first) = accept(&server, &invitation, "alice").await;
    assert_eq!(status, 201, "{first}");
    let admin = first["token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&admin)["tenant_id"], tenant.as_str());
    assert_eq!(claims(&admin)["roles"], json!(["admin"]));
    assert_eq!(claims(&admin)["jti"], first["jti"]);
    assert!(first["expires_at"].is_string(), "{first}");
    let (status, minted) = send(
        client()
            .post(&tokens)
            .bearer_auth(&admin)
            .json(&json!({"user": "bob", "roles": ["reader"]})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");

    // Used, forged or empty: 401.
    for attempt in [invitation.as_str(), "inv_0000", ""] {
        let (status, body) = accept(&server, attempt, "mallory").await;
        assert_error(status, &body, 401, "unauthenticated");
    }

    // The tenant sees the invitation and its use in its own log and access review.
    let (status, events) = send(
        client()
            .get(server.url(&format!("/v1/tenants/{tenant}/audit")))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200, "{events}");
    let actions: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect();
    for action in ["invitation.issue", "invitation.accept", "token.mint"] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }

    // The CLI prints the same object, invitation included.
    let created: Value = serde_json::from_str(&cli(
        server.data.path(),
        &["tenant", "create", "Contoso", "--json"],
    ))
    .unwrap();
    assert!(created["tenant_id"].as_str().unwrap().starts_with("t_"));
    assert!(created["invitation"].is_string(), "{created}");
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_11_minted_tokens_name_their_minter_live_no_longer_and_can_be_revoked() {
    let server = Server::start(&[]);
    let tenant = create(&server, "Northwind").await["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let minter: Value = serde_json::from_str(&cli(
        server.data.path(),
        &[
            "token", "--tenant", &tenant, "--user", "alice", "--role", "admin", "--ttl", "5m",
            "--json",
        ],
    ))
    .unwrap();
    let admin = minter["token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&admin)["jti"], minter["jti"]);
    let mint = |user: &'static str, ttl: u64| {
        send(
            client()
                .post(server.url(&format!("/v1/tenants/{tenant}/tokens")))
                .bearer_auth(&admin)
                .json(&json!({"user": user, "roles": ["editor"], "ttl_seconds": ttl})),
        )
    };
    // A 30-day request from a 5-minute admin token: capped at the admin's expiry.
    let (status, minted) = mint("bob", 30 * 24 * 3600).await;
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let minted_claims = claims(&token);
    assert!(
        minted_claims["exp"].as_u64().unwrap() <= claims(&admin)["exp"].as_u64().unwrap(),
        "{minted_claims}"
    );
    assert_eq!(minted_claims["jti"], minted["jti"]);
    assert!(minted_claims["minted_by"].is_string(), "{minted_claims}");

    let documents = server.url(&format!("/v1/tenants/{tenant}/documents"));
    let list = |token: String| send(client().get(&documents).bearer_auth(token));
    assert_eq!(list(token.clone()).await.0, 200);

    // Revoked by its jti: refused from then on.
    let jti = minted["jti"].as_str().unwrap();
    let revoke = server.url(&format!("/v1/tenants/{tenant}/tokens/{jti}"));
    let (status, body) = send(client().delete(&revoke).bearer_auth(&token)).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = send(client().delete(&revoke).bearer_auth(&admin)).await;
    assert_eq!(status, 204);
    let (status, body) = list(token.clone()).await;
    assert_error(status, &body, 401, "unauthenticated");

    // Every token of a user, from the command line.
    let (_, carol) = mint("carol", 600).await;
    let carol = carol["token"].as_str().unwrap().to_owned();
    assert_eq!(list(carol.clone()).await.0, 200);
    cli(
        server.data.path(),
        &["token", "revoke", "--tenant", &tenant, "--user", "carol"],
    );
    let (status, body) = list(carol).await;
    assert_error(status, &body, 401, "unauthenticated");
    // Others are untouched.
    assert_eq!(list(admin.clone()).await.0, 200);

    // Revocations are in the tenant's log.
    let (_, events) = send(
        client()
            .get(server.url(&format!("/v1/tenants/{tenant}/audit")))
            .bearer_auth(&admin),
    )
    .await;
    let revocations = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["action"] == "token.revoke")
        .count();
    assert_eq!(revocations, 2, "{events}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_admins_list_their_own_tokens_with_revocations_and_never_the_tokens() {
    let server = Server::start(&[]);
    let mut tenants = Vec::new();
    for name in ["Northwind", "Contoso"] {
        let tenant = create(&server, name).await["tenant_id"]
            .as_str()
            .unwrap()
            .to_owned();
        tenants.push(tenant);
    }
    let (north, contoso) = (&tenants[0], &tenants[1]);
    let admin = server.token(north, "alice", &["admin"]);
    let (status, minted) = send(
        client()
            .post(server.url(&format!("/v1/tenants/{north}/tokens")))
            .bearer_auth(&admin)
            .json(&json!({"user": "bob@northwind.example", "roles": ["editor", "reader"]})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let bob = minted["token"].as_str().unwrap();
    let tokens = server.url(&format!("/v1/tenants/{north}/tokens"));
    let list = |token: String| send(client().get(&tokens).bearer_auth(token));
    let (status, listed) = list(admin.clone()).await;
    assert_eq!(status, 200, "{listed}");
    let rows = listed["tokens"].as_array().unwrap();
    let row = |user: &str| rows.iter().find(|row| row["user"] == user).cloned();
    let bob_row = row("bob@northwind.example").expect("the minted token is listed");
    assert_eq!(bob_row["jti"], minted["jti"]);
    assert_eq!(bob_row["roles"], json!(["editor", "reader"]));
    assert_eq!(bob_row["revoked"], false);
    assert!(
        row("alice").is_some(),
        "the operator's token is listed too: {listed}"
    );
    assert!(
        !listed.to_string().contains(bob),
        "a listing never holds a token"
    );

    // Readers and other tenants' admins see nothing.
    let reader = server.token(north, "carol", &["reader"]);
    let (status, body) = list(reader).await;
    assert_error(status, &body, 403, "forbidden");
    let other_admin = server.token(contoso, "mallory", &["admin"]);
    let (status, body) = list(other_admin.clone()).await;
    assert_error(status, &body, 403, "tenant_mismatch");
    let (_, theirs) = send(
        client()
            .get(server.url(&format!("/v1/tenants/{contoso}/tokens")))
            .bearer_auth(&other_admin),
    )
    .await;
    assert!(!theirs.to_string().contains("bob@northwind"), "{theirs}");

    // Revoked by id: listed as revoked.
    let jti = minted["jti"].as_str().unwrap();
    let (status, _) = send(
        client()
            .delete(server.url(&format!("/v1/tenants/{north}/tokens/{jti}")))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 204);
    let (_, listed) = list(admin.clone()).await;
    let revoked = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["jti"] == jti)
        .map(|row| row["revoked"].clone());
    assert_eq!(revoked, Some(json!(true)), "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_11_an_access_token_wrapped_as_a_certificate_is_refused() {
    let server = Server::start(&[]);
    let tenant = create(&server, "Northwind").await["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reader = server.token(&tenant, "carol", &["reader"]);
    assert_eq!(header(&reader)["typ"], "at+jwt");
    let verify = |document: &Value, jwks: Option<&Value>| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("certificate.json");
        std::fs::write(&file, document.to_string()).unwrap();
        let mut command = Command::new(binary());
        command
            .arg("--data-dir")
            .arg(server.data.path())
            .arg("--models-dir")
            .arg(models_dir())
            .args(["certificate", "verify"])
            .arg(&file);
        if let Some(jwks) = jwks {
            let path = dir.path().join("jwks.json");
            std::fs::write(&path, jwks.to_string()).unwrap();
            command.arg("--jwks").arg(path);
        }
        command.output().unwrap().status.success()
    };
    let jwks = send(client().get(server.url("/.well-known/jwks.json")))
        .await
        .1;
    let forged = json!({"certificate": claims(&reader), "jws": reader});
    assert!(
        !verify(&forged, None),
        "an access token passed as a certificate"
    );
    assert!(!verify(&forged, Some(&jwks)));
    for key in jwks["keys"].as_array().unwrap() {
        assert!(bulkhead::auth::tokens::verify_signed_document(&reader, key).is_err());
    }

    // A real certificate still verifies, and it cannot be used as a token.
    let (status, deleted) = send(
        client()
            .delete(server.url(&format!("/v1/tenants/{tenant}")))
            .bearer_auth(server.platform_token()),
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert!(verify(&deleted, None));
    assert!(verify(&deleted, Some(&jwks)));
    let jws = deleted["jws"].as_str().unwrap();
    assert_eq!(header(jws)["typ"], "bulkhead-deletion-certificate+jws");
    let (status, body) = send(client().get(server.url("/v1/tenants")).bearer_auth(jws)).await;
    assert_error(status, &body, 401, "unauthenticated");
}
