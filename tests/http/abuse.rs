//! Issue 11, finding 6: abuse that costs other tenants. Failed requests cannot flood the
//! audit log (per source and per target, a burst audited one by one, then one counted
//! entry per window and 429 for the source), uploads received at once are capped, and a
//! slow or silent connection is dropped.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Server, assert_error, client, create_tenant, send};

/// Audit entries in the whole chain (platform and every tenant).
async fn audit_entries(server: &Server, platform: &str) -> u64 {
    let (status, body) = send(
        client()
            .get(server.url("/v1/audit/verify"))
            .bearer_auth(platform),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["entries"].as_u64().unwrap()
}

/// How many attempts `events` account for: one per entry, or the count a summary names.
fn accounted(events: &[Value], action: &str) -> u64 {
    events
        .iter()
        .filter(|event| event["action"] == action)
        .map(|event| {
            let resource = event["resource"].as_str().unwrap_or_default();
            match resource.strip_suffix(" s, not logged one by one") {
                Some(summary) => summary.split(' ').next().unwrap().parse().unwrap(),
                None => 1,
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_11_failed_requests_are_rate_limited_per_source_and_target() {
    let server = Server::start(&["--failure-burst", "5", "--failure-window", "4"]);
    let alpha = create_tenant(&server, "Alpha").await;
    let beta = create_tenant(&server, "Beta").await;
    let reader = server.caller(&alpha, "ann", &["reader"]);
    let auditor = server.caller(&alpha, "audrey", &["auditor"]);
    let platform = server.platform_token();
    let before = audit_entries(&server, &platform).await;

    // 200 anonymous requests with a bad token from one address; alpha's reader, from the
    // same address, keeps working meanwhile.
    let mut statuses = Vec::new();
    for attempt in 0..200 {
        if attempt % 20 == 0 {
            let (status, body) = reader.get("/documents").await;
            assert_eq!(status, 200, "a legitimate request during the flood: {body}");
        }
        let response = client()
            .get(server.url(&format!("/v1/tenants/{alpha}/documents")))
            .bearer_auth("not.a.token")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status == 429 {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=4).contains(&retry_after), "{retry_after}");
            let body: Value = response.json().await.unwrap();
            assert_error(status, &body, 429, "rate_limited");
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses[..5],
        [401; 5],
        "the first failures are answered as such"
    );
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert!(
        refused >= 150,
        "{refused} of 200 refused early: {statuses:?}"
    );
    let written = audit_entries(&server, &platform).await - before;
    assert!(
        written <= 30,
        "200 bad requests wrote {written} audit entries"
    );

    // 50 cross-tenant attempts on alpha from ten addresses (five each: within every
    // source's budget, so each is answered 403), all aimed at alpha's log.
    let intruder = server.token(&beta, "mallory", &["reader"]);
    for source in 2..12u8 {
        let from = client_from(IpAddr::from([127, 0, 0, source]));
        for _ in 0..5 {
            let (status, body) = send(
                from.get(server.url(&format!("/v1/tenants/{alpha}/documents")))
                    .bearer_auth(&intruder),
            )
            .await;
            assert_error(status, &body, 403, "tenant_mismatch");
        }
    }
    // Once the window closes, the victim's log accounts for all 50 in a few entries.
    let mut events = Vec::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (status, body) = auditor.get("/audit?limit=1000").await;
        assert_eq!(status, 200, "{body}");
        events = body["events"].as_array().unwrap().clone();
        if accounted(&events, "access.cross_tenant") == 50 {
            break;
        }
    }
    let rows = events
        .iter()
        .filter(|event| event["action"] == "access.cross_tenant")
        .count();
    assert_eq!(
        accounted(&events, "access.cross_tenant"),
        50,
        "every attempt is accounted for: {events:?}"
    );
    assert!(
        rows <= 12,
        "{rows} entries in the victim's log for 50 attempts"
    );
    assert!(
        events
            .iter()
            .filter(|event| event["action"] == "access.cross_tenant")
            .all(|event| event["user"] == "external"),
        "the victim's log never names the intruder: {events:?}"
    );
}

/// A client whose connections come from `address` (any 127.x.y.z is this host).
fn client_from(address: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address)
        .build()
        .unwrap()
}

/// The start of a multipart upload request whose body is `total` bytes.
fn upload_head(tenant: &str, token: &str, total: usize) -> String {
    format!(
        "POST /v1/tenants/{tenant}/documents HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=XBOUNDARYX\r\nContent-Length: {total}\r\n\r\n"
    )
}

fn connect(server: &Server) -> TcpStream {
    let address = server.base.trim_start_matches("http://");
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection; returns what it sent and how long that
/// took, or panics when it held the connection open for 30 s.
fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => panic!(
                "the server held the connection open ({error}) after {:?}: {}",
                started.elapsed(),
                String::from_utf8_lossy(&received)
            ),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_11_uploads_received_at_once_are_capped() {
    let server = Server::start(&["--max-uploads", "1"]);
    let tenant = create_tenant(&server, "Alpha").await;
    let editor = server.caller(&tenant, "ed", &["editor"]);
    let content =
        "The Supplier shall host the service. Either party may terminate with sixty days notice.\n"
            .repeat(20);
    let part_head = "--XBOUNDARYX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.txt\"\r\nContent-Type: text/plain\r\n\r\n";
    let part_tail = "\r\n--XBOUNDARYX--\r\n";
    let total = part_head.len() + content.len() + part_tail.len();

    // A slow upload takes the one place: headers and half its body, then a pause.
    let mut slow = connect(&server);
    let (first_half, second_half) = content.split_at(content.len() / 2);
    slow.write_all(upload_head(&tenant, &editor.token, total).as_bytes())
        .unwrap();
    slow.write_all(part_head.as_bytes()).unwrap();
    slow.write_all(first_half.as_bytes()).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Another upload meanwhile: 503 in the API's shape, with Retry-After.
    let form = || {
        reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(content.clone().into_bytes()).file_name("next.txt"),
        )
    };
    let response = editor
        .request(reqwest::Method::POST, "/documents")
        .multipart(form())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_error(status, &body, 503, "overloaded");
    // Reading stays open meanwhile.
    let (status, _) = editor.get("/documents").await;
    assert_eq!(status, 200);

    // The slow upload completes and is acknowledged; then the retry is accepted.
    slow.write_all(second_half.as_bytes()).unwrap();
    slow.write_all(part_tail.as_bytes()).unwrap();
    let mut response = vec![0u8; 1024];
    let read = slow.read(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response[..read]);
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    let (status, body) = send(
        editor
            .request(reqwest::Method::POST, "/documents")
            .multipart(form()),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (_, listed) = editor.get("/documents").await;
    assert_eq!(listed["documents"].as_array().unwrap().len(), 2, "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_11_slow_and_idle_connections_are_dropped() {
    let server = Server::start(&["--header-timeout", "2", "--idle-timeout", "3"]);

    // Slowloris: half a request header, then nothing.
    let mut slowloris = connect(&server);
    slowloris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Waiting: ")
        .unwrap();
    let (_, waited) = read_until_closed(&mut slowloris);
    assert!(
        waited < Duration::from_secs(10),
        "half a header held the connection for {waited:?}"
    );

    // A connection that never sends a byte.
    let (_, waited) = read_until_closed(&mut connect(&server));
    assert!(waited < Duration::from_secs(10), "{waited:?}");

    // A keep-alive connection after its response, silent.
    let mut idle = connect(&server);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (received, waited) = read_until_closed(&mut idle);
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(received.contains("\"ok\""), "{received}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");

    // An upload whose body stops half-way: refused once it has sent nothing for the idle
    // timeout, and its connection closed.
    let tenant = create_tenant(&server, "Alpha").await;
    let editor = server.token(&tenant, "ed", &["editor"]);
    let mut stalled = connect(&server);
    stalled
        .write_all(upload_head(&tenant, &editor, 4096).as_bytes())
        .unwrap();
    stalled
        .write_all(b"--XBOUNDARYX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nThe Supplier sh")
        .unwrap();
    let (received, waited) = read_until_closed(&mut stalled);
    assert!(received.starts_with("HTTP/1.1 400"), "{received}");
    assert!(received.contains("invalid_request"), "{received}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");

    // And the server still serves.
    let (status, body) = send(client().get(server.url("/healthz"))).await;
    assert_eq!(status, 200, "{body}");
}
