//! Bounded load run on loopback (`cargo bench --bench load`): a real server on
//! 127.0.0.1:0, several tenants, N concurrent clients mixing search, ask and upload for a
//! fixed time; then a saturation burst of asks against the bounded inference pool.
//! Reports throughput and p50/p95/p99 per route, and how many requests got 503.
//!
//! Environment: `LOAD_CLIENTS` (default 8), `LOAD_SECONDS` (default 30), `LOAD_TENANTS`
//! (default 3), `LOAD_BURST` (default 24).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead::api::{AppState, Limits};
use bulkhead::auth::tokens::Role;
use bulkhead::config;
use bulkhead::store::Tier;

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, percentile};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Samples = Arc<Mutex<BTreeMap<(&'static str, u16), Vec<Duration>>>>;

fn report(title: &str, samples: &Samples, elapsed: Duration) {
    let samples = samples.lock().unwrap();
    let total: usize = samples.values().map(Vec::len).sum();
    println!(
        "== {title}: {total} requests in {:.1} s ({:.2} req/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    for ((route, status), durations) in samples.iter() {
        let mut sorted = durations.clone();
        sorted.sort();
        println!(
            "{route:<8} {status}  n={:<5} p50 {:>6} ms  p95 {:>6} ms  p99 {:>6} ms",
            sorted.len(),
            percentile(&sorted, 0.5).as_millis(),
            percentile(&sorted, 0.95).as_millis(),
            percentile(&sorted, 0.99).as_millis()
        );
    }
}

async fn timed(samples: &Samples, route: &'static str, request: reqwest::RequestBuilder) {
    let started = Instant::now();
    let status = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    };
    samples
        .lock()
        .unwrap()
        .entry((route, status))
        .or_default()
        .push(started.elapsed());
}

fn main() {
    let clients = env_usize("LOAD_CLIENTS", 8);
    let seconds = env_usize("LOAD_SECONDS", 30) as u64;
    let tenant_count = env_usize("LOAD_TENANTS", 3);
    let burst = env_usize("LOAD_BURST", 24);
    let data = tempfile::tempdir().unwrap();
    let (appliance, signer, verifier) = common::fresh_appliance(data.path());
    let contracts: Vec<(String, Vec<u8>)> =
        std::fs::read_dir(config::sample_data_dir().join("contracts"))
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&path).unwrap(),
                )
            })
            .collect();
    let mut tenants = Vec::new();
    for index in 0..tenant_count {
        let record = appliance
            .create_tenant(&format!("Load tenant {index}"), Tier::Standard)
            .unwrap();
        let token = signer
            .mint("loader", Some(&record.tenant_id), &[Role::Editor], 3600)
            .unwrap();
        tenants.push((record.tenant_id.to_string(), token));
    }
    let limits = Limits {
        tenant_requests_per_minute: 0,
        ..Limits::default()
    };
    println!(
        "machine: {} cores; {clients} clients, {tenant_count} tenants, {seconds} s; inference pool {} workers + {} queued",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        limits.inference_workers,
        limits.inference_queue
    );
    let state = AppState::new(appliance, signer, verifier, limits);
    let runtime = common::runtime();
    runtime.block_on(async move {
        let (base, stop, serving) = common::serve_in_process(state).await;
        let http = reqwest::Client::new();
        // Two contracts per tenant, indexed before the run.
        for (index, (tenant, token)) in tenants.iter().enumerate() {
            for (name, bytes) in contracts.iter().skip(index % contracts.len()).take(2) {
                let form = reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone()),
                );
                let response = http
                    .post(format!("{base}/v1/tenants/{tenant}/documents?wait=true"))
                    .bearer_auth(token)
                    .multipart(form)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        }

        let questions = [
            "Which law governs this agreement?",
            "How can the agreement be terminated?",
            "What are the payment terms?",
            "Who are the parties to the agreement?",
        ];
        let samples: Samples = Arc::default();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut handles = Vec::new();
        for client in 0..clients {
            let http = http.clone();
            let base = base.clone();
            let tenants = tenants.clone();
            let samples = samples.clone();
            let contracts = contracts.clone();
            handles.push(tokio::spawn(async move {
                let mut step = client;
                while Instant::now() < deadline {
                    let (tenant, token) = &tenants[step % tenants.len()];
                    let question = questions[step % questions.len()];
                    match step % 20 {
                        0..=11 => {
                            let request = http
                                .post(format!("{base}/v1/tenants/{tenant}/search"))
                                .bearer_auth(token)
                                .json(&serde_json::json!({"query": question}));
                            timed(&samples, "search", request).await;
                        }
                        12..=16 => {
                            let request = http
                                .post(format!("{base}/v1/tenants/{tenant}/ask"))
                                .bearer_auth(token)
                                .json(&serde_json::json!({"question": question}));
                            timed(&samples, "ask", request).await;
                        }
                        _ => {
                            let (name, bytes) = &contracts[step % contracts.len()];
                            let form = reqwest::multipart::Form::new().part(
                                "file",
                                reqwest::multipart::Part::bytes(bytes.clone())
                                    .file_name(name.clone()),
                            );
                            let request = http
                                .post(format!("{base}/v1/tenants/{tenant}/documents"))
                                .bearer_auth(token)
                                .multipart(form);
                            timed(&samples, "upload", request).await;
                        }
                    }
                    step += clients;
                }
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        report("mixed load", &samples, started.elapsed());

        // Saturation: a burst of concurrent asks against the bounded pool.
        let samples: Samples = Arc::default();
        let started = Instant::now();
        let mut handles = Vec::new();
        for index in 0..burst {
            let (tenant, token) = tenants[index % tenants.len()].clone();
            let request = http
                .post(format!("{base}/v1/tenants/{tenant}/ask"))
                .bearer_auth(token)
                .json(&serde_json::json!({"question": questions[index % questions.len()]}));
            let samples = samples.clone();
            handles.push(tokio::spawn(async move {
                timed(&samples, "ask", request).await
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        report(
            &format!("saturation burst of {burst} concurrent asks"),
            &samples,
            started.elapsed(),
        );
        let _ = stop.send(());
        let _ = serving.await;
    });
}
