//! Issue 12 §3: an enterprise tenant runs in a `bulkhead` process of its own, which the
//! main server starts on the tenant's first request, forwards to over a Unix socket,
//! confines (`RLIMIT_AS`) and restarts when it dies or hangs — without another tenant
//! noticing.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bulkhead::crypto::CustomerIdentity;
use serde_json::{Value, json};

use crate::harness::*;

const MARKER: &str = "ZEPHYRQUARTZ";
const PROCESS_HEADER: &str = "x-bulkhead-tenant-process";

fn contract() -> Vec<u8> {
    format!(
        "SUPPLY AGREEMENT\n\n1. Confidentiality. The supplier keeps the {MARKER} formula secret and discloses it to no third party.\n"
    )
    .into_bytes()
}

/// Sends a request; returns (status, body, the serving tenant process's pid if any,
/// Retry-After if any).
async fn exchange(request: reqwest::RequestBuilder) -> (u16, Value, Option<u32>, Option<String>) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let pid = header(PROCESS_HEADER).map(|pid| pid.parse().unwrap());
    let retry_after = header("retry-after");
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        pid,
        retry_after,
    )
}

/// Uploads the contract and waits for it to be indexed.
async fn upload_contract(caller: &Caller<'_>) -> (u16, Value, Option<u32>, Option<String>) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(contract()).file_name("supply.txt"),
    );
    exchange(
        caller
            .request(reqwest::Method::POST, "/documents?wait=true")
            .multipart(form),
    )
    .await
}

async fn search(caller: &Caller<'_>) -> (u16, Value, Option<u32>, Option<String>) {
    exchange(
        caller
            .request(reqwest::Method::POST, "/search")
            .json(&json!({"query": "formula secret", "mode": "keyword"})),
    )
    .await
}

fn finds_marker(body: &Value) -> bool {
    body["results"].as_array().is_some_and(|results| {
        results
            .iter()
            .any(|result| result["text"].as_str().unwrap_or("").contains(MARKER))
    })
}

async fn metrics(server: &Server) -> String {
    send_text(client().get(server.url("/metrics"))).await
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.split(' ').nth(2).is_none_or(|state| state != "Z"))
}

/// One raw HTTP/1.1 request straight to the tenant process's socket.
fn over_socket(server: &Server, tenant: &str, path: &str, token: &str) -> String {
    let socket = server
        .data
        .path()
        .join("processes")
        .join(format!("{tenant}.sock"));
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_an_enterprise_tenant_is_served_by_its_own_confined_process() {
    let server = Server::start(&["--enterprise-memory-limit-bytes", "6442450944"]);
    let enterprise = create_tenant_with_tier(&server, "Gamma Bottling", "enterprise").await;
    let standard = create_tenant_with_tier(&server, "Delta Freight", "standard").await;
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "bulkhead_tenant_processes_running"),
        0,
        "{text}"
    );

    let editor = server.caller(&enterprise, "erin", &["editor"]);
    let (status, body, pid, _) = upload_contract(&editor).await;
    assert_eq!(status, 201, "{body}");
    let child = pid.expect("the upload was served by the tenant's own process");
    assert_ne!(child, server.child.id());
    let limits = std::fs::read_to_string(format!("/proc/{child}/limits")).unwrap();
    let address_space = limits
        .lines()
        .find(|line| line.starts_with("Max address space"))
        .unwrap();
    assert!(
        address_space
            .split_whitespace()
            .filter(|field| *field == "6442450944")
            .count()
            == 2,
        "{address_space}"
    );

    let (status, body, pid, _) = search(&editor).await;
    assert_eq!((status, pid), (200, Some(child)), "{body}");
    assert!(finds_marker(&body), "{body}");
    // An answer streamed (SSE) through the main server from the tenant's process.
    let response = editor
        .request(reqwest::Method::POST, "/ask")
        .json(&json!({"question": "What must the supplier keep secret?", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[PROCESS_HEADER].to_str().unwrap(),
        child.to_string()
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = response.text().await.unwrap();
    assert!(events.contains("event: done"), "{events}");
    // The OpenAI-compatible route goes by the token's tenant.
    let (status, body, pid, _) = exchange(
        client()
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(&editor.token)
            .json(&json!({"model": "bulkhead", "messages": [{"role": "user", "content": "What must the supplier keep secret?"}]})),
    )
    .await;
    assert_eq!((status, pid), (200, Some(child)), "{body}");

    // A standard tenant stays in the main server, which never opens the enterprise one.
    let reader = server.caller(&standard, "sam", &["editor"]);
    let (status, body) = reader.upload("supply.txt", contract(), true).await;
    assert_eq!(status, 201, "{body}");
    let (status, body, pid, _) = search(&reader).await;
    assert_eq!((status, pid), (200, None), "{body}");
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "bulkhead_tenant_processes_running"),
        1,
        "{text}"
    );
    assert_eq!(metric(&text, "bulkhead_open_tenants"), 1, "{text}");

    // The tenant's process refuses any other tenant, whatever the token.
    let answer = over_socket(
        &server,
        &enterprise,
        &format!("/v1/tenants/{standard}/documents"),
        &reader.token,
    );
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("tenant_mismatch"), "{answer}");
    let answer = over_socket(&server, &enterprise, "/v1/models", &reader.token);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let answer = over_socket(&server, &enterprise, "/v1/tenants", &reader.token);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let answer = over_socket(
        &server,
        &enterprise,
        &format!("/v1/tenants/{enterprise}/documents"),
        &editor.token,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mode = std::fs::metadata(server.data.path().join("processes")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o700
    );
}

