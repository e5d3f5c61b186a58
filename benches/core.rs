//! Core-loop benchmark harness (`cargo bench --bench core`): embedding throughput,
//! ingestion of the CUAD dev contracts, cold open of that tenant, HNSW recall@10 against
//! exact search, ask latency (p50/p95, time to first token) and peak memory.
//!
//! Environment: `BENCH_CONTRACTS` (default 95: all), `BENCH_QUESTIONS` (default 20),
//! `BENCH_DATA_DIR` (reuse an ingested data directory instead of a fresh one),
//! `BENCH_DRAFT_TOKENS` (the answers' draft length, 0 for one token a pass; default the
//! appliance's), `CUAD_DIR` (default `data/eval/cuad-dev`). Prints one line per figure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bulkhead::appliance::Appliance;
use bulkhead::auth::OperatorReason;
use bulkhead::config::{self, Config};
use bulkhead::index::vector::{VectorIndex, exact_search};
use bulkhead::store::{Store, Tier};

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, percentile};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let cuad = common::cuad_dir();
    let contract_count = env_usize("BENCH_CONTRACTS", 95);
    let question_count = env_usize("BENCH_QUESTIONS", 20);
    let files = common::cuad_contracts(contract_count);
    println!(
        "machine: {} cores; contracts: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        files.len()
    );

    let (data_dir, reuse) = match std::env::var_os("BENCH_DATA_DIR") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (
            std::env::temp_dir().join(format!("bulkhead-bench-{}", std::process::id())),
            false,
        ),
    };
    Store::init(&data_dir).unwrap();
    bulkhead::auth::tokens::Signer::init(&data_dir).unwrap();
    let mut config = Config::new(data_dir.clone(), config::default_models_dir());
    config.draft_tokens = env_usize("BENCH_DRAFT_TOKENS", config.draft_tokens);
    let appliance = Appliance::open(config.clone()).unwrap();

    // Embedding throughput on real contract chunks (batched as ingestion does).
    let embedder = appliance.embedder().unwrap();
    let sample_text = std::fs::read_to_string(&files[0]).unwrap();
    let chunker = bulkhead::ingest::chunk::Chunker::new(embedder.tokenizer().clone());
    let mut chunks: Vec<String> = chunker
        .chunk(&sample_text)
        .into_iter()
        .map(|c| c.text)
        .collect();
    while chunks.len() < 64 {
        chunks.extend(chunks.clone());
    }
    chunks.truncate(64);
    let texts: Vec<&str> = chunks.iter().map(String::as_str).collect();
    embedder.embed(&texts[..8]).unwrap(); // warm-up
    let started = Instant::now();
    embedder.embed(&texts).unwrap();
    let elapsed = started.elapsed();
    println!(
        "embedding: {:.1} chunks/s ({} chunks of <=160 tokens in {:.2} s)",
        texts.len() as f64 / elapsed.as_secs_f64(),
        texts.len(),
        elapsed.as_secs_f64()
    );

    // Ingestion.
    let tenant = match appliance
        .list_tenants()
        .unwrap()
        .into_iter()
        .find(|t| t.name == "bench")
    {
        Some(tenant) if reuse => tenant,
        _ => appliance.create_tenant("bench", Tier::Standard).unwrap(),
    };
    let scope = appliance
        .operator_scope(&tenant.tenant_id, OperatorReason::CommandLine)
        .unwrap();
    if appliance.list_documents(&scope).unwrap().is_empty() {
        let started = Instant::now();
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            appliance.upload(&scope, &name, None, &bytes).unwrap();
        }
        let outcomes = appliance.process_jobs(&scope, &mut |_| {}).unwrap();
        let elapsed = started.elapsed();
        let chunk_total: usize = outcomes.iter().filter_map(|o| o.result.as_ref().ok()).sum();
        println!(
            "ingestion: {:.1} contracts/min ({} contracts, {} chunks, {:.1} s; {:.1} chunks/s end to end)",
            files.len() as f64 / elapsed.as_secs_f64() * 60.0,
            files.len(),
            chunk_total,
            elapsed.as_secs_f64(),
            chunk_total as f64 / elapsed.as_secs_f64()
        );
    }

    // Cold open: a fresh appliance, first search opens (decrypt + load + build) the tenant.
    drop(appliance);
    let appliance = Appliance::open(config).unwrap();
    let embedder = appliance.embedder().unwrap();
    let started = Instant::now();
    appliance
        .search(
            &scope,
            "governing law",
            5,
            bulkhead::index::SearchMode::Keyword,
        )
        .unwrap();
    println!(
        "cold open: {:.0} ms (first keyword search on a fresh process, models already loaded)",
        started.elapsed().as_secs_f64() * 1000.0
    );

    // HNSW recall@10 against exact search over the tenant's chunks.
    let vectors = Store::open(&data_dir)
        .unwrap()
        .chunk_vectors(&scope)
        .unwrap();
    let items: Vec<(u64, Vec<f32>)> = vectors
        .into_iter()
        .map(|v| (v.row_id, v.embedding))
        .collect();
    let started = Instant::now();
    let mut index = VectorIndex::new(items.len());
    let refs: Vec<(u64, &[f32])> = items.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    index.insert(&refs);
    let build = started.elapsed();
    let queries: Vec<String> = std::fs::read_to_string(cuad.join("cuad_retrieval_queries.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|row| row["query"].as_str().map(str::to_owned))
        .take(100)
        .collect();
    let mut found = 0usize;
    let mut search_time = Duration::ZERO;
    for query in &queries {
        let vector = embedder.embed_one(query).unwrap();
        let started = Instant::now();
        let hits = index.search(&vector, 10);
        search_time += started.elapsed();
        let exact: Vec<u64> = exact_search(&items, &vector, 10)
            .into_iter()
            .map(|h| h.0)
            .collect();
        found += hits.iter().filter(|h| exact.contains(&h.0)).count();
    }
    println!(
        "hnsw: recall@10 {:.3} over {} queries, {} vectors; build {:.2} s; search {:.3} ms/query",
        found as f64 / (queries.len().max(1) * 10) as f64,
        queries.len(),
        items.len(),
        build.as_secs_f64(),
        search_time.as_secs_f64() * 1000.0 / queries.len().max(1) as f64
    );

    // Ask latency on questions from the CUAD annotations, about the contracts ingested
    // (a question naming a contract that is not there is refused before the model runs).
    let ingested: std::collections::HashSet<String> = files
        .iter()
        .filter_map(|file| {
            file.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .collect();
    // (question, its contract, the expert-annotated answer spans)
    type Question = (String, String, Vec<(usize, usize)>);
    let questions: Vec<Question> =
        std::fs::read_to_string(cuad.join("cuad_retrieval_queries.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|row| {
                row["contract_file"]
                    .as_str()
                    .is_some_and(|file| ingested.contains(file))
            })
            .filter_map(|row| {
                let spans = row["gold_spans"]
                    .as_array()?
                    .iter()
                    .filter_map(|span| {
                        Some((span[0].as_u64()? as usize, span[1].as_u64()? as usize))
                    })
                    .collect();
                Some((
                    row["query"].as_str()?.to_owned(),
                    row["contract_file"].as_str()?.to_owned(),
                    spans,
                ))
            })
            .step_by(7)
            .take(question_count)
            .collect();
    appliance.generator().unwrap();
    let mut totals = Vec::new();
    let mut first_tokens = Vec::new();
    // First token less the retrieval and ranking before the model starts.
    let mut after_retrieval = Vec::new();
    let (mut embed, mut retrieve, mut generate, mut prompt_tokens, mut answer_tokens, mut grounded) =
        (0u64, 0u64, 0u64, 0usize, 0usize, 0usize);
    // Quality beside speed: does the answer cite the contract asked about, and a passage
    // overlapping what the CUAD experts marked?
    let (mut right_contract, mut on_gold) = (0usize, 0usize);
    for (question, contract, spans) in &questions {
        let answer = appliance
            .ask(&scope, question, None, &mut |_| true)
            .unwrap();
        let cited: Vec<_> = answer
            .citations
            .iter()
            .filter(|citation| &citation.filename == contract)
            .collect();
        right_contract += usize::from(!cited.is_empty());
        on_gold += usize::from(cited.iter().any(|citation| {
            spans
                .iter()
                .any(|&(start, end)| citation.start < end && start < citation.end)
        }));
        totals.push(Duration::from_millis(answer.timings.total_ms));
        if let Some(first) = answer.timings.first_token_ms {
            first_tokens.push(Duration::from_millis(first));
            let retrieved = answer.timings.retrieved_ms.unwrap_or(0);
            after_retrieval.push(Duration::from_millis(first.saturating_sub(retrieved)));
        }
        embed += answer.timings.embed_ms;
        retrieve += answer.timings.retrieve_ms;
        generate += answer.timings.generate_ms;
        prompt_tokens += answer.timings.prompt_tokens;
        answer_tokens += answer.timings.answer_tokens;
        grounded += usize::from(answer.grounded);
    }
    totals.sort();
    first_tokens.sort();
    after_retrieval.sort();
    let n = questions.len().max(1) as u64;
    println!(
        "ask: p50 {} ms, p95 {} ms; first token p50 {} ms, p95 {} ms ({} questions, {} answered by the model, {} refused)",
        percentile(&totals, 0.5).as_millis(),
        percentile(&totals, 0.95).as_millis(),
        percentile(&first_tokens, 0.5).as_millis(),
        percentile(&first_tokens, 0.95).as_millis(),
        questions.len(),
        first_tokens.len(),
        questions.len() - grounded
    );
    println!(
        "first token after retrieval: p50 {} ms, p95 {} ms, max {} ms (drafts of up to {} tokens)",
        percentile(&after_retrieval, 0.5).as_millis(),
        percentile(&after_retrieval, 0.95).as_millis(),
        after_retrieval.last().map_or(0, Duration::as_millis),
        appliance.config().draft_tokens
    );
    println!(
        "ask breakdown (mean): embed {} ms, retrieve {} ms, generate {} ms; prompt {} tokens, answer {} tokens",
        embed / n,
        retrieve / n,
        generate / first_tokens.len().max(1) as u64,
        prompt_tokens / first_tokens.len().max(1),
        answer_tokens / first_tokens.len().max(1)
    );
    println!(
        "ask quality: {right_contract} of {} answers cite the contract asked about; {on_gold} cite a passage overlapping the experts' answer",
        questions.len()
    );
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    if !reuse {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}
