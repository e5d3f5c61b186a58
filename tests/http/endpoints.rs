//! Every endpoint's success path, roles, errors in the API.md shape, and SSE framing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Server, assert_error, client, create_tenant, sample, send, send_text, upload,
};

const LIFEWAY_QUESTION: &str = "Which state's laws govern the Lifeway endorsement agreement?";

#[tokio::test(flavor = "multi_thread")]
async fn health_keys_and_the_openapi_document_need_no_token() {
    let server = Server::start(&[]);
    let http = client();

    let (status, body) = send(http.get(server.url("/healthz"))).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let jwks = send(http.get(server.url("/.well-known/jwks.json"))).await.1;
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    let openapi = send(http.get(server.url("/openapi.json"))).await.1;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/tenants",
        "/v1/tenants/{t}/documents",
        "/v1/tenants/{t}/ask",
        "/v1/tenants/{t}/search",
    ] {
        assert!(openapi["paths"][path].is_object(), "openapi lacks {path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn platform_admins_create_and_list_tenants_and_tenant_admins_mint_tokens() {
    let server = Server::start(&[]);
    let tenant = create_tenant(&server, "Northwind").await;
    let platform = server.platform_token();
    let tenants = server.url("/v1/tenants");

    let (status, list) = send(client().get(&tenants).bearer_auth(&platform)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["tenants"][0]["tenant_id"], tenant.as_str());
    let duplicate = json!({"name": "Northwind"});
    let (status, body) = send(
        client()
            .post(&tenants)
            .bearer_auth(&platform)
            .json(&duplicate),
    )
    .await;
    assert_error(status, &body, 409, "conflict");

    let admin = server.caller(&tenant, "alice", &["admin"]);
    let (status, minted) = admin
        .post(
            "/tokens",
            json!({"user": "bob", "roles": ["editor"], "ttl_seconds": 600}),
        )
        .await;
    assert_eq!(status, 201, "{minted}");
    // The minted token works, with an editor's rights and no more.
    let editor = server.caller_with(&tenant, minted["token"].as_str().unwrap().to_owned());
    let (status, listed) = editor.get("/documents").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["documents"], json!([]));
    let (status, body) = editor
        .post("/tokens", json!({"user": "eve", "roles": ["admin"]}))
        .await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_are_uploaded_listed_by_page_downloaded_and_deleted() {
    let server = Server::start(&[]);
    let tenant = create_tenant(&server, "Northwind").await;
    let editor = server.caller(&tenant, "bob", &["editor"]);
    let reader = server.caller(&tenant, "carol", &["reader"]);

    // Upload: queued, then indexed by the background indexer; and with wait=true.
    let (name, bytes) = sample("ADUROBIOTECH");
    let (status, queued) = editor.upload(&name, bytes.clone(), false).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["status"], "queued");
    let (lifeway, lifeway_bytes) = sample("LifewayFoods");
    let (status, indexed) = editor.upload(&lifeway, lifeway_bytes.clone(), true).await;
    assert_eq!(status, 201, "{indexed}");
    assert_eq!(indexed["status"], "indexed");
    assert!(indexed["chunks"].as_u64().unwrap() > 5, "{indexed}");
    let lifeway_id = indexed["document_id"].as_str().unwrap().to_owned();
    let queued_id = queued["document_id"].as_str().unwrap();
    let document = reader.wait_until_indexed(queued_id).await;
    assert_eq!(document["filename"], name.as_str());
    assert_eq!(document["bytes"], bytes.len());

    // List with pagination.
    let (status, page) = reader.get("/documents?limit=1").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["documents"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, page2) = reader
        .get(&format!("/documents?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(status, 200, "{page2}");
    assert_eq!(page2["documents"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null(), "{page2}");
    assert_ne!(
        page["documents"][0]["document_id"],
        page2["documents"][0]["document_id"]
    );

    // The original content, byte for byte.
    let content = format!("/documents/{lifeway_id}/content");
    let response = reader.request(Method::GET, &content).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), lifeway_bytes);

    // Delete: gone from search at once, and from the documents routes.
    let deleted = editor.delete(&format!("/documents/{lifeway_id}")).await;
    assert_eq!(deleted, (204, Value::Null));
    let (status, results) = reader
        .post(
            "/search",
            json!({"query": "Lifeway Illinois endorsement", "mode": "hybrid"}),
        )
        .await;
    assert_eq!(status, 200, "{results}");
    assert!(
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["document_id"] != lifeway_id.as_str()),
        "{results}"
    );
    let (status, body) = reader.get(&format!("/documents/{lifeway_id}")).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = reader.get(&content).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_finds_the_passage_with_its_document_and_span() {
    let server = Server::start(&[]);
    let tenant = create_tenant(&server, "Northwind").await;
    let editor = server.caller(&tenant, "bob", &["editor"]);
    let reader = server.caller(&tenant, "carol", &["reader"]);
    let lifeway_id = editor.upload_indexed("LifewayFoods").await;
    // A short distractor, so that the first result has something to beat.
    let distractor = b"Consulting memo. This agreement is governed by the laws of Delaware.";
    let (status, body) = editor.upload("memo.txt", distractor.to_vec(), true).await;
    assert_eq!(status, 201, "{body}");

    let (status, results) = reader
        .post(
            "/search",
            json!({"query": "governing law Illinois", "top_k": 3, "mode": "keyword"}),
        )
        .await;
    assert_eq!(status, 200, "{results}");
    let first = &results["results"][0];
    assert_eq!(first["document_id"], lifeway_id.as_str(), "{results}");
    for field in ["chunk_id", "filename", "score", "text", "start", "end"] {
        assert!(!first[field].is_null(), "search result lacks {field}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_answers_with_citations_and_streams_only_the_checked_answer() {
    let server = Server::start(&[]);
    let tenant = create_tenant(&server, "Northwind").await;
    let editor = server.caller(&tenant, "bob", &["editor"]);
    let reader = server.caller(&tenant, "carol", &["reader"]);
    let lifeway_id = editor.upload_indexed("LifewayFoods").await;

    let (status, answer) = reader
        .post("/ask", json!({"question": LIFEWAY_QUESTION}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["grounded"], true, "{answer}");
    assert_eq!(answer["citations"][0]["document_id"], lifeway_id.as_str());
    assert!(answer["timings_ms"]["total"].as_u64().is_some(), "{answer}");

    // Streaming: token events, then citations, then done with the full object.
    let response = reader
        .request(Method::POST, "/ask")
        .json(&json!({"question": LIFEWAY_QUESTION, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let events = sse_events(&text);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.len() >= 3, "{text}");
    assert_eq!(&names[names.len() - 2..], ["citations", "done"], "{text}");
    assert!(
        names[..names.len() - 2].iter().all(|name| *name == "token"),
        "{text}"
    );
    let streamed: String = events
        .iter()
        .filter(|(name, _)| name == "token")
        .map(|(_, data)| data["text"].as_str().unwrap())
        .collect();
    let done = &events.last().unwrap().1;
    assert_eq!(
        streamed,
        done["answer"].as_str().unwrap(),
        "the stream carries exactly the checked answer"
    );
    assert_eq!(done["citations"], events[events.len() - 2].1);

    // A method a client invents is one "OTHER" label, not a series of its own (issue 11,
    // finding 6).
    for invented in ["FROBNICATE", "XYZZYMETHOD"] {
        let method = reqwest::Method::from_bytes(invented.as_bytes()).unwrap();
        let _ = client()
            .request(method, server.url("/healthz"))
            .send()
            .await;
    }

    // Metrics count what happened, by route template.
    let metrics = send_text(client().get(server.url("/metrics"))).await;
    assert!(!metrics.contains("FROBNICATE") && !metrics.contains("XYZZYMETHOD"));
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
    let asked = "bulkhead_http_requests_total{method=\"POST\",route=\"/v1/tenants/{t}/ask\",status=\"200\"}";
    assert!(metrics.contains(asked), "{metrics}");
    assert!(!metrics.contains(&tenant), "metrics carry no tenant ids");
}

/// The (event, data) pairs of a server-sent event stream.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    let field = |block: &str, name: &str| {
        block
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_owned())
    };
    text.split("\n\n")
        .filter_map(|block| {
            let event = field(block, "event:")?;
            let data = field(block, "data:")?;
            Some((event, serde_json::from_str(&data).ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_access_reviews_and_the_audit_log_count_activity_but_hold_no_content() {
    let server = Server::start(&[]);
    let tenant = create_tenant(&server, "Northwind").await;
    let editor = server.caller(&tenant, "bob", &["editor"]);
    let reader = server.caller(&tenant, "carol", &["reader"]);
    editor.upload_indexed("LifewayFoods").await;
    let (name, bytes) = sample("ADUROBIOTECH");
    assert_eq!(editor.upload(&name, bytes, false).await.0, 202);
    let keyword = json!({"query": "governing law Illinois", "mode": "keyword"});
    assert_eq!(reader.post("/search", keyword).await.0, 200);
    let (status, answer) = reader
        .post("/ask", json!({"question": LIFEWAY_QUESTION}))
        .await;
    assert_eq!(status, 200, "{answer}");
    // A clause question is answered by the rules; a free-form one goes to the model, whose
    // tokens are metered.
    let free_form = "What does Lifeway pay under the endorsement agreement?";
    let (status, answer) = reader.post("/ask", json!({"question": free_form})).await;
    assert_eq!(status, 200, "{answer}");
    let hybrid = json!({"query": "Lifeway Illinois endorsement", "mode": "hybrid"});
    assert_eq!(reader.post("/search", hybrid).await.0, 200);

    // Usage, as the tenant's admin: counts and token numbers.
    let admin = server.caller(&tenant, "adm", &["admin"]);
    let (status, usage) = admin.get("/usage").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["documents"], 2, "{usage}");
    assert!(usage["queries"].as_u64().unwrap() >= 4, "{usage}");
    assert!(usage["tokens_in"].as_u64().unwrap() > 100, "{usage}");

    // The access review, as the tenant's auditor: HTML without external assets, CSV with
    // pseudonyms, JSON for a quarter.
    let auditor = server.caller(&tenant, "aud", &["auditor"]);
    let html = auditor.get_text("/reports/access-review?format=html").await;
    assert!(
        html.contains("<svg") && html.contains("document.upload"),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains(" src="),
        "no external assets"
    );
    let csv = auditor.get_text("/reports/access-review?format=csv").await;
    assert!(
        csv.starts_with("seq,at,user,action,resource,outcome\n"),
        "{csv}"
    );
    assert!(csv.contains(",ask,"), "{csv}");
    assert!(
        !csv.contains("carol") && !csv.contains("bob"),
        "users are pseudonyms"
    );
    let (status, review) = auditor.get("/reports/access-review?quarter=2026Q4").await;
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["tenant_id"], tenant.as_str());

    // The audit log names actions and ids, never questions or file names.
    let (status, events) = auditor.get("/audit?limit=1000").await;
    assert_eq!(status, 200, "{events}");
    let log = events.to_string();
    assert!(
        log.contains("\"ask\"") && log.contains("document.upload"),
        "{log}"
    );
    for secret in [
        "Lifeway endorsement",
        "governing law Illinois",
        "ADUROBIOTECH",
        "LifewayFoods",
        "carol",
        "bob",
    ] {
        assert!(!log.contains(secret), "audit log holds {secret}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_allow_and_refuse_the_right_routes() {
    let server = Server::start(&[]);
    let http = client();
    let tenant = create_tenant(&server, "Roles Inc").await;
    let reader = server.token(&tenant, "r", &["reader"]);
    let editor = server.token(&tenant, "e", &["editor"]);
    let auditor = server.token(&tenant, "a", &["auditor"]);
    let admin = server.token(&tenant, "adm", &["admin"]);
    let platform = server.platform_token();
    let (name, bytes) = sample("SoupmanInc");

    let (status, body) = upload(&server, &tenant, &reader, &name, bytes.clone(), false).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = upload(&server, &tenant, &auditor, &name, bytes.clone(), false).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = upload(&server, &tenant, &platform, &name, bytes.clone(), false).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, uploaded) = upload(&server, &tenant, &editor, &name, bytes.clone(), true).await;
    assert_eq!(status, 201, "{uploaded}");
    let (status, _) = upload(&server, &tenant, &admin, &name, bytes, false).await;
    assert_eq!(status, 202);

    let search = |token: String| {
        send(
            client()
                .post(server.url(&format!("/v1/tenants/{tenant}/search")))
                .bearer_auth(token)
                .json(&serde_json::json!({"query": "franchise", "mode": "keyword"})),
        )
    };
    assert_eq!(search(reader.clone()).await.0, 200);
    assert_eq!(search(editor.clone()).await.0, 200);
    let (status, body) = search(auditor.clone()).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = search(platform.clone()).await;
    assert_error(status, &body, 403, "forbidden");

    for token in [&reader, &editor, &admin, &auditor] {
        let (status, body) = send(http.get(server.url("/v1/tenants")).bearer_auth(token)).await;
        assert_error(status, &body, 403, "forbidden");
    }
    let mint = |token: String| {
        send(
            client()
                .post(server.url(&format!("/v1/tenants/{tenant}/tokens")))
                .bearer_auth(token)
                .json(&serde_json::json!({"user": "x", "roles": ["reader"]})),
        )
    };
    assert_eq!(mint(admin.clone()).await.0, 201);
    // Issue 11: a platform admin never mints a tenant's tokens.
    let (status, body) = mint(platform.clone()).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = mint(editor.clone()).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = send(
        http.post(server.url(&format!("/v1/tenants/{tenant}/tokens")))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"user": "x", "roles": ["platform_admin"]})),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_use_the_api_shape() {
    let server = Server::start(&["--inference-workers", "1"]);
    let http = client();
    let tenant = create_tenant(&server, "Errors Ltd").await;
    let editor = server.token(&tenant, "e", &["editor"]);

    let (status, body) = send(http.get(server.url("/no/such/route"))).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) =
        send(http.get(server.url(&format!("/v1/tenants/{tenant}/documents")))).await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = send(
        http.get(server.url(&format!(
            "/v1/tenants/{tenant}/documents/d_00000000000000000000"
        )))
        .bearer_auth(&editor),
    )
    .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = send(
        http.get(server.url(&format!("/v1/tenants/{tenant}/documents/not-an-id")))
            .bearer_auth(&editor),
    )
    .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = send(
        http.post(server.url(&format!("/v1/tenants/{tenant}/search")))
            .bearer_auth(&editor)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = send(
        http.post(server.url(&format!("/v1/tenants/{tenant}/search")))
            .bearer_auth(&editor)
            .json(&serde_json::json!({"query": "x", "unexpected": 1})),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = send(
        http.post(server.url(&format!("/v1/tenants/{tenant}/search")))
            .bearer_auth(&editor)
            .json(&serde_json::json!({"query": "   "})),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = send(
        http.post(server.url(&format!("/v1/tenants/{tenant}/search")))
            .bearer_auth(&editor)
            .body("query"),
    )
    .await;
    assert_error(status, &body, 415, "unsupported_media_type");
    let (status, body) = send(
        http.post(server.url(&format!("/v1/tenants/{tenant}/documents")))
            .bearer_auth(&editor)
            .body("raw"),
    )
    .await;
    assert_error(status, &body, 415, "unsupported_media_type");
    let (status, body) = send(http.delete(server.url("/healthz"))).await;
    assert_error(status, &body, 405, "method_not_allowed");

    // 413: over the upload limit (50 MiB by default), refused from the declared length
    // before the body is sent (`Expect: 100-continue`).
    let (status, body) = oversized_upload(&server, &tenant, &editor);
    assert_error(status, &body, 413, "payload_too_large");
    // 422: a document that cannot be parsed, with wait=true.
    let (status, body) = upload(
        &server,
        &tenant,
        &editor,
        "fake.pdf",
        b"%PDF-1.7 truncated".to_vec(),
        true,
    )
    .await;
    assert_error(status, &body, 422, "unprocessable_document");

    // 500: a blob that fails its integrity check yields a generic message, no detail.
    let (name, bytes) = sample("VEONEER");
    let (_, uploaded) = upload(&server, &tenant, &editor, &name, bytes, true).await;
    let document = uploaded["document_id"].as_str().unwrap();
    let blob = server
        .data
        .path()
        .join("tenants")
        .join(&tenant)
        .join("blobs")
        .join(format!("{document}.bin"));
    let mut sealed = std::fs::read(&blob).unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0xff;
    std::fs::write(&blob, sealed).unwrap();
    let (status, body) = send(
        http.get(server.url(&format!(
            "/v1/tenants/{tenant}/documents/{document}/content"
        )))
        .bearer_auth(&editor),
    )
    .await;
    assert_error(status, &body, 500, "internal");
    assert_eq!(body["error"]["message"], "internal error");
    // The server is still up.
    assert_eq!(send(http.get(server.url("/healthz"))).await.0, 200);
}

/// Sends only the headers of a 60 MB multipart upload, as a client using
/// `Expect: 100-continue` does, and reads the answer.
fn oversized_upload(server: &Server, tenant: &str, token: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /v1/tenants/{tenant}/documents HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 60000000\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        response.extend_from_slice(&buffer[..read]);
        if response.windows(4).any(|w| w == b"\r\n\r\n") && response.ends_with(b"}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_deletion_certificate_verifies_with_the_published_key_and_tokens_die() {
    let server = Server::start(&[]);
    let http = client();
    let tenant = create_tenant(&server, "Leaving Ltd").await;
    let reader = server.token(&tenant, "r", &["reader"]);
    let auditor = server.token(&tenant, "aud", &["auditor"]);
    assert_eq!(
        send(
            http.get(server.url(&format!("/v1/tenants/{tenant}/documents")))
                .bearer_auth(&reader)
        )
        .await
        .0,
        200
    );
    let (status, events) = send(
        http.get(server.url(&format!("/v1/tenants/{tenant}/audit")))
            .bearer_auth(&auditor),
    )
    .await;
    assert_eq!(status, 200, "{events}");
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "tenant.create")
    );
    let (status, body) = send(
        http.get(server.url(&format!("/v1/tenants/{tenant}/audit")))
            .bearer_auth(&reader),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");

    let platform = server.platform_token();
    let (status, deleted) = send(
        http.delete(server.url(&format!("/v1/tenants/{tenant}")))
            .bearer_auth(&platform),
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    let jwks = send(http.get(server.url("/.well-known/jwks.json"))).await.1;
    let payload = bulkhead::auth::tokens::verify_signed_document(
        deleted["jws"].as_str().unwrap(),
        &jwks["keys"][0],
    )
    .unwrap();
    assert_eq!(payload, deleted["certificate"]);
    assert_eq!(payload["tenant_id"], tenant.as_str());

    let (status, body) = send(
        http.get(server.url(&format!("/v1/tenants/{tenant}/documents")))
            .bearer_auth(&reader),
    )
    .await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, report) = send(
        http.get(server.url("/v1/audit/verify"))
            .bearer_auth(&platform),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["entries"].as_u64().unwrap() >= 2);
    let (status, body) = send(
        http.get(server.url("/v1/audit/verify"))
            .bearer_auth(&reader),
    )
    .await;
    // Verifying the chain is the platform's: a tenant reader is refused by role.
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_stream_an_export() {
    let server = Server::start(&[]);
    let http = client();
    let tenant = create_tenant(&server, "Portable").await;
    let editor = server.token(&tenant, "e", &["editor"]);
    let admin = server.token(&tenant, "a", &["admin"]);
    let (name, bytes) = sample("SoupmanInc");
    upload(&server, &tenant, &editor, &name, bytes, true).await;
    let (status, body) = send(
        http.post(server.url(&format!("/v1/tenants/{tenant}/export")))
            .bearer_auth(&editor),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    let response = http
        .post(server.url(&format!("/v1/tenants/{tenant}/export")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let archive = response.bytes().await.unwrap();
    assert!(archive.windows(13).any(|w| w == b"manifest.json"));
    assert!(archive.windows(12).any(|w| w == b"chunks.jsonl"));
    let (status, body) = send(
        http.post(server.url(&format!("/v1/tenants/{tenant}/export")))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"recipient": "not-a-key"})),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
}
