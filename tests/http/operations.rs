//! Operations: TLS 1.3 only, back-pressure (503), per-tenant rate limits (429),
//! graceful shutdown that loses no acknowledged upload, and models loaded as the server
//! starts.

use std::process::Command;

use crate::harness::{Server, assert_error, cli, client, create_tenant, sample, send, upload};

#[tokio::test(flavor = "multi_thread")]
async fn tls_1_3_is_served_and_tls_1_2_is_refused() {
    let certificate = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certificate.cert.pem()).unwrap();
    std::fs::write(&key_path, certificate.signing_key.serialize_pem()).unwrap();
    let server = Server::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let connect = format!("127.0.0.1:{port}");
    let s_client = |version: &str| {
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &connect,
                version,
                "-servername",
                "localhost",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed (.ci/run installs it)")
    };
    let tls12 = s_client("-tls1_2");
    assert!(
        !tls12.status.success(),
        "a TLS 1.2-only client must be refused"
    );
    let tls13 = s_client("-tls1_3");
    let transcript = String::from_utf8_lossy(&tls13.stdout);
    assert!(transcript.contains("TLSv1.3"), "{transcript}");
    // And HTTP works over it.
    let output = Command::new("curl")
        .args([
            "-sk",
            "--tlsv1.3",
            &format!("https://localhost:{port}/healthz"),
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        r#"{"status":"ok"}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_inference_pool_answers_503_and_a_busy_tenant_429() {
    let server = Server::start(&[
        "--inference-workers",
        "1",
        "--inference-queue",
        "0",
        "--rate-limit",
        "30",
    ]);
    let tenant = create_tenant(&server, "Busy").await;
    let editor = server.token(&tenant, "e", &["editor"]);
    let (name, bytes) = sample("ADUROBIOTECH");
    upload(&server, &tenant, &editor, &name, bytes, true).await;
    let ask = || {
        send(
            client()
                .post(server.url(&format!("/v1/tenants/{tenant}/ask")))
                .bearer_auth(&editor)
                .json(&serde_json::json!({"question": "Until when does the consulting agreement continue?"})),
        )
    };
    let results = futures_join(vec![ask(), ask(), ask(), ask()]).await;
    let overloaded: Vec<_> = results
        .iter()
        .filter(|(status, _)| *status == 503)
        .collect();
    assert!(!overloaded.is_empty(), "{results:?}");
    assert!(
        results.iter().any(|(status, _)| *status == 200),
        "{results:?}"
    );
    assert_error(503, &overloaded[0].1, 503, "overloaded");
    let response = client()
        .post(server.url(&format!("/v1/tenants/{tenant}/search")))
        .bearer_auth(&editor)
        .json(&serde_json::json!({"query": "x"}))
        .send()
        .await
        .unwrap();
    drop(response);

    // 30 requests a minute: the burst runs out.
    let mut limited = None;
    for _ in 0..40 {
        let response = client()
            .get(server.url(&format!("/v1/tenants/{tenant}/documents")))
            .bearer_auth(&editor)
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            limited = Some(response.json::<serde_json::Value>().await.unwrap());
            break;
        }
    }
    let body = limited.expect("rate limit reached");
    assert_error(429, &body, 429, "rate_limited");
    // Other tenants are unaffected.
    let other = create_tenant(&server, "Quiet").await;
    let quiet = server.token(&other, "q", &["reader"]);
    assert_eq!(
        send(
            client()
                .get(server.url(&format!("/v1/tenants/{other}/documents")))
                .bearer_auth(&quiet)
        )
        .await
        .0,
        200
    );
}

async fn futures_join<
    F: std::future::Future<Output = (u16, serde_json::Value)> + Send + 'static,
