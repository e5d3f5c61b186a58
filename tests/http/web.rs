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
