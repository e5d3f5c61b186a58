//! Premium under a standard-tier flood (`cargo bench --bench tier_load`, issue 12): a real
//! server on 127.0.0.1:0, one premium tenant and several standard tenants, each with one
//! small real contract. The premium tenant asks one question after another, first with the
//! appliance idle, then while every standard tenant asks in a loop at full concurrency
//! (honouring `Retry-After` when refused). Prints the premium ask's p50/p95 in both phases
//! and their ratio (target: p95 under flood ≤ 1.2 × idle p95), and what the flood got.
//!
//! Environment: `TIER_ASKS` premium asks per phase (default 12), `TIER_STANDARD_TENANTS`
//! (default 3), `TIER_CLIENTS` concurrent askers per standard tenant (default 4),
//! `TIER_WORKERS` / `TIER_QUEUE` / `TIER_PREMIUM_WORKERS` the lane (default: the server's
//! defaults; `TIER_PREMIUM_WORKERS=0` for the same run without reserved capacity).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead::api::{AppState, Limits};
use bulkhead::auth::tokens::Role;
use bulkhead::store::Tier;

#[path = "common/mod.rs"]
mod common;
// The tests' helpers: the bundled sample contracts.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod shared;
use common::{env_usize, percentile};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Questions the small model answers (not typed or yes/no answers): the work premium
/// must be protected for.
const QUESTIONS: [&str; 2] = [
    "How can the agreement be terminated?",
    "What are the consultant's obligations?",
];
const CONTRACT: &str = "ADUROBIOTECH";

struct Tenant {
    id: String,
    token: String,
}

#[derive(Default)]
struct Flood {
    answered: AtomicUsize,
    refused: AtomicUsize,
    failed: AtomicUsize,
    latencies: Mutex<Vec<Duration>>,
}

