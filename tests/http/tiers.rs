//! Issue 12: standard and premium tiers in the inference lane, and tier changes online.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// A question the small model answers (not a typed or yes/no answer): each ask holds an
/// inference worker for a second or more.
const QUESTION: &str = "How can the agreement be terminated?";

/// `count` asks of one caller at once; each result with the time it finished.
fn asks(caller: &Caller<'_>, count: usize) -> Vec<tokio::task::JoinHandle<(u16, Value, Instant)>> {
    (0..count)
        .map(|_| {
            let request = caller
                .request(reqwest::Method::POST, "/ask")
                .json(&json!({"question": QUESTION}));
            tokio::spawn(async move {
                let (status, body) = send(request).await;
                (status, body, Instant::now())
            })
        })
        .collect()
}

async fn joined(
    handles: Vec<tokio::task::JoinHandle<(u16, Value, Instant)>>,
) -> Vec<(u16, Value, Instant)> {
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread")]
async fn tiers_a_flooding_standard_tenant_cannot_starve_another() {
    let server = Server::start(&[
        "--inference-workers",
        "1",
        "--inference-queue",
        "3",
        "--premium-workers",
        "0",
        "--rate-limit",
        "0",
    ]);
    let busy_tenant = create_tenant(&server, "Busy").await;
    let quiet_tenant = create_tenant(&server, "Quiet").await;
    let busy = server.caller(&busy_tenant, "b", &["editor"]);
    let quiet = server.caller(&quiet_tenant, "q", &["editor"]);
    busy.upload_indexed("ADUROBIOTECH").await;
    quiet.upload_indexed("ADUROBIOTECH").await;

    // The busy tenant fills the whole lane (1 running + 3 waiting) and asks for more.
    let flood = asks(&busy, 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, answer) = quiet.post("/ask", json!({"question": QUESTION})).await;
    let quiet_done = Instant::now();
    let flood = joined(flood).await;

    // The quiet tenant is admitted and answered although the lane was full...
    assert_eq!(status, 200, "{answer}");
    assert!(
        !answer["answer"].as_str().unwrap_or("").is_empty(),
        "{answer}"
    );
    let refused: Vec<_> = flood.iter().filter(|(status, ..)| *status != 200).collect();
    assert!(!refused.is_empty(), "the flood never filled the lane");
    for (status, body, _) in &refused {
        assert!(*status == 503 || *status == 429, "{status} {body}");
        assert!(body["error"]["code"] == "overloaded" || body["error"]["code"] == "rate_limited");
    }
    // ...and served ahead of the flood's waiting asks, not behind all of them.
    let last_flood_answer = flood
        .iter()
        .filter(|(status, ..)| *status == 200)
        .map(|(_, _, done)| *done)
        .max()
        .expect("the flood's admitted asks are answered");
    assert!(
        quiet_done < last_flood_answer,
        "the quiet tenant waited for the whole flood"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tiers_a_premium_ask_is_admitted_when_the_standard_lane_is_full() {
    let server = Server::start(&[
        "--inference-workers",
        "2",
        "--inference-queue",
        "0",
        "--premium-workers",
        "1",
        "--premium-queue",
        "1",
        "--rate-limit",
        "0",
    ]);
    let standard_tenant = create_tenant_with_tier(&server, "Standard", "standard").await;
    let premium_tenant = create_tenant_with_tier(&server, "Premium", "premium").await;
    let standard = server.caller(&standard_tenant, "s", &["editor"]);
    let premium = server.caller(&premium_tenant, "p", &["editor"]);
    standard.upload_indexed("ADUROBIOTECH").await;
    premium.upload_indexed("ADUROBIOTECH").await;

    // Standard work fills both workers (the reserved one borrowed) and the lane refuses
    // more.
    let flood = asks(&standard, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Premium has places of its own: two asks at once are both admitted (as a standard
    // tenant arriving now it would get one place at most).
    let premium_asks = joined(asks(&premium, 2)).await;
    let flood = joined(flood).await;
    for (status, body, _) in &premium_asks {
        assert_eq!(*status, 200, "{body}");
        assert!(!body["answer"].as_str().unwrap_or("").is_empty(), "{body}");
    }
    assert!(
        flood.iter().any(|(status, ..)| *status == 503),
        "the standard flood never filled the lane"
    );
    // The standard ask whose reserved worker premium took back was paused, not lost.
    assert_eq!(
        flood.iter().filter(|(status, ..)| *status == 200).count(),
        2,
        "{flood:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tiers_a_tier_change_is_audited_and_takes_effect_on_the_next_request() {
    let server = Server::start(&["--rate-limit", "3", "--premium-rate-multiplier", "4"]);
    let tenant = create_tenant(&server, "Changing").await;
    let editor = server.caller(&tenant, "e", &["editor", "auditor"]);
    // An upload in flight when the tier changes.
    let (name, bytes) = sample("ADUROBIOTECH");
    let (status, queued) = editor.upload(&name, bytes, false).await;
    assert_eq!(status, 202, "{queued}");
    // Standard: 3 requests a minute, the fourth is refused.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(editor.get("/documents").await.0);
    }
    assert_eq!(statuses, [200, 200]);
    assert_eq!(editor.get("/documents").await.0, 429);

    let platform = server.platform_token();
    let (status, record) = send(
        client()
            .patch(server.url(&format!("/v1/tenants/{tenant}")))
            .bearer_auth(&platform)
            .json(&json!({"tier": "premium"})),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["tenant_id"], tenant.as_str());
    assert_eq!(record["tier"], "premium");
    assert_eq!(record["name"], "Changing");

    // The next request already has premium's limit (4 × 3 a minute).
    let (status, body) = editor.get("/documents").await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = send(
        client()
            .get(server.url("/v1/tenants"))
            .bearer_auth(&platform),
    )
    .await;
    assert_eq!(list["tenants"][0]["tier"], "premium", "{list}");

    // Audited in the tenant's own log and in the platform's.
    let (status, events) = editor.get("/audit").await;
    assert_eq!(status, 200, "{events}");
    let changes: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["action"] == "tenant.tier")
        .collect();
    assert_eq!(changes.len(), 1, "{events}");
    assert_eq!(changes[0]["resource"], "tier standard -> premium");
    let store = bulkhead::store::Store::open(server.data.path()).unwrap();
    let platform_log = store.audit_chain().unwrap();
    assert!(
        platform_log.iter().any(|entry| entry.tenant_id.is_none()
            && entry.action == "tenant.tier"
            && entry.resource == format!("{tenant} tier standard -> premium")),
        "no tier change in the platform's log"
    );

    // The CLI (another process) changes it back, and the server sees it on the next
    // request: premium's burst had tokens left, standard's has none.
    let printed = cli(server.data.path(), &["tenant", "tier", &tenant, "standard"]);
    assert_eq!(printed, format!("{tenant} standard"));
    let (status, body) = editor.get("/documents").await;
    assert_error(status, &body, 429, "rate_limited");

    // The upload in flight during both changes was not lost (polling waits out the limit).
    let document = queued["document_id"].as_str().unwrap();
    let record = editor.wait_until_indexed(document).await;
    assert!(record["chunks"].as_u64().unwrap_or(0) > 0, "{record}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tiers_patch_needs_a_platform_admin_and_a_known_tier_and_tenant() {
    let server = Server::start(&[]);
    let tenant = create_tenant(&server, "Fixed").await;
    let admin = server.token(&tenant, "a", &["admin"]);
    let platform = server.platform_token();
    let patch = |token: &str, tenant: &str, body: Value| {
        send(
            client()
                .patch(server.url(&format!("/v1/tenants/{tenant}")))
                .bearer_auth(token)
                .json(&body),
        )
    };
    let (status, body) = patch(&admin, &tenant, json!({"tier": "premium"})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = patch(&platform, &tenant, json!({"tier": "gold"})).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = patch(&platform, &tenant, json!({"tier": 3})).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = patch(&platform, &tenant, json!({})).await;
    assert_error(status, &body, 400, "invalid_request");
    let unknown = "t_0123456789abcdef0123";
    let (status, body) = patch(&platform, unknown, json!({"tier": "premium"})).await;
    assert_error(status, &body, 404, "not_found");
    // Nothing changed.
    let (_, list) = send(
        client()
            .get(server.url("/v1/tenants"))
            .bearer_auth(&platform),
    )
    .await;
    assert_eq!(list["tenants"][0]["tier"], "standard", "{list}");
    // The CLI takes only the three tiers (a usage error, exit 2).
    let output = std::process::Command::new(binary())
        .arg("--data-dir")
        .arg(server.data.path())
        .args(["tenant", "tier", &tenant, "gold"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
