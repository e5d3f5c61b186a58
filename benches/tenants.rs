//! Thousands of tenants on one appliance (`cargo bench --bench tenants`, issue 12 §5–§6).
//!
//! Creates `TENANTS_N` tenants (default 10,000) in one data directory through the
//! appliance (batched store transactions): most are empty; the first `TENANTS_ROTATION`
//! (default 1,000) hold one small contract each; one holds `TENANTS_CONTRACTS` (default 4)
//! real CUAD contracts; and one "big" tenant holds those contracts imported again and
//! again (real text, real embeddings, through the export/import path, no re-embedding)
//! until it has `TENANTS_BIG_CHUNKS` (default 10,000) chunks. Then it prints:
//! - start-up: the real `bulkhead serve` binary spawned on the data directory, time to
//!   its first `/healthz` answer;
//! - cold open of the big tenant (decrypt, load HNSW and tantivy): p50/p95 over
//!   `TENANTS_COLD_OPENS` (default 20) opens in this process;
//! - RSS of the server as the rotation tenants are searched one after another (hybrid
//!   search: the embedder is the model loaded), against the byte budget
//!   `TENANTS_BUDGET_BYTES` (default 64 MiB) plus the RSS with the models loaded;
//! - evictions, from the server's `/metrics`;
//! - premium vs standard latency under load (see [`premium_vs_standard_latency`]).
//!
//! `TENANTS_DATA_DIR` reuses a data directory this bench made (it skips the creation);
//! `RUST_LOG=bulkhead::index=debug` logs the stages of each cold open.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulkhead::appliance::Appliance;
use bulkhead::auth::tokens::{Grant, Role, Signer};
use bulkhead::auth::{OperatorReason, TenantScope};
use bulkhead::config::{self, Config};
use bulkhead::ids::TenantId;
use bulkhead::index::SearchMode;
use bulkhead::store::{Store, TenantRecord, Tier};

#[path = "common/mod.rs"]
mod common;
// The tests' helpers: the real server, spawned as they spawn it.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod shared;
use common::{env_usize, percentile};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BIG_TENANT: &str = "bench big tenant";
const CONTRACTS_TENANT: &str = "bench contracts tenant";

fn main() {
    // RUST_LOG=bulkhead::index=debug shows each open's stages.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let total = env_usize("TENANTS_N", 10_000);
    let rotation = env_usize("TENANTS_ROTATION", 1_000).min(total);
    let contracts = env_usize("TENANTS_CONTRACTS", 4);
    let big_chunks = env_usize("TENANTS_BIG_CHUNKS", 10_000);
    let cold_opens = env_usize("TENANTS_COLD_OPENS", 20).max(1);
    let budget = env_usize("TENANTS_BUDGET_BYTES", 64 << 20) as u64;
    println!(
        "machine: {} cores, {:.1} GiB; tenants: {total} ({rotation} in rotation), big tenant: {big_chunks} chunks",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        config::default_open_index_budget() as f64 * 4.0 / f64::from(1 << 30)
    );

    let (data_dir, reuse) = match std::env::var_os("TENANTS_DATA_DIR") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (
            std::env::temp_dir().join(format!("bulkhead-tenants-{}", std::process::id())),
            false,
        ),
    };
    Store::init(&data_dir).unwrap();
    Signer::init(&data_dir).unwrap();
    let config = Config::new(data_dir.clone(), config::default_models_dir());
    let appliance = Appliance::open(config.clone()).unwrap();
    if !reuse || appliance.list_tenants().unwrap().is_empty() {
        populate(&appliance, total, rotation, contracts, big_chunks);
    }
    let tenants = appliance.list_tenants().unwrap();
    drop(appliance);

    cold_open(&config, &tenants, cold_opens);
    let rotating: Vec<&TenantRecord> = tenants
        .iter()
        .filter(|tenant| tenant.name.starts_with("bench rotation "))
        .take(rotation)
        .collect();
    start_up_and_rotation(&data_dir, &rotating, budget);
    premium_vs_standard_latency();
    if !reuse {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}

fn operator(appliance: &Appliance, tenant_id: &TenantId) -> TenantScope {
    appliance
        .operator_scope(tenant_id, OperatorReason::CommandLine)
        .unwrap()
}

