//! What the isolation layers cost (`cargo bench --features ablation --bench isolation`):
//! the same operations with all six layers on and with the five checks off — gateway,
//! scope, row security, prompt, output; cryptography stays, since the data is sealed with
//! it and must be opened either way — alternating in one process so that the machine's
//! noise hits both alike. One tenant holds CUAD dev contracts (with the
//! checks off, a second tenant's rows would show up and fail to decrypt: not the same
//! work).
//!
//! Environment: `BENCH_CONTRACTS` (default 12), `BENCH_ROUNDS` (default 30),
//! `CUAD_DIR` (default `data/eval/cuad-dev`). Needs the test-only `ablation` feature.

use std::time::{Duration, Instant};

use bulkhead::appliance::Appliance;
use bulkhead::auth::OperatorReason;
use bulkhead::config::{self, Config};
use bulkhead::index::SearchMode;
use bulkhead::isolation::{Layer, ablation};
use bulkhead::store::{Store, Tier};

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, percentile};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUERIES: [&str; 6] = [
    "governing law of this agreement",
    "termination for convenience notice period",
    "limitation of liability cap",
    "exclusivity and non-compete",
    "assignment without consent",
    "payment terms and fees",
];

fn main() {
    let contracts = env_usize("BENCH_CONTRACTS", 12);
    let rounds = env_usize("BENCH_ROUNDS", 30);
    let files = common::cuad_contracts(contracts);

    let dir = tempfile::tempdir().unwrap();
    Store::init(dir.path()).unwrap();
    bulkhead::auth::tokens::Signer::init(dir.path()).unwrap();
    let appliance = Appliance::open(Config::new(
        dir.path().to_path_buf(),
        config::default_models_dir(),
    ))
    .unwrap();
    let tenant = appliance.create_tenant("Alpha", Tier::Standard).unwrap();
    let scope = &appliance
        .operator_scope(&tenant.tenant_id, OperatorReason::CommandLine)
        .unwrap();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy();
        appliance.upload(scope, &name, None, &bytes).unwrap();
    }
    appliance.process_jobs(scope, &mut |_| {}).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let row_ids: Vec<u64> = store
        .chunk_row_ids(scope)
        .unwrap()
        .into_iter()
        .step_by(7)
        .take(10)
        .collect();
    println!(
        "machine: {} cores; {} contracts, {} chunks; {rounds} rounds",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        files.len(),
        store.chunk_row_ids(scope).unwrap().len()
    );
    // Warm the models and the index.
    appliance
        .search(scope, QUERIES[0], 10, SearchMode::Hybrid)
        .unwrap();

    type Sample = [Vec<Duration>; 4];
    let mut on: Sample = Default::default();
    let mut off: Sample = Default::default();
    for round in 0..rounds {
        for all_off in [false, true] {
            let checks: Vec<Layer> = Layer::ALL
                .into_iter()
                .filter(|layer| *layer != Layer::Crypto)
                .collect();
            ablation::set_off(if all_off { &checks } else { &[] });
            let samples = if all_off { &mut off } else { &mut on };
            let query = QUERIES[round % QUERIES.len()];
            let time = |work: &mut dyn FnMut()| {
                let started = Instant::now();
                work();
                started.elapsed()
            };
            samples[0].push(time(&mut || {
                appliance
                    .search(scope, query, 10, SearchMode::Hybrid)
                    .unwrap();
            }));
            samples[1].push(time(&mut || {
                appliance
                    .search(scope, query, 10, SearchMode::Keyword)
                    .unwrap();
            }));
            samples[2].push(time(&mut || {
                store.chunks(scope, &row_ids).unwrap();
            }));
            samples[3].push(time(&mut || {
                appliance.list_documents(scope).unwrap();
            }));
        }
    }
    ablation::set_off(&[]);
    for (index, label) in [
        "search, hybrid (embeds the query)",
        "search, keyword",
        "fetch 10 chunks by row id",
        "list documents",
    ]
    .into_iter()
    .enumerate()
    {
        let median = |samples: &[Duration]| {
            let mut sorted = samples.to_vec();
            sorted.sort();
            percentile(&sorted, 0.5)
        };
        let (with, without) = (median(&on[index]), median(&off[index]));
        println!(
            "{label}: median {:.2} ms with all layers, {:.2} ms without the checks ({:+.0}%)",
            with.as_secs_f64() * 1000.0,
            without.as_secs_f64() * 1000.0,
            (with.as_secs_f64() / without.as_secs_f64() - 1.0) * 100.0
        );
    }
}