fn main() {
    let asks = env_usize("TIER_ASKS", 12);
    let standard_count = env_usize("TIER_STANDARD_TENANTS", 3);
    let clients = env_usize("TIER_CLIENTS", 4);
    let defaults = Limits::default();
    let limits = Limits {
        inference_workers: env_usize("TIER_WORKERS", defaults.inference_workers),
        inference_queue: env_usize("TIER_QUEUE", defaults.inference_queue),
        premium_workers: env_usize("TIER_PREMIUM_WORKERS", defaults.premium_workers),
        tenant_requests_per_minute: 0,
        ..defaults
    };
    let data = tempfile::tempdir().unwrap();
    let (appliance, signer, verifier) = common::fresh_appliance(data.path());
    let tenant = |name: String, tier: Tier| {
        let record = appliance.create_tenant(&name, tier).unwrap();
        let token = signer
            .mint("bench", Some(&record.tenant_id), &[Role::Editor], 3600)
            .unwrap();
        Tenant {
            id: record.tenant_id.to_string(),
            token,
        }
    };
    let premium = tenant("Premium".into(), Tier::Premium);
    let standard: Vec<Tenant> = (0..standard_count)
        .map(|index| tenant(format!("Standard {index}"), Tier::Standard))
        .collect();
    println!(
        "machine: {} cores; lane: {} workers ({} reserved for premium) + {} queued; {standard_count} standard tenants × {clients} clients; {asks} premium asks per phase",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        limits.inference_workers,
        limits
            .premium_workers
            .min(limits.inference_workers.saturating_sub(1)),
        limits.inference_queue,
    );
    let (contract_name, contract) = shared::sample_file(CONTRACT);
    let contract_bytes = std::fs::read(&contract).unwrap();
    let state = AppState::new(appliance, signer, verifier, limits);
    let runtime = common::runtime();
    runtime.block_on(async move {
        let (base, stop, serving) = common::serve_in_process(state).await;
        let http = reqwest::Client::new();
        for tenant in std::iter::once(&premium).chain(&standard) {
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(contract_bytes.clone())
                    .file_name(contract_name.clone()),
            );
            let response = http
                .post(format!("{base}/v1/tenants/{}/documents?wait=true", tenant.id))
                .bearer_auth(&tenant.token)
                .multipart(form)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
        }
        // Warm-up: the models load on the first ask.
        for question in QUESTIONS {
            ask(&http, &base, &premium, question).await.unwrap();
        }

        let idle = premium_asks(&http, &base, &premium, asks).await;
        report("premium, idle", &idle);

        let flood = Arc::new(Flood::default());
        let flooding = Arc::new(AtomicBool::new(true));
        let mut handles = Vec::new();
        for (index, tenant) in standard.into_iter().enumerate() {
            let tenant = Arc::new(tenant);
            for client in 0..clients {
                let (http, base, tenant) = (http.clone(), base.clone(), tenant.clone());
                let (flood, flooding) = (flood.clone(), flooding.clone());
                handles.push(tokio::spawn(async move {
                    let mut step = index + client;
                    while flooding.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        match ask(&http, &base, &tenant, QUESTIONS[step % 2]).await {
                            Ok(()) => {
                                flood.answered.fetch_add(1, Ordering::Relaxed);
                                flood.latencies.lock().unwrap().push(started.elapsed());
                            }
                            Err(Some(retry_after)) => {
                                flood.refused.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(retry_after).await;
                            }
                            Err(None) => {
                                flood.failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        step += 1;
                    }
                }));
            }
        }
        // Let the flood fill the lane first.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let flood_started = Instant::now();
        let under_flood = premium_asks(&http, &base, &premium, asks).await;
        let flood_seconds = flood_started.elapsed().as_secs_f64();
        flooding.store(false, Ordering::Relaxed);
        for handle in handles {
            handle.await.unwrap();
        }
        report("premium, under the standard flood", &under_flood);
        let mut standard_latencies = flood.latencies.lock().unwrap().clone();
        standard_latencies.sort();
        println!(
            "standard flood: {} answered (p50 {} ms, p95 {} ms), {} refused with Retry-After (429/503), {} failed, over {flood_seconds:.1} s",
            flood.answered.load(Ordering::Relaxed),
            percentile(&standard_latencies, 0.5).as_millis(),
            percentile(&standard_latencies, 0.95).as_millis(),
            flood.refused.load(Ordering::Relaxed),
            flood.failed.load(Ordering::Relaxed),
        );
        let ratio = percentile(&under_flood, 0.95).as_secs_f64()
            / percentile(&idle, 0.95).as_secs_f64().max(1e-9);
        println!(
            "premium p95 under flood / idle p95: {ratio:.2} (target ≤ 1.20: {})",
            if ratio <= 1.2 { "met" } else { "NOT met" }
        );
        let _ = stop.send(());
        let _ = serving.await;
    });
}

/// One ask: `Ok` when answered, `Err(Some(wait))` when refused with `Retry-After`,
/// `Err(None)` on any other failure.
async fn ask(
    http: &reqwest::Client,
    base: &str,
    tenant: &Tenant,
    question: &str,
) -> Result<(), Option<Duration>> {
    let response = http
        .post(format!("{base}/v1/tenants/{}/ask", tenant.id))
        .bearer_auth(&tenant.token)
        .json(&serde_json::json!({"question": question}))
        .send()
        .await
        .map_err(|_| None)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let _ = response.bytes().await;
    match (status, retry_after) {
        (200, _) => Ok(()),
        (429 | 503, Some(seconds)) => Err(Some(Duration::from_secs(seconds))),
        _ => Err(None),
    }
}

/// `count` premium asks one after another; their latencies, sorted. Every one must be
/// answered.
async fn premium_asks(
    http: &reqwest::Client,
    base: &str,
    premium: &Tenant,
    count: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for index in 0..count {
        let started = Instant::now();
        let result = ask(http, base, premium, QUESTIONS[index % 2]).await;
        assert!(result.is_ok(), "a premium ask was refused: {result:?}");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn report(title: &str, sorted: &[Duration]) {
    println!(
        "{title}: n={} p50 {} ms, p95 {} ms, max {} ms",
        sorted.len(),
        percentile(sorted, 0.5).as_millis(),
        percentile(sorted, 0.95).as_millis(),
        sorted.last().map_or(0, Duration::as_millis)
    );
}