/// Creates the tenants and their documents.
fn populate(
    appliance: &Appliance,
    total: usize,
    rotation: usize,
    contracts: usize,
    big_chunks: usize,
) {
    let started = Instant::now();
    let mut names: Vec<(String, Tier)> = vec![
        (BIG_TENANT.to_owned(), Tier::Standard),
        (CONTRACTS_TENANT.to_owned(), Tier::Standard),
    ];
    names.extend((0..rotation).map(|i| (format!("bench rotation {i:05}"), Tier::Standard)));
    let empty = total.saturating_sub(names.len());
    names.extend((0..empty).map(|i| (format!("bench empty {i:05}"), Tier::Standard)));
    let mut created = Vec::new();
    for batch in names.chunks(1_000) {
        created.extend(appliance.create_tenants(batch).unwrap());
    }
    println!(
        "created {} tenants in {:.2} s (batches of 1,000)",
        created.len(),
        started.elapsed().as_secs_f64()
    );

    // The rotation tenants: one small contract each, indexed in one background run.
    let started = Instant::now();
    for (i, tenant) in created.iter().skip(2).take(rotation).enumerate() {
        let text = format!(
            "Supply agreement number {i} between Vendor {i} Ltd and Buyer {i} Inc. The vendor \
             supplies parts monthly. This agreement is governed by the laws of Delaware. \
             Either party may terminate it on ninety days' written notice."
        );
        let scope = operator(appliance, &tenant.tenant_id);
        appliance
            .upload(&scope, &format!("supply-{i}.txt"), None, text.as_bytes())
            .unwrap();
    }
    let indexed = appliance.process_all_pending().unwrap();
    println!(
        "indexed {indexed} small contracts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Real contracts, then the big tenant: the same contracts imported until it is big.
    let started = Instant::now();
    let scope = operator(appliance, &created[1].tenant_id);
    for file in common::cuad_contracts(contracts) {
        let bytes = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        appliance.upload(&scope, &name, None, &bytes).unwrap();
    }
    let outcomes = appliance.process_jobs(&scope, &mut |_| {}).unwrap();
    let chunks: usize = outcomes.iter().filter_map(|o| o.result.as_ref().ok()).sum();
    println!(
        "indexed {} real contracts ({chunks} chunks) in {:.1} s",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    let mut archive = Vec::new();
    appliance.export_tenant(&scope, &mut archive, None).unwrap();
    let big = operator(appliance, &created[0].tenant_id);
    let started = Instant::now();
    let mut big_total = 0;
    while big_total < big_chunks && chunks > 0 {
        appliance
            .import_tenant(&big, std::io::Cursor::new(&archive), None)
            .unwrap();
        big_total += chunks;
    }
    // The first open builds the graph and seals its snapshots; later opens load them.
    appliance
        .search(&big, "governing law", 5, SearchMode::Keyword)
        .unwrap();
    println!(
        "big tenant: {big_total} chunks imported and first opened in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Cold opens of the big tenant in this process: each evicts it, then a keyword search
/// opens it again (decrypt the snapshots, load HNSW and tantivy, reconcile).
fn cold_open(config: &Config, tenants: &[TenantRecord], opens: usize) {
    let Some(big) = tenants.iter().find(|tenant| tenant.name == BIG_TENANT) else {
        return;
    };
    let appliance = Appliance::open(config.clone()).unwrap();
    let scope = operator(&appliance, &big.tenant_id);
    let mut samples = Vec::new();
    for _ in 0..opens {
        appliance.evict(&scope);
        let started = Instant::now();
        appliance
            .search(&scope, "governing law", 5, SearchMode::Keyword)
            .unwrap();
        samples.push(started.elapsed());
    }
    samples.sort();
    let stats = appliance.open_tenant_stats();
    println!(
        "cold open of the big tenant (decrypt + load HNSW and tantivy + one keyword search): p50 {} ms, p95 {} ms over {opens} opens; accounted {:.1} MiB",
        percentile(&samples, 0.5).as_millis(),
        percentile(&samples, 0.95).as_millis(),
        stats.open_bytes as f64 / f64::from(1 << 20)
    );
}

/// The `bulkhead` binary cargo built beside this bench.
/// A plain HTTP/1.1 request on a fresh connection: (status, body).
fn http(address: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let auth = token.map_or(String::new(), |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Spawns the server, times it to its first `/healthz`, and returns it with its address.
fn spawn_server(data_dir: &Path, budget: u64) -> (std::process::Child, String, Duration) {
    let started = Instant::now();
    let budget = budget.to_string();
    let (child, base) = shared::spawn_server(
        data_dir,
        &["--open-index-budget-bytes", &budget, "--rate-limit", "0"],
        &[],
        std::process::Stdio::null(),
    );
    let address = base.rsplit("://").next().unwrap_or_default().to_owned();
    let (status, _) = http(&address, "GET", "/healthz", None, "");
    assert_eq!(status, 200);
    (child, address, started.elapsed())
}

/// Start-up time with every tenant, then the rotation: each tenant searched in turn on
/// the real server, its RSS sampled.
fn start_up_and_rotation(data_dir: &Path, rotating: &[&TenantRecord], budget: u64) {
    let mut start_ups = Vec::new();
    for _ in 0..3 {
        let (mut child, _, elapsed) = spawn_server(data_dir, budget);
        start_ups.push(elapsed);
        let _ = child.kill();
        let _ = child.wait();
    }
    start_ups.sort();
    println!(
        "start-up to first /healthz: {} ms median, {} ms worst of 3 (spawn to answer)",
        percentile(&start_ups, 0.5).as_millis(),
        start_ups[2].as_millis()
    );
    if rotating.is_empty() {
        return;
    }
    let (mut child, address, _) = spawn_server(data_dir, budget);
    let pid = child.id();
    let signer = Signer::load(data_dir).unwrap();
    let token = |tenant: &TenantRecord| {
        signer
            .issue(&Grant {
                subject: "bench",
                tenant_id: Some(&tenant.tenant_id),
                roles: &[Role::Reader],
                ttl_seconds: 3_600,
                not_after: None,
                minted_by: None,
            })
            .unwrap()
            .token
    };
    let search = |tenant: &TenantRecord, token: &str| {
        let (status, body) = http(
            &address,
            "POST",
            &format!("/v1/tenants/{}/search", tenant.tenant_id),
            Some(token),
            r#"{"query":"governing law and termination notice"}"#,
        );
        assert_eq!(status, 200, "{body}");
    };
    // The models (the embedder) and one tenant: the baseline the budget adds to.
    let first = token(rotating[0]);
    search(rotating[0], &first);
    let models = rss_bytes(pid);
    let mut peak = models;
    let started = Instant::now();
    let mut latencies = Vec::new();
    for (i, tenant) in rotating.iter().enumerate() {
        let token = token(tenant);
        let asked = Instant::now();
        search(tenant, &token);
        latencies.push(asked.elapsed());
        let rss = rss_bytes(pid);
        peak = peak.max(rss);
        if (i + 1) % (rotating.len() / 5).max(1) == 0 {
            println!(
                "  after {:>5} tenants searched: RSS {:.0} MiB",
                i + 1,
                mib(rss)
            );
        }
    }
    latencies.sort();
    let (_, metrics) = http(&address, "GET", "/metrics", None, "");
    let metric = |name: &str| -> String {
        metrics
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .unwrap_or("?")
            .to_owned()
    };
    println!(
        "rotation: {} tenants searched in {:.1} s (p50 {} ms, p95 {} ms per search, cold opens included)",
        rotating.len(),
        started.elapsed().as_secs_f64(),
        percentile(&latencies, 0.5).as_millis(),
        percentile(&latencies, 0.95).as_millis()
    );
    println!(
        "RSS: models loaded {:.0} MiB, peak {:.0} MiB, budget {:.0} MiB: peak {} budget + models ({:.0} MiB)",
        mib(models),
        mib(peak),
        mib(budget),
        if peak <= models + budget {
            "within"
        } else {
            "OVER"
        },
        mib(models + budget)
    );
    println!(
        "open tenants at the end: {} ({} MiB accounted); evictions: {} for the budget, {} idle",
        metric("bulkhead_open_tenants "),
        metric("bulkhead_open_tenant_bytes ")
            .parse::<u64>()
            .map_or("?".to_owned(), |bytes| format!("{:.1}", mib(bytes))),
        metric("bulkhead_tenant_evictions_total{reason=\"budget\"}"),
        metric("bulkhead_tenant_evictions_total{reason=\"idle\"}")
    );
    let _ = child.kill();
    let _ = child.wait();
}

// ---- premium vs standard latency under load ------------------------------------------
// Issue 12 §2's measure (a premium tenant's ask p95 under a flood of standard-tier asks,
// against its idle p95) needs the language model answering on every side, minutes of it:
// `cargo bench --bench tier_load` runs it on its own.

/// Where premium vs standard latency under load is measured.
fn premium_vs_standard_latency() {
    println!(
        "premium vs standard latency under load: `cargo bench --bench tier_load` (asks answered by the model)"
    );
}