>(
    futures: Vec<F>,
) -> Vec<(u16, serde_json::Value)> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_work_and_loses_no_acknowledged_upload() {
    let mut server = Server::start(&[]);
    let tenant = create_tenant(&server, "Durable").await;
    let editor = server.token(&tenant, "e", &["editor"]);
    let mut acknowledged = Vec::new();
    for index in 0..6 {
        let (name, bytes) = sample(["SoupmanInc", "VEONEER", "DRAGONSYSTEMS"][index % 3]);
        let (status, body) = upload(
            &server,
            &tenant,
            &editor,
            &format!("{index}-{name}"),
            bytes,
            false,
        )
        .await;
        assert_eq!(status, 202, "{body}");
        acknowledged.push(body["document_id"].as_str().unwrap().to_owned());
    }
    // SIGTERM while the background indexer is busy with them.
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "graceful exit: {status:?}");

    // Restart on the same data: every acknowledged upload is there and gets indexed.
    let data = std::mem::replace(&mut server.data, tempfile::tempdir().unwrap());
    drop(server);
    let server = Server::start_on(data, &[]);
    let reader = server.token(&tenant, "r", &["reader"]);
    for document in &acknowledged {
        let mut status = String::new();
        for _ in 0..240 {
            let body = send(
                client()
                    .get(server.url(&format!("/v1/tenants/{tenant}/documents/{document}")))
                    .bearer_auth(&reader),
            )
            .await
            .1;
            status = body["status"].as_str().unwrap_or_default().to_owned();
            if status == "indexed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert_eq!(status, "indexed", "{document}");
    }
    let listed = cli(
        server.data.path(),
        &["documents", "--tenant", &tenant, "--json"],
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&listed).unwrap()["documents"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_ingested_by_the_cli_beside_a_running_server_are_searchable_at_once() {
    let server = Server::start(&[]);
    let tenant = create_tenant(&server, "Operator").await;
    let token = server.token(&tenant, "alice", &["editor"]);
    let (name, bytes) = sample("SoupmanInc");
    assert_eq!(
        upload(&server, &tenant, &token, &name, bytes, true).await.0,
        201
    );
    let search = |query: &'static str| {
        client()
            .post(server.url(&format!("/v1/tenants/{tenant}/search")))
            .bearer_auth(&token)
            .json(&serde_json::json!({"query": query, "mode": "keyword"}))
    };
    // The server has this tenant's index open now.
    assert_eq!(send(search("franchise")).await.0, 200);

    let file = tempfile::NamedTempFile::with_suffix(".txt").unwrap();
    std::fs::write(
        file.path(),
        "Operator memo. The escrow reference is QUARTZLANTERN and it renews yearly.",
    )
    .unwrap();
    cli(
        server.data.path(),
        &["ingest", "--tenant", &tenant, file.path().to_str().unwrap()],
    );
    let (status, body) = send(search("QUARTZLANTERN escrow reference")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|result| result["text"].as_str().unwrap().contains("QUARTZLANTERN")),
        "{body}"
    );
}

/// The value of `bulkhead_model_loaded{model="NAME"}` in a /metrics text.
fn model_loaded(metrics: &str, name: &str) -> Option<u8> {
    let prefix = format!("bulkhead_model_loaded{{model=\"{name}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn models_load_as_the_server_starts_unless_told_to_wait() {
    let metrics = |server: &Server| {
        let url = server.url("/metrics");
        async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    // The default: both models load in the background, before any request asks.
    let data = tempfile::tempdir().unwrap();
    cli(data.path(), &["init"]);
    let (child, base) = crate::common::spawn_server(
        data.path(),
        &[],
        &[("BULKHEAD_LAZY_MODELS", "false".to_owned())],
        std::process::Stdio::inherit(),
    );
    let warm = Server { child, base, data };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let text = metrics(&warm).await;
        let (embedding, llm) = (model_loaded(&text, "embedding"), model_loaded(&text, "llm"));
        assert!(
            embedding.is_some() && llm.is_some(),
            "no model gauges in {text}"
        );
        if embedding == Some(1) && llm == Some(1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "models not loaded: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // `--lazy-models` (the test servers' setting): nothing loads until a request needs it.
    let lazy = Server::start(&["--lazy-models"]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let text = metrics(&lazy).await;
    assert_eq!(model_loaded(&text, "embedding"), Some(0), "{text}");
    assert_eq!(model_loaded(&text, "llm"), Some(0), "{text}");
}
