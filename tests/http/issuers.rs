//! Issue 11, finding 2: each identity provider is bound to the tenants it may name and
//! the roles it may grant; only the operator's provider grants platform_admin.

use base64::Engine;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

use crate::harness::{Server, assert_error, cli, client, send};

/// A company identity provider: its key, published as a JWKS file, and its issuer.
pub(crate) struct Provider {
    pub(crate) issuer: String,
    kid: String,
    key: SigningKey,
}

impl Provider {
    pub(crate) fn new(name: &str, dir: &std::path::Path) -> (Provider, std::path::PathBuf) {
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let x =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": format!("{name}-1"), "alg": "EdDSA"}]});
        let path = dir.join(format!("{name}-jwks.json"));
        std::fs::write(&path, jwks.to_string()).unwrap();
        let provider = Provider {
            issuer: format!("https://idp.{name}.example"),
            kid: format!("{name}-1"),
            key,
        };
        (provider, path)
    }

    /// A token of this provider with the standard claims and `extra` ones.
    pub(crate) fn token(&self, extra: Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({"sub": "sso-user", "iss": self.issuer, "aud": "bulkhead",
            "iat": now, "exp": now + 300, "jti": format!("j-{now}")});
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        let header = jsonwebtoken::Header {
            kid: Some(self.kid.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA)
        };
        let der = self.key.to_pkcs8_der().unwrap();
        let encoding = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
        jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
    }
}

pub(crate) fn tenant(data: &std::path::Path, name: &str) -> String {
    let created: Value =
        serde_json::from_str(&cli(data, &["tenant", "create", name, "--json"])).unwrap();
    created["tenant_id"].as_str().unwrap().to_owned()
}

async fn get(server: &Server, path: &str, token: &str) -> (u16, Value) {
    send(client().get(server.url(path)).bearer_auth(token)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_11_identity_providers_act_only_for_their_own_tenants_and_roles() {
    let data = tempfile::tempdir().unwrap();
    cli(data.path(), &["init"]);
    let alpha = tenant(data.path(), "Alpha");
    let beta = tenant(data.path(), "Beta");
    let keys = tempfile::tempdir().unwrap();
    let (alpha_idp, alpha_jwks) = Provider::new("alpha", keys.path());
    let (beta_idp, beta_jwks) = Provider::new("beta", keys.path());
    let (ops_idp, ops_jwks) = Provider::new("ops", keys.path());
    // Alpha's provider carries the tenant in a claim of its own and grants readers and
    // admins; Beta's uses the default claim and roles; the operator's names no tenant.
    let config = format!(
        r#"
[[identity_provider]]
issuer = "{}"
jwks = "{}"
tenants = ["{alpha}"]
tenant_claim = "org"
roles = ["reader", "admin"]

[[identity_provider]]
issuer = "{}"
jwks = "{}"
tenants = ["{beta}"]

[[identity_provider]]
issuer = "{}"
jwks = "{}"
operator = true
"#,
        alpha_idp.issuer,
        alpha_jwks.display(),
        beta_idp.issuer,
        beta_jwks.display(),
        ops_idp.issuer,
        ops_jwks.display()
    );
    let config_path = keys.path().join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    let server = Server::start_on(data, &["--config", config_path.to_str().unwrap()]);
    let documents = |tenant: &str| format!("/v1/tenants/{tenant}/documents");

    // Each provider reaches its own tenant.
    let alpha_reader = alpha_idp.token(json!({"org": alpha, "roles": ["reader"]}));
    let (status, body) = get(&server, &documents(&alpha), &alpha_reader).await;
    assert_eq!(status, 200, "{body}");
    let beta_reader = beta_idp.token(json!({"tenant_id": beta, "roles": ["reader"]}));
    let (status, body) = get(&server, &documents(&beta), &beta_reader).await;
    assert_eq!(status, 200, "{body}");

    // Alpha's provider naming Beta: 401, and Beta's log shows the denied attempt.
    let forged = alpha_idp.token(json!({"org": beta, "roles": ["admin"]}));
    for path in [documents(&beta), documents(&alpha), "/v1/models".to_owned()] {
        let (status, body) = get(&server, &path, &forged).await;
        assert_error(status, &body, 401, "unauthenticated");
    }
    let beta_auditor = server.token(&beta, "auditor", &["auditor"]);
    let (status, events) = get(&server, &format!("/v1/tenants/{beta}/audit"), &beta_auditor).await;
    assert_eq!(status, 200, "{events}");
    let unbound: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["action"] == "token.issuer_not_bound")
        .collect();
    assert!(!unbound.is_empty(), "{events}");
    assert!(
        unbound.iter().all(|event| event["outcome"] == "denied"),
        "{events}"
    );
    // Nothing of the issuer or its user reaches Beta's log.
    assert!(!events.to_string().contains("alpha.example"), "{events}");

    // A role the provider may not grant, and platform_admin from a tenant's provider: 401.
    let editor = alpha_idp.token(json!({"org": alpha, "roles": ["editor"]}));
    let (status, body) = get(&server, &documents(&alpha), &editor).await;
    assert_error(status, &body, 401, "unauthenticated");
    for idp in [&alpha_idp, &beta_idp] {
        let admin = idp.token(json!({"roles": ["platform_admin"]}));
        let (status, body) = get(&server, "/v1/tenants", &admin).await;
        assert_error(status, &body, 401, "unauthenticated");
    }
    // The operator's provider grants platform_admin, and no tenant's content.
    let operator = ops_idp.token(json!({"roles": ["platform_admin"]}));
    let (status, body) = get(&server, "/v1/tenants", &operator).await;
    assert_eq!(status, 200, "{body}");
    let operator_reader = ops_idp.token(json!({"tenant_id": alpha, "roles": ["reader"]}));
    let (status, body) = get(&server, &documents(&alpha), &operator_reader).await;
    assert_error(status, &body, 401, "unauthenticated");

    // The platform's log names the issuer.
    let verified = cli(server.data.path(), &["audit", "verify"]);
    assert!(!verified.is_empty());
}

#[test]
fn issue_11_a_provider_cannot_be_configured_to_grant_platform_admin_or_name_a_bad_tenant() {
    let data = tempfile::tempdir().unwrap();
    cli(data.path(), &["init"]);
    let keys = tempfile::tempdir().unwrap();
    let (idp, jwks) = Provider::new("x", keys.path());
    for binding in [
        "roles = [\"platform_admin\"]".to_owned(),
        "tenants = [\"acme\"]".to_owned(),
    ] {
        let config = keys.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[[identity_provider]]\nissuer = \"{}\"\njwks = \"{}\"\n{binding}\n",
                idp.issuer,
                jwks.display()
            ),
        )
        .unwrap();
        let output = std::process::Command::new(crate::harness::binary())
            .arg("--data-dir")
            .arg(data.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{binding}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&idp.issuer), "{stderr}");
    }
}
