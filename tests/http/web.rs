//! The web app at `/` (embedded assets, strict Content-Security-Policy) and the extracted
//! text its document viewer highlights citations in.

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_web_app_is_served_from_the_binary_under_a_strict_policy() {
    let server = Server::start(&[]);
    let response = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"),
        "{policy}"
    );
    let html = response.text().await.unwrap();
    // No inline script or style, nothing from another origin.
    assert!(
        !html.contains("<style") && !html.contains(" style="),
        "{html}"
    );
    for script in html.split("<script").skip(1) {
        assert!(script.contains("src=\"/assets/"), "inline script: {script}");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );

    // Every asset the page and modules name is served, with a policy; others are 404.
    for (asset, kind) in [
        ("app.js", "text/javascript"),
        ("api.js", "text/javascript"),
        ("views.js", "text/javascript"),
        ("oidc.js", "text/javascript"),
        ("admin.js", "text/javascript"),
        ("app.css", "text/css"),
        ("report.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let response = client()
            .get(server.url(&format!("/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(response.headers().contains_key("content-security-policy"));
        // (The SVG namespace is a name, not a fetch.)
        let body = response
            .text()
            .await
            .unwrap()
            .replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("https://") && !body.contains("http://"),
            "{asset} names another origin"
        );
    }
    let (status, body) = send(client().get(server.url("/assets/../Cargo.toml"))).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = send(client().get(server.url("/assets/secret.js"))).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_extracted_text_is_served_to_its_tenant_only_and_citations_index_into_it() {
    let server = Server::start(&[]);
    let a = create_tenant(&server, "Northwind").await;
    let b = create_tenant(&server, "Contoso").await;
    let editor = server.caller(&a, "bob", &["editor"]);
    let document = editor.upload_indexed("LifewayFoods").await;
    let reader = server.caller(&a, "carol", &["reader"]);

    let (status, text) = reader.get(&format!("/documents/{document}/text")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text["document_id"], document.as_str());
    let chars: Vec<char> = text["text"].as_str().unwrap().chars().collect();
    let (status, hits) = reader
        .post(
            "/search",
            json!({"query": "governing law Illinois", "top_k": 3}),
        )
        .await;
    assert_eq!(status, 200, "{hits}");
    let hit = &hits["results"][0];
    let span: String = chars
        [hit["start"].as_u64().unwrap() as usize..hit["end"].as_u64().unwrap() as usize]
        .iter()
        .collect();
    assert_eq!(
        span.trim(),
        hit["text"].as_str().unwrap().trim(),
        "start/end count characters of this text"
    );

    // Audited like a download; another tenant gets an error, never the text.
    let (_, events) = server
        .caller(&a, "root", &["admin"])
        .get("/audit?limit=100")
        .await;
    assert!(events.to_string().contains("document.text"), "{events}");
    let stranger = server.caller(&b, "mallory", &["admin"]);
    let (status, body) = send(stranger.request(
        reqwest::Method::GET,
        &format!("/../{a}/documents/{document}/text"),
    ))
    .await;
    assert!(matches!(status, 403 | 404), "{status} {body}");
    let (status, body) = send(
        client()
            .get(server.url(&format!("/v1/tenants/{a}/documents/{document}/text")))
            .bearer_auth(&stranger.token),
    )
    .await;
    assert_error(status, &body, 403, "tenant_mismatch");
    let (status, body) = stranger.get(&format!("/documents/{document}/text")).await;
    assert_error(status, &body, 404, "not_found");
    assert!(!body.to_string().contains("Lifeway"), "{body}");
}

/// Issue 13: the web app signs in through an identity provider (OIDC, PKCE). The
/// providers' public settings are listed without a token and name no tenant; the page
/// policy lets the app reach their token endpoints (`connect-src`) and nothing else; the
/// appliance, not the browser, decides whether the provider's token is accepted.
#[tokio::test(flavor = "multi_thread")]
async fn issue_13_sign_in_providers_are_listed_and_their_token_endpoints_alone_join_the_policy() {
    use crate::issuers::{Provider, tenant};
    let plain = Server::start(&[]);
    let (status, listed) = send(client().get(plain.url("/v1/auth/providers"))).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed, json!({"providers": []}));
    let response = client().get(plain.url("/")).send().await.unwrap();
    let base_policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(base_policy.contains("connect-src 'self';"), "{base_policy}");

    let data = tempfile::tempdir().unwrap();
    cli(data.path(), &["init"]);
    let alpha = tenant(data.path(), "Alpha");
    let beta = tenant(data.path(), "Beta");
    let keys = tempfile::tempdir().unwrap();
    let (idp, jwks) = Provider::new("alpha", keys.path());
    let config = format!(
        r#"
[[identity_provider]]
issuer = "{issuer}"
jwks = "{jwks}"
tenants = ["{alpha}"]
audience = "bulkhead-web"
display_name = "Alpha SSO"
authorization_endpoint = "https://login.alpha.example/oauth2/authorize"
token_endpoint = "https://tokens.alpha.example:8443/oauth2/token"
client_id = "bulkhead-web"
"#,
        issuer = idp.issuer,
        jwks = jwks.display()
    );
    let config_path = keys.path().join("config.toml");
    std::fs::write(&config_path, &config).unwrap();
    let server = Server::start_on(data, &["--config", config_path.to_str().unwrap()]);

    let (status, listed) = send(client().get(server.url("/v1/auth/providers"))).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed,
        json!({"providers": [{
            "issuer": idp.issuer,
            "display_name": "Alpha SSO",
            "authorization_endpoint": "https://login.alpha.example/oauth2/authorize",
            "token_endpoint": "https://tokens.alpha.example:8443/oauth2/token",
            "client_id": "bulkhead-web",
            "scopes": "openid",
            "audience": "bulkhead-web",
        }]})
    );
    assert!(
        !listed.to_string().contains(&alpha),
        "no tenant id: {listed}"
    );

    // The page, the redirect URI and the assets: the token endpoint's origin in
    // connect-src, nothing else changed.
    for path in ["/", "/signin/callback", "/assets/oidc.js"] {
        let response = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            policy.contains("connect-src 'self' https://tokens.alpha.example:8443;"),
            "{policy}"
        );
        assert_eq!(
            policy.replace(" https://tokens.alpha.example:8443", ""),
            base_policy,
            "{path}"
        );
        assert!(!policy.contains("login.alpha.example"), "{policy}");
    }

    // The session check: the provider's id_token (aud = the client id) for its own
    // tenant is accepted, naming another tenant it is not, nor without a token.
    let id_token = |tenant: &str| {
        idp.token(
            json!({"aud": "bulkhead-web", "tenant_id": tenant, "roles": ["reader"],
            "nonce": "n", "sub": "dana"}),
        )
    };
    let (status, session) = send(
        client()
            .get(server.url("/v1/auth/session"))
            .bearer_auth(id_token(&alpha)),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["sub"], "dana");
    assert_eq!(session["tenant_id"], alpha.as_str());
    assert_eq!(session["roles"], json!(["reader"]));
    let (status, body) = send(
        client()
            .get(server.url(&format!("/v1/tenants/{alpha}/documents")))
            .bearer_auth(id_token(&alpha)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for refused in [
        client()
            .get(server.url("/v1/auth/session"))
            .bearer_auth(id_token(&beta)),
        client()
            .get(server.url("/v1/auth/session"))
            .bearer_auth(idp.token(json!({"tenant_id": alpha, "roles": ["reader"]}))),
        client().get(server.url("/v1/auth/session")),
    ] {
        let (status, body) = send(refused).await;
        assert_error(status, &body, 401, "unauthenticated");
    }

    // An endpoint in plain http off this machine, or half the settings, never starts.
    for (from, to) in [
        (
            "https://tokens.alpha.example:8443/oauth2/token",
            "http://tokens.alpha.example/oauth2/token",
        ),
        ("client_id = \"bulkhead-web\"", ""),
    ] {
        let bad = keys.path().join("bad.toml");
        std::fs::write(&bad, config.replace(from, to)).unwrap();
        let output = std::process::Command::new(binary())
            .arg("--data-dir")
            .arg(server.data.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("identity provider"), "{stderr}");
    }
}

/// Issue 13: a pdf's pages are recorded at indexing (sealed with the tenant's key), and
/// its extracted text comes with where each page starts, so the viewer can show the
/// original page of a cited passage; a text document has none.
#[tokio::test(flavor = "multi_thread")]
async fn issue_13_a_pdfs_text_says_where_each_page_starts() {
    let server = Server::start(&[]);
    let tenant = create_tenant(&server, "Northwind").await;
    let editor = server.caller(&tenant, "bob", &["editor"]);
    let fixture = crate::common::hosting_agreement_pdf();
    let (status, body) = editor.upload("hosting-agreement.pdf", fixture, true).await;
    assert_eq!(status, 201, "{body}");
    let pdf = body["document_id"].as_str().unwrap().to_owned();
    let (status, text) = editor.get(&format!("/documents/{pdf}/text")).await;
    assert_eq!(status, 200, "{text}");
    let starts: Vec<usize> = text["page_starts"]
        .as_array()
        .expect("a pdf has page starts")
        .iter()
        .map(|start| start.as_u64().unwrap() as usize)
        .collect();
    let chars: Vec<char> = text["text"].as_str().unwrap().chars().collect();
    // Three pages, in order, inside the text; each page's first words where they belong.
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert_eq!(starts[0], 0);
    assert!(
        starts.windows(2).all(|pair| pair[0] < pair[1]),
        "{starts:?}"
    );
    assert!(*starts.last().unwrap() < chars.len());
    let page = |n: usize| -> String {
        let end = starts.get(n).copied().unwrap_or(chars.len());
        chars[starts[n - 1]..end].iter().collect::<String>()
    };
    let squash = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squash(page(1).replace('\u{a0}', " ")).contains("WEB SITE BUILDING AND HOSTING AGREEMENT")
    );
    assert!(squash(page(3).replace('\u{a0}', " ")).contains("IN WITNESS WHEREOF"));
    assert!(!squash(page(2).replace('\u{a0}', " ")).contains("IN WITNESS WHEREOF"));

    let (status, body) = editor
        .upload("note.txt", b"A side letter about hosting.".to_vec(), true)
        .await;
    assert_eq!(status, 201, "{body}");
    let note = body["document_id"].as_str().unwrap().to_owned();
    let (status, text) = editor.get(&format!("/documents/{note}/text")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.get("page_starts").is_none(), "{text}");
}