/// Searches (and, beside them, asks) of the standard tenant until `stop`; returns the
/// requests made and those that did not succeed.
async fn steady_traffic(
    server: &Server,
    tenant: &str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (usize, usize) {
    let caller = server.caller(tenant, "sam", &["reader"]);
    let searches = async {
        let (mut done, mut errors) = (0, 0);
        while !*stop.borrow() {
            let (status, body, _, _) = search(&caller).await;
            done += 1;
            if status != 200 || !finds_marker(&body) {
                eprintln!("standard tenant's search: {status} {body}");
                errors += 1;
            }
        }
        (done, errors)
    };
    let asks = async {
        let (mut done, mut errors) = (0, 0);
        while !*stop.borrow() {
            let (status, body, _, _) = exchange(
                caller
                    .request(reqwest::Method::POST, "/ask")
                    .json(&json!({"question": "What must the supplier keep secret?"})),
            )
            .await;
            done += 1;
            if status != 200 || body["answer"].is_null() {
                eprintln!("standard tenant's ask: {status} {body}");
                errors += 1;
            }
        }
        (done, errors)
    };
    let ((searched, search_errors), (asked, ask_errors)) = tokio::join!(searches, asks);
    eprintln!("standard tenant: {searched} searches, {asked} asks");
    (searched + asked, search_errors + ask_errors)
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_killing_an_enterprise_process_costs_the_other_tenants_nothing() {
    let server = Server::start(&["--rate-limit", "0"]);
    let enterprise = create_tenant_with_tier(&server, "Gamma Bottling", "enterprise").await;
    let standard = create_tenant_with_tier(&server, "Delta Freight", "standard").await;
    let editor = server.caller(&enterprise, "erin", &["editor"]);
    let (status, body) = editor.upload("supply.txt", contract(), true).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .caller(&standard, "sam", &["editor"])
        .upload("supply.txt", contract(), true)
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, _, first, _) = search(&editor).await;
    let first = first.unwrap();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let traffic = steady_traffic(&server, &standard, stopped);
    let kill_and_recover = async {
        // Some traffic before the kill.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let killed = Instant::now();
        std::process::Command::new("kill")
            .args(["-9", &first.to_string()])
            .status()
            .unwrap();
        let mut statuses = Vec::new();
        let mut recovered = None;
        while killed.elapsed() < Duration::from_secs(60) {
            let (status, body, pid, retry_after) = search(&editor).await;
            statuses.push(status);
            match status {
                200 => {
                    assert!(finds_marker(&body), "the data survived: {body}");
                    recovered = pid;
                    break;
                }
                503 => {
                    assert_eq!(body["error"]["code"], "overloaded", "{body}");
                    assert!(retry_after.is_some(), "503 without Retry-After");
                }
                other => panic!("enterprise tenant while restarting: {other} {body}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let recovered = recovered.expect("the tenant's process came back");
        eprintln!(
            "enterprise tenant recovered in {:?} (statuses {statuses:?}), pid {first} -> {recovered}",
            killed.elapsed()
        );
        assert!(statuses.contains(&503), "{statuses:?}");
        assert_ne!(recovered, first);
        // Some more traffic after the restart.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.send_replace(true);
    };
    let ((done, errors), ()) = tokio::join!(traffic, kill_and_recover);
    eprintln!("standard tenant: {done} requests, {errors} errors during the kill and restart");
    assert!(done >= 20, "{done}");
    assert_eq!(errors, 0);
    let text = metrics(&server).await;
    assert!(
        metric(&text, "bulkhead_tenant_process_restarts_total") >= 1,
        "{text}"
    );
    assert_eq!(
        metric(&text, "bulkhead_tenant_processes_running"),
        1,
        "{text}"
    );
    assert!(!alive(first));
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_a_hung_enterprise_process_is_killed_and_restarted() {
    let server = Server::start(&[
        "--enterprise-health-interval",
        "1",
        "--enterprise-health-timeout",
        "1",
    ]);
    let enterprise = create_tenant_with_tier(&server, "Gamma Bottling", "enterprise").await;
    let editor = server.caller(&enterprise, "erin", &["editor"]);
    let (status, body) = editor.upload("supply.txt", contract(), true).await;
    assert_eq!(status, 201, "{body}");
    let (_, _, first, _) = search(&editor).await;
    let first = first.unwrap();
    std::process::Command::new("kill")
        .args(["-STOP", &first.to_string()])
        .status()
        .unwrap();
    let stopped = Instant::now();
    let mut recovered = None;
    while stopped.elapsed() < Duration::from_secs(60) {
        let (status, body, pid, _) = search(&editor).await;
        match status {
            200 if pid != Some(first) => {
                assert!(finds_marker(&body), "{body}");
                recovered = pid;
                break;
            }
            200 | 503 => {}
            other => panic!("enterprise tenant while its process hangs: {other} {body}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("hung process replaced in {:?}", stopped.elapsed());
    assert!(recovered.is_some(), "the hung process was not replaced");
    assert!(!alive(first), "the hung process was not killed");
    let text = metrics(&server).await;
    assert!(
        metric(&text, "bulkhead_tenant_process_restarts_total") >= 1,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_a_locked_byok_tenant_has_no_process_until_unlocked_and_lock_ends_it() {
    let server = Server::start(&[]);
    let enterprise = create_tenant_with_tier(&server, "Gamma Bottling", "enterprise").await;
    let identity = CustomerIdentity::generate();
    let (status, body) = send(
        client()
            .put(server.url(&format!("/v1/tenants/{enterprise}/customer-key")))
            .bearer_auth(server.platform_token())
            .json(&json!({"recipient": identity.recipient().as_str()})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let admin = server.caller(&enterprise, "alice", &["admin"]);
    let (status, body, pid, _) = exchange(admin.request(reqwest::Method::GET, "/documents")).await;
    assert_error(status, &body, 423, "tenant_locked");
    assert_eq!(pid, None);
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "bulkhead_tenant_processes_running"),
        0,
        "{text}"
    );

    let (status, body) = admin
        .post("/unlock", json!({"identity": *identity.to_secret_string()}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body, pid, _) = upload_contract(&admin).await;
    assert_eq!(status, 201, "{body}");
    let child = pid.expect("served by the tenant's process once unlocked");
    let (status, body, pid, _) = search(&admin).await;
    assert_eq!((status, pid), (200, Some(child)), "{body}");
    assert!(finds_marker(&body), "{body}");

    let (status, body) = admin.post("/lock", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !alive(child),
        "the process holding the key outlived the lock"
    );
    let (status, body, pid, _) = search(&admin).await;
    assert_error(status, &body, 423, "tenant_locked");
    assert_eq!(pid, None);
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "bulkhead_tenant_processes_running"),
        0,
        "{text}"
    );
}

fn sha256_hex(path: &std::path::Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

async fn pin_model(
    server: &Server,
    tenant: &str,
    token: &str,
    gguf: &str,
    sha256: &str,
) -> (u16, Value) {
    send(
        client()
            .put(server.url(&format!("/v1/tenants/{tenant}/model")))
            .bearer_auth(token)
            .json(&json!({"gguf": gguf, "sha256": sha256})),
    )
    .await
}

fn doctor(server: &Server) -> String {
    let output = std::process::Command::new(binary())
        .arg("--data-dir")
        .arg(server.data.path())
        .arg("--models-dir")
        .arg(models_dir())
        .arg("doctor")
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_an_enterprise_tenant_answers_with_its_own_pinned_model_or_says_which_it_needs() {
    let server = Server::start(&[]);
    let enterprise = create_tenant_with_tier(&server, "Gamma Bottling", "enterprise").await;
    let standard = create_tenant_with_tier(&server, "Delta Freight", "standard").await;
    let editor = server.caller(&enterprise, "erin", &["editor"]);
    let (status, body) = editor.upload("supply.txt", contract(), true).await;
    assert_eq!(status, 201, "{body}");
    // The shipped SmolLM2 under another name: the tenant's own file.
    let models = tempfile::tempdir().unwrap();
    let private = models.path().join("gamma-private.gguf");
    std::fs::copy(
        models_dir().join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        &private,
    )
    .unwrap();
    let right = sha256_hex(&private);
    let wrong = "0".repeat(64);
    let platform = server.platform_token();
    let gguf = private.to_str().unwrap();

    // Platform admins only, enterprise only, a real checksum only.
    let admin = server.caller(&enterprise, "alice", &["admin"]);
    let (status, body) = pin_model(&server, &enterprise, &admin.token, gguf, &right).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = pin_model(&server, &standard, &platform, gguf, &right).await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = pin_model(&server, &enterprise, &platform, gguf, "abc").await;
    assert_error(status, &body, 400, "invalid_request");

    // A wrong checksum: the ask says which file and checksum the tenant needs.
    let (status, body) = pin_model(&server, &enterprise, &platform, gguf, &wrong).await;
    assert_eq!(status, 200, "{body}");
    let question = json!({"question": "What must the supplier keep secret?"});
    let (status, body) = editor.post("/ask", question.clone()).await;
    assert_error(status, &body, 503, "model_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(gguf) && message.contains(&wrong) && message.contains(&right),
        "{message}"
    );
    let report = doctor(&server);
    assert!(
        report.lines().any(|line| line.starts_with("FAIL")
            && line.contains(&enterprise)
            && line.contains(&wrong)),
        "{report}"
    );
    // Its searches never needed the model.
    let (status, body, _, _) = search(&editor).await;
    assert_eq!(status, 200, "{body}");

    // Pinned right (with the command line, beside the running server): it answers.
    cli(
        server.data.path(),
        &[
            "tenant",
            "model",
            &enterprise,
            "--gguf",
            gguf,
            "--sha256",
            &right,
        ],
    );
    let (status, body, pid, _) = exchange(
        editor
            .request(reqwest::Method::POST, "/ask")
            .json(&question),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(pid.is_some(), "answered in the tenant's own process");
    let report = doctor(&server);
    assert!(
        report.lines().any(|line| line.starts_with("ok")
            && line.contains(&enterprise)
            && line.contains(&right)),
        "{report}"
    );

    // A missing file: named, with its checksum.
    let missing = models.path().join("gone.gguf");
    let (status, body) = pin_model(
        &server,
        &enterprise,
        &platform,
        missing.to_str().unwrap(),
        &right,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = editor.post("/ask", question).await;
    assert_error(status, &body, 503, "model_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(missing.to_str().unwrap()) && message.contains(&right),
        "{message}"
    );
}

async fn change_tier(server: &Server, tenant: &str, tier: &str) {
    let (status, body) = send(
        client()
            .patch(server.url(&format!("/v1/tenants/{tenant}")))
            .bearer_auth(server.platform_token())
            .json(&json!({"tier": tier})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_a_tier_change_moves_a_tenant_into_and_out_of_its_own_process() {
    let server = Server::start(&[]);
    let tenant = create_tenant_with_tier(&server, "Gamma Bottling", "standard").await;
    let editor = server.caller(&tenant, "erin", &["editor"]);
    let (status, body) = editor.upload("supply.txt", contract(), true).await;
    assert_eq!(status, 201, "{body}");
    let (status, body, pid, _) = search(&editor).await;
    assert_eq!((status, pid), (200, None), "{body}");

    change_tier(&server, &tenant, "enterprise").await;
    let (status, body, pid, _) = search(&editor).await;
    assert_eq!(status, 200, "{body}");
    assert!(finds_marker(&body), "{body}");
    let child = pid.expect("an enterprise tenant is served by its own process");
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "bulkhead_open_tenants"), 0, "{text}");

    change_tier(&server, &tenant, "premium").await;
    assert!(!alive(child), "its process outlived the tier change");
    let (status, body, pid, _) = search(&editor).await;
    assert_eq!((status, pid), (200, None), "{body}");
    assert!(finds_marker(&body), "{body}");

    // A tier changed with the CLI beside the running server: the next request is served
    // here, and the process that served the tenant is gone.
    change_tier(&server, &tenant, "enterprise").await;
    let (_, _, pid, _) = search(&editor).await;
    let child = pid.unwrap();
    cli(server.data.path(), &["tenant", "tier", &tenant, "standard"]);
    let (status, body, pid, _) = search(&editor).await;
    assert_eq!((status, pid), (200, None), "{body}");
    assert!(finds_marker(&body), "{body}");
    assert!(
        !alive(child),
        "its process outlived a tier change made with the CLI"
    );

    change_tier(&server, &tenant, "enterprise").await;
    let (_, _, pid, _) = search(&editor).await;
    let child = pid.unwrap();
    let (status, body) = send(
        client()
            .delete(server.url(&format!("/v1/tenants/{tenant}")))
            .bearer_auth(server.platform_token()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!alive(child), "its process outlived the tenant");
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "bulkhead_tenant_processes_running"),
        0,
        "{text}"
    );
}
