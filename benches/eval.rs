//! Answer-quality evaluation (`cargo bench --bench eval [-- --quick]`): ingests CUAD dev
//! contracts (`data/eval/cuad-dev`) into a fresh tenant and measures, per CUAD category,
//! - clause recall@1/@5/@10: a search result in the contract asked about whose chunk span
//!   overlaps an expert-marked span, for hybrid, BM25-only and vector-only search;
//! - for a sample of asks: how often the answer cites a chunk overlapping the clause; how
//!   often an absent clause (`is_impossible`) is declined or said to be absent; whether the
//!   typed answer matches (governing law: the state/country; dates; parties);
//! - ask latency p50/p95, and for the asks the model answers, the first token's wait
//!   after retrieval.
//!
//! Questions are phrased as a user would, naming the contract by its document name:
//! the category question of `cuad_retrieval_queries.jsonl` with "this contract" replaced
//! by "the <document name>".
//!
//! Environment: `EVAL_CONTRACTS` (default 12; `--quick` 3), `EVAL_CATEGORIES` (a number
//! of categories in CUAD's order, or comma-separated names; default all), `EVAL_ASKS`
//! (asks about present clauses, default 24; `--quick` 6), `EVAL_ABSENT` (asks about absent
//! clauses, default 12; `--quick` 3), `EVAL_JSON` (default `target/eval.json`),
//! `EVAL_MIN_RECALL10`, `EVAL_MIN_CITES`, `EVAL_MIN_DECLINED` (fail when hybrid recall@10,
//! the share of asks citing the clause or of absent clauses declined is lower), `CUAD_DIR`,
//! `EVAL_DATA_DIR` (keep the ingested tenant there and reuse it on the next run),
//! `EVAL_CLAUSE_MODEL` (`1`: clause questions no rule answers go to the model; `0`: they
//! are answered with the clause's best sentence, quoted; default: the configuration's),
//! `EVAL_LLM` (the language model by name, as `--llm`: `smollm2`, `qwen2.5-coder-0.5b`),
//! `EVAL_FREEFORM` (general questions about the contracts that no rule answers, so the
//! model does, timed apart; default 6, `--quick` 0), `EVAL_DRAFT_TOKENS` (the answers'
//! draft length, 0 for one token a pass; default the configuration's).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bulkhead::appliance::Appliance;
use bulkhead::auth::OperatorReason;
use bulkhead::config::{self, Config};
use bulkhead::index::SearchMode;
use bulkhead::store::{Store, Tier};
use bulkhead::values::{self, DateValue};
use serde_json::{Value, json};

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, percentile};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One question about one contract, with the expert spans that answer it.
struct Question {
    category: String,
    contract: String,
    text: String,
    spans: Vec<(usize, usize)>,
    normalized: String,
}

#[derive(Default, Clone, Copy)]
struct Recall {
    n: usize,
    at1: usize,
    at5: usize,
    at10: usize,
}

impl Recall {
    fn add(&mut self, rank: Option<usize>) {
        self.n += 1;
        if let Some(rank) = rank {
            self.at1 += usize::from(rank < 1);
            self.at5 += usize::from(rank < 5);
            self.at10 += usize::from(rank < 10);
        }
    }
    fn rate(hits: usize, n: usize) -> f64 {
        if n == 0 { 0.0 } else { hits as f64 / n as f64 }
    }
    fn json(&self) -> Value {
        json!({
            "n": self.n,
            "recall_at_1": Self::rate(self.at1, self.n),
            "recall_at_5": Self::rate(self.at5, self.n),
            "recall_at_10": Self::rate(self.at10, self.n),
        })
    }
}

#[derive(Default, Clone, Copy)]
struct Count {
    n: usize,
    yes: usize,
}

impl Count {
    fn add(&mut self, yes: bool) {
        self.n += 1;
        self.yes += usize::from(yes);
    }
    fn cell(&self) -> String {
        if self.n == 0 {
            "-".into()
        } else {
            format!("{}/{}", self.yes, self.n)
        }
    }
    fn json(&self) -> Value {
        json!({"n": self.n, "yes": self.yes})
    }
    /// The share of yes (0 when nothing was counted).
    fn rate(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.yes as f64 / self.n as f64
        }
    }
}

const MODES: [(SearchMode, &str); 3] = [
    (SearchMode::Hybrid, "hybrid"),
    (SearchMode::Keyword, "bm25"),
    (SearchMode::Vector, "vector"),
];

/// Categories whose answers are typed and checked against `normalized_answer`.
const TYPED: [&str; 5] = [
    "Governing Law",
    "Agreement Date",
    "Effective Date",
    "Expiration Date",
    "Parties",
];

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let cuad = common::cuad_dir();
    let contract_count = env_usize("EVAL_CONTRACTS", if quick { 3 } else { 12 });
    let ask_count = env_usize("EVAL_ASKS", if quick { 6 } else { 24 });
    let absent_count = env_usize("EVAL_ABSENT", if quick { 3 } else { 12 });
    let files = common::cuad_contracts(contract_count);
    let names: HashSet<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();

    // Document names, as a user would name the contract.
    let contracts: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(cuad.join("contracts.json")).unwrap())
            .unwrap();
    let document_names: HashMap<String, String> = contracts
        .iter()
        .filter_map(|c| {
            Some((
                c["file"].as_str()?.to_owned(),
                c["document_name"].as_str()?.trim().to_owned(),
            ))
        })
        .collect();
    let read_jsonl = |name: &str| -> Vec<Value> {
        std::fs::read_to_string(cuad.join(name))
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    };
    let retrieval_rows = read_jsonl("cuad_retrieval_queries.jsonl");
    let qa_rows = read_jsonl("cuad_qa.jsonl");

    // The user-facing question of each category ("Which state/country's law governs the
    // interpretation of the contract?"): the text after the contract description.
    let mut category_question: BTreeMap<String, String> = BTreeMap::new();
    for row in &retrieval_rows {
        let (Some(category), Some(query)) = (row["category"].as_str(), row["query"].as_str())
        else {
            continue;
        };
        if let Some(question) = query.rsplit("; ").next() {
            category_question
                .entry(category.to_owned())
                .or_insert_with(|| question.replace('\u{a0}', " ").trim().to_owned());
        }
    }
    let all_categories: Vec<String> = {
        let mut seen = Vec::new();
        for row in &qa_rows {
            let category = row["category"].as_str().unwrap_or_default().to_owned();
            if !seen.contains(&category) {
                seen.push(category);
            }
        }
        seen
    };
    let categories: Vec<String> = match std::env::var("EVAL_CATEGORIES") {
        Ok(list) if list.parse::<usize>().is_ok() => all_categories
            .iter()
            .take(list.parse().unwrap())
            .cloned()
            .collect(),
        Ok(list) => list.split(',').map(|c| c.trim().to_owned()).collect(),
        Err(_) if quick => [
            "Parties",
            "Agreement Date",
            "Governing Law",
            "Anti-Assignment",
        ]
        .map(String::from)
        .to_vec(),
        Err(_) => all_categories.clone(),
    };
    // A title that several of the contracts share is told apart as a user would: "the
    // Agency Agreement with <its first party>".
    // (The first party as the contract spells it: the annotations' own spelling has typos.)
    let flat = |text: &str| {
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let first_parties: HashMap<String, String> = contracts
        .iter()
        .filter_map(|c| {
            let file = c["file"].as_str()?;
            let text = flat(&std::fs::read_to_string(cuad.join("contracts").join(file)).ok()?);
            let name = c["parties"].as_str()?.split(';').find_map(|party| {
                let name = party.trim().trim_start_matches('(');
                let name = name.split(" (").next()?.split("(\"").next()?;
                let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
                (name.len() > 3 && text.contains(&name.to_lowercase())).then_some(name)
            })?;
            Some((file.to_owned(), name))
        })
        .collect();
    let shared_title = |contract: &str| {
        let name = document_names.get(contract).map(|n| n.to_lowercase());
        names
            .iter()
            .filter(|other| document_names.get(*other).map(|n| n.to_lowercase()) == name)
            .count()
            > 1
    };
    let contract_name = |contract: &str| -> Option<String> {
        let mut name = document_names.get(contract)?.clone();
        if shared_title(contract)
            && let Some(party) = first_parties.get(contract).filter(|p| !p.is_empty())
        {
            name = format!("{name} with {party}");
        }
        Some(name)
    };
    let phrase = |category: &str, contract: &str| -> Option<String> {
        let question = category_question.get(category)?;
        let name = contract_name(contract)?;
        let named = format!("the {name}");
        for generic in ["this contract", "the contract"] {
            if question.contains(generic) {
                return Some(question.replacen(generic, &named, 1));
            }
        }
        let mut lowered = question.clone();
        if let Some(first) = lowered.get(..1) {
            lowered = first.to_lowercase() + &lowered[1..];
        }
        Some(format!("In the {name}, {lowered}"))
    };

    let present: Vec<Question> = retrieval_rows
        .iter()
        .filter_map(|row| {
            let contract = row["contract_file"].as_str()?.to_owned();
            let category = row["category"].as_str()?.to_owned();
            if !names.contains(&contract) || !categories.contains(&category) {
                return None;
            }
            let spans = row["gold_spans"]
                .as_array()?
                .iter()
                .filter_map(|s| Some((s[0].as_u64()? as usize, s[1].as_u64()? as usize)))
                .collect();
            let normalized = qa_rows
                .iter()
                .find(|qa| {
                    qa["contract_file"] == row["contract_file"] && qa["category"] == row["category"]
                })
                .and_then(|qa| qa["normalized_answer"].as_str())
                .unwrap_or_default()
                .to_owned();
            Some(Question {
                text: phrase(&category, &contract)?,
                category,
                contract,
                spans,
                normalized,
            })
        })
        .collect();
    let absent: Vec<Question> = qa_rows
        .iter()
        .filter(|row| row["is_impossible"].as_bool() == Some(true))
        .filter_map(|row| {
            let contract = row["contract_file"].as_str()?.to_owned();
            let category = row["category"].as_str()?.to_owned();
            if !names.contains(&contract) || !categories.contains(&category) {
                return None;
            }
            Some(Question {
                text: phrase(&category, &contract)?,
                category,
                contract,
                spans: Vec::new(),
                normalized: String::new(),
            })
        })
        .collect();

    println!(
        "eval: {} contracts, {} categories, {} retrieval questions, {} absent-clause questions",
        files.len(),
        categories.len(),
        present.len(),
        absent.len()
    );

    // A fresh tenant in a temporary data directory; with `EVAL_DATA_DIR`, a kept one that a
    // later run with the same contracts reuses without ingesting again (for iterating on
    // query-time ranking; remove it after changing ingestion).
    let kept = std::env::var_os("EVAL_DATA_DIR").map(std::path::PathBuf::from);
    let data_dir = kept.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("bulkhead-eval-{}", std::process::id()))
    });
    let reuse = kept.is_some() && data_dir.join("system.db").exists();
    if !reuse {
        Store::init(&data_dir).unwrap();
    }
    let mut config = Config::new(data_dir.clone(), config::default_models_dir());
    if let Ok(choice) = std::env::var("EVAL_CLAUSE_MODEL") {
        config.model_for_clauses = choice == "1";
    }
    config.draft_tokens = env_usize("EVAL_DRAFT_TOKENS", config.draft_tokens);
    if let Ok(name) = std::env::var("EVAL_LLM") {
        config.use_llm(name.parse::<config::LlmChoice>().unwrap());
    }
    println!(
        "language model {} (clause questions to the model: {})",
        config.llm_model.display(),
        config.model_for_clauses
    );
    let llm_file = config.llm_model.display().to_string();
    let appliance = Appliance::open(config).unwrap();
    let tenant = match appliance.list_tenants().unwrap().into_iter().next() {
        Some(tenant) if reuse => tenant,
        _ => appliance.create_tenant("eval", Tier::Standard).unwrap(),
    };
    let scope = appliance
        .operator_scope(&tenant.tenant_id, OperatorReason::CommandLine)
        .unwrap();
    let started = std::time::Instant::now();
    let mut chunks = 0;
    if !reuse {
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            appliance.upload(&scope, &name, None, &bytes).unwrap();
        }
        let outcomes = appliance.process_jobs(&scope, &mut |_| {}).unwrap();
        chunks = outcomes.iter().filter_map(|o| o.result.as_ref().ok()).sum();
    }
    println!(
        "ingested {} contracts ({chunks} chunks) in {:.1} s",
        files.len(),
        started.elapsed().as_secs_f64()
    );

    // Retrieval.
    let overlaps = |spans: &[(usize, usize)], start: usize, end: usize| {
        spans.iter().any(|&(s, e)| start < e && s < end)
    };
    let mut recall: BTreeMap<(String, &str), Recall> = BTreeMap::new();
    let mut overall: BTreeMap<&str, Recall> = BTreeMap::new();
    let mut misses = Vec::new();
    for question in &present {
        for (mode, mode_name) in MODES {
            let results = appliance.search(&scope, &question.text, 10, mode).unwrap();
            let rank = results.iter().position(|r| {
                r.chunk.filename == question.contract
                    && overlaps(&question.spans, r.chunk.start, r.chunk.end)
            });
            if rank.is_none() && mode_name == "hybrid" {
                misses.push(miss(&cuad, question, &results));
            }
            recall
                .entry((question.category.clone(), mode_name))
                .or_default()
                .add(rank);
            overall.entry(mode_name).or_default().add(rank);
        }
    }

    // Asks: spread over categories (typed ones first), then absent clauses.
    let mut asks: Vec<&Question> = Vec::new();
    let mut by_category: BTreeMap<&str, Vec<&Question>> = BTreeMap::new();
    for question in &present {
        by_category
            .entry(&question.category)
            .or_default()
            .push(question);
    }
    let mut order: Vec<&str> = TYPED
        .iter()
        .copied()
        .filter(|c| by_category.contains_key(c))
        .collect();
    order.extend(by_category.keys().copied().filter(|c| !TYPED.contains(c)));
    // Typed categories get three rounds of their own first: they carry the typed-answer
    // measure, which one ask each would leave at a sample of one.
    for round in 0..3 {
        for category in order.iter().filter(|c| TYPED.contains(c)) {
            if asks.len() < ask_count / 2
                && let Some(question) = by_category[category].get(round).copied()
            {
                asks.push(question);
            }
        }
    }
    let mut round = 0;
    while asks.len() < ask_count && round < 100 {
        for category in &order {
            if asks.len() < ask_count
                && !(TYPED.contains(category) && round < 3)
                && let Some(question) = by_category[category].get(round).copied()
            {
                asks.push(question);
            }
        }
        round += 1;
    }
    let absent_asks: Vec<&Question> = {
        // One per category first, so that the sample is not all "Source Code Escrow".
        let mut chosen: Vec<&Question> = Vec::new();
        let mut seen = HashSet::new();
        for question in &absent {
            if chosen.len() < absent_count && seen.insert(&question.category) {
                chosen.push(question);
            }
        }
        for question in absent.iter().step_by(5) {
            if chosen.len() < absent_count && !chosen.iter().any(|q| std::ptr::eq(*q, question)) {
                chosen.push(question);
            }
        }
        chosen
    };
    // General questions no rule answers: the model phrases them from the excerpts.
    let freeform_count = env_usize("EVAL_FREEFORM", if quick { 0 } else { 6 });
    let freeform: Vec<String> = files
        .iter()
        .filter_map(|f| contract_name(&f.file_name()?.to_string_lossy()))
        .zip(FREEFORM.iter().cycle())
        .map(|(name, template)| template.replace("{}", &name))
        .take(freeform_count)
        .collect();
    let loaded = std::time::Instant::now();
    if !asks.is_empty() || !absent_asks.is_empty() || !freeform.is_empty() {
        appliance.generator().unwrap();
    }
    let load_ms = loaded.elapsed().as_millis() as u64;
    let mut cites: BTreeMap<String, Count> = BTreeMap::new();
    let mut typed: BTreeMap<String, Count> = BTreeMap::new();
    let mut declined: BTreeMap<String, Count> = BTreeMap::new();
    let mut latencies = Vec::new();
    // Asks the model answered (a prompt went in), whatever the route.
    let mut model_latencies = Vec::new();
    // For those: from the prompt going in to the first checked sentence streamed.
    let mut after_retrieval = Vec::new();
    let mut samples = Vec::new();
    for question in &asks {
        let answer = appliance
            .ask(&scope, &question.text, None, &mut |_| true)
            .unwrap();
        latencies.push(Duration::from_millis(answer.timings.total_ms));
        if answer.timings.prompt_tokens > 0 {
            model_latencies.push(Duration::from_millis(answer.timings.total_ms));
            after_retrieval.extend(first_token_after_retrieval(&answer.timings));
        }
        let cited = answer
            .citations
            .iter()
            .any(|c| c.filename == question.contract && overlaps(&question.spans, c.start, c.end));
        cites
            .entry(question.category.clone())
            .or_default()
            .add(cited);
        // The answer names the file it quotes, and file names often hold party names and
        // dates: only the rest of the answer counts.
        let own_words = answer.text.replace(&question.contract, "");
        if let Some(matched) = typed_match(&question.category, &question.normalized, &own_words) {
            typed
                .entry(question.category.clone())
                .or_default()
                .add(matched);
        }
        samples.push(json!({
            "category": question.category, "contract": question.contract,
            "question": question.text, "expected": question.normalized, "answer": answer.text,
            "cites_clause": cited, "ms": answer.timings.total_ms,
        }));
    }
    for question in &absent_asks {
        let answer = appliance
            .ask(&scope, &question.text, None, &mut |_| true)
            .unwrap();
        latencies.push(Duration::from_millis(answer.timings.total_ms));
        if answer.timings.prompt_tokens > 0 {
            model_latencies.push(Duration::from_millis(answer.timings.total_ms));
            after_retrieval.extend(first_token_after_retrieval(&answer.timings));
        }
        let said_absent = !answer.grounded || says_absent(&answer.text);
        declined
            .entry(question.category.clone())
            .or_default()
            .add(said_absent);
        samples.push(json!({
            "category": question.category, "contract": question.contract,
            "question": question.text, "absent": true,
            "answer": answer.text, "declined": said_absent, "ms": answer.timings.total_ms,
        }));
    }
    latencies.sort();
    model_latencies.sort();
    let mut freeform_latencies = Vec::new();
    let (mut freeform_prefill, mut freeform_decode, mut freeform_tokens) = (0, 0, 0);
    for question in &freeform {
        let answer = appliance
            .ask(&scope, question, None, &mut |_| true)
            .unwrap();
        let t = &answer.timings;
        if t.prompt_tokens > 0 {
            freeform_latencies.push(Duration::from_millis(t.total_ms));
            after_retrieval.extend(first_token_after_retrieval(t));
            freeform_prefill += t.prefill_ms;
            freeform_decode += t.decode_ms;
            freeform_tokens += t.prompt_tokens;
        }
        samples.push(json!({
            "freeform": true, "question": question, "answer": answer.text,
            "model": t.prompt_tokens > 0, "ms": t.total_ms, "prompt_tokens": t.prompt_tokens,
            "answer_tokens": t.answer_tokens, "prefill_ms": t.prefill_ms, "decode_ms": t.decode_ms,
        }));
    }
    freeform_latencies.sort();
    after_retrieval.sort();
    let per_freeform = |total: u64| total / (freeform_latencies.len().max(1) as u64);

    // The table.
    println!(
        "\n{:<36} {:>4} | {:>5} {:>5} {:>5} | {:>6} {:>6} | {:>6} {:>6} {:>6}",
        "category", "n", "hy@1", "hy@5", "hy@10", "bm@10", "vec@10", "cites", "absent", "typed"
    );
    let rate = |recall: Option<&Recall>, pick: fn(&Recall) -> usize| {
        recall.map_or("-".to_owned(), |r| {
            format!("{:.2}", Recall::rate(pick(r), r.n))
        })
    };
    let mut per_category = serde_json::Map::new();
    for category in &categories {
        let get = |mode: &'static str| recall.get(&(category.clone(), mode));
        let n = get("hybrid").map_or(0, |r| r.n);
        let empty = Count::default();
        let cite = cites.get(category).unwrap_or(&empty);
        let decline = declined.get(category).unwrap_or(&empty);
        let typed_count = typed.get(category).unwrap_or(&empty);
        if n == 0 && decline.n == 0 {
            continue;
        }
        println!(
            "{:<36} {:>4} | {:>5} {:>5} {:>5} | {:>6} {:>6} | {:>6} {:>6} {:>6}",
            category,
            n,
            rate(get("hybrid"), |r| r.at1),
            rate(get("hybrid"), |r| r.at5),
            rate(get("hybrid"), |r| r.at10),
            rate(get("bm25"), |r| r.at10),
            rate(get("vector"), |r| r.at10),
            cite.cell(),
            decline.cell(),
            typed_count.cell(),
        );
        per_category.insert(
            category.clone(),
            json!({
                "hybrid": get("hybrid").map(Recall::json),
                "bm25": get("bm25").map(Recall::json),
                "vector": get("vector").map(Recall::json),
                "ask_cites_clause": cite.json(),
                "absent_declined": decline.json(),
                "typed_match": typed_count.json(),
            }),
        );
    }
    let sum = |counts: &BTreeMap<String, Count>| {
        counts.values().fold(Count::default(), |a, b| Count {
            n: a.n + b.n,
            yes: a.yes + b.yes,
        })
    };
    let (all_cites, all_declined, all_typed) = (sum(&cites), sum(&declined), sum(&typed));
    println!(
        "{:<36} {:>4} | {:>5} {:>5} {:>5} | {:>6} {:>6} | {:>6} {:>6} {:>6}",
        "ALL",
        overall.get("hybrid").map_or(0, |r| r.n),
        rate(overall.get("hybrid"), |r| r.at1),
        rate(overall.get("hybrid"), |r| r.at5),
        rate(overall.get("hybrid"), |r| r.at10),
        rate(overall.get("bm25"), |r| r.at10),
        rate(overall.get("vector"), |r| r.at10),
        all_cites.cell(),
        all_declined.cell(),
        all_typed.cell(),
    );
    for (mode, r) in &overall {
        println!(
            "recall {mode:<6}: @1 {:.3}  @5 {:.3}  @10 {:.3}  ({} questions)",
            Recall::rate(r.at1, r.n),
            Recall::rate(r.at5, r.n),
            Recall::rate(r.at10, r.n),
            r.n
        );
    }
    println!(
        "ask: p50 {} ms, p95 {} ms over {} asks; {} of them by the model: p50 {} ms, p95 {} ms",
        percentile(&latencies, 0.5).as_millis(),
        percentile(&latencies, 0.95).as_millis(),
        latencies.len(),
        model_latencies.len(),
        percentile(&model_latencies, 0.5).as_millis(),
        percentile(&model_latencies, 0.95).as_millis(),
    );
    println!(
        "free-form asks by the model: {} of {}: p50 {} ms, p95 {} ms (mean prompt {} tokens, prefill {} ms, decode {} ms); model load {load_ms} ms",
        freeform_latencies.len(),
        freeform.len(),
        percentile(&freeform_latencies, 0.5).as_millis(),
        percentile(&freeform_latencies, 0.95).as_millis(),
        freeform_tokens as u64 / (freeform_latencies.len().max(1) as u64),
        per_freeform(freeform_prefill),
        per_freeform(freeform_decode),
    );

    println!(
        "first token after retrieval, asks the model answered: p50 {} ms, p95 {} ms, max {} ms over {} (drafts of up to {} tokens)",
        percentile(&after_retrieval, 0.5).as_millis(),
        percentile(&after_retrieval, 0.95).as_millis(),
        after_retrieval.last().map_or(0, Duration::as_millis),
        after_retrieval.len(),
        appliance.config().draft_tokens,
    );

    let report = json!({
        "llm": llm_file,
        "model_for_clauses": appliance.config().model_for_clauses,
        "contracts": files.len(),
        "chunks": chunks,
        "categories": per_category,
        "overall": {
            "hybrid": overall.get("hybrid").map(Recall::json),
            "bm25": overall.get("bm25").map(Recall::json),
            "vector": overall.get("vector").map(Recall::json),
            "ask_cites_clause": all_cites.json(),
            "absent_declined": all_declined.json(),
            "typed_match": all_typed.json(),
            "typed_by_category": typed.iter().map(|(k, v)| (k.clone(), v.json())).collect::<serde_json::Map<_, _>>(),
            "ask_p50_ms": percentile(&latencies, 0.5).as_millis() as u64,
            "ask_p95_ms": percentile(&latencies, 0.95).as_millis() as u64,
            "model_asks": model_latencies.len(),
            "model_ask_p50_ms": percentile(&model_latencies, 0.5).as_millis() as u64,
            "model_ask_p95_ms": percentile(&model_latencies, 0.95).as_millis() as u64,
            "freeform_by_model": freeform_latencies.len(),
            "freeform_p50_ms": percentile(&freeform_latencies, 0.5).as_millis() as u64,
            "freeform_p95_ms": percentile(&freeform_latencies, 0.95).as_millis() as u64,
            "freeform_mean_prefill_ms": per_freeform(freeform_prefill),
            "freeform_mean_decode_ms": per_freeform(freeform_decode),
            "first_token_after_retrieval_p50_ms": percentile(&after_retrieval, 0.5).as_millis() as u64,
            "first_token_after_retrieval_p95_ms": percentile(&after_retrieval, 0.95).as_millis() as u64,
            "draft_tokens": appliance.config().draft_tokens,
            "model_load_ms": load_ms,
        },
        "asks": samples,
        "hybrid_misses": misses,
    });
    let path = std::env::var_os("EVAL_JSON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| {
                    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
                })
                .join("eval.json")
        });
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("wrote {}", path.display());
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }

    // The quality gates: each a floor on one measure, when set.
    let gates = [
        (
            "EVAL_MIN_RECALL10",
            "hybrid recall@10",
            overall
                .get("hybrid")
                .map_or(0.0, |r| Recall::rate(r.at10, r.n)),
        ),
        ("EVAL_MIN_CITES", "asks citing the clause", all_cites.rate()),
        (
            "EVAL_MIN_DECLINED",
            "absent clauses declined",
            all_declined.rate(),
        ),
    ];
    let mut failed = false;
    for (variable, measure, got) in gates {
        if let Ok(minimum) = std::env::var(variable) {
            let minimum: f64 = minimum.parse().expect("a gate is a fraction");
            if got < minimum {
                eprintln!("{measure} {got:.3} is below {variable} {minimum:.3}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

/// General questions about a contract (`{}`: its name) that name no clause type, so no
/// rule answers them and the model phrases the answer from the excerpts.
const FREEFORM: [&str; 3] = [
    "What is the purpose of the {}?",
    "What must each party do under the {}?",
    "What products or services does the {} cover?",
];

/// Whether an answer says the clause is not there (or declines).
fn says_absent(text: &str) -> bool {
    let lower = text.to_lowercase();
    [
        "no such",
        "does not contain",
        "does not have",
        "has no ",
        "not found",
        "cannot answer",
        "nothing in them",
        "none of them",
        "not mention",
        "no clause",
    ]
    .iter()
    .any(|phrase| lower.contains(phrase))
}

/// Whether a typed answer matches the experts' normalised answer; `None` when the category
/// is not typed or the experts left it blank.
fn typed_match(category: &str, normalized: &str, answer: &str) -> Option<bool> {
    if !TYPED.contains(&category) || normalized.trim().is_empty() {
        return None;
    }
    let lower = answer.to_lowercase();
    Some(match category {
        "Governing Law" => normalized
            .split([';', ','])
            .map(|j| j.trim().to_lowercase())
            .filter(|j| !j.is_empty() && j != "uk" && j != "united kingdom")
            .any(|j| lower.contains(&j)),
        "Parties" => {
            let names: Vec<String> = normalized
                .split(';')
                .filter_map(|party| {
                    let name = party.split('(').next()?.trim();
                    let word = name
                        .split_whitespace()
                        .find(|w| w.len() >= 3 && !w.eq_ignore_ascii_case("the"))?;
                    Some(
                        word.trim_matches(|c: char| !c.is_alphanumeric())
                            .to_lowercase(),
                    )
                })
                .filter(|w| !w.is_empty())
                .collect();
            let found = names.iter().filter(|n| lower.contains(n.as_str())).count();
            !names.is_empty() && found >= names.len().min(2)
        }
        _ => {
            // CUAD writes m/d/yy with [] for blanks: compare the parts that are given.
            let parts: Vec<&str> = normalized.trim().split('/').collect();
            if normalized.eq_ignore_ascii_case("perpetual") {
                return Some(lower.contains("perpetu") || lower.contains("indefinite"));
            }
            let [month, day, year] = parts.as_slice() else {
                return None;
            };
            let number = |s: &str| s.trim().parse::<i32>().ok();
            let year = number(year).map(|y| match y {
                0..=50 => 2000 + y,
                51..=99 => 1900 + y,
                _ => y,
            });
            let expected = (year, number(month), number(day));
            values::find_dates(answer)
                .into_iter()
                .any(|(date, _): (DateValue, _)| {
                    expected.0.is_none_or(|y| y == date.year)
                        && expected.1.is_none_or(|m| Some(m as u8) == date.month)
                        && expected.2.is_none_or(|d| Some(d as u8) == date.day)
                })
        }
    })
}

/// A hybrid search that found no expert span in its top 10: the question, the start of
/// the expert passage and of the first three results, for reading why.
fn miss(
    cuad: &std::path::Path,
    question: &Question,
    results: &[bulkhead::appliance::SearchResult],
) -> Value {
    let text = std::fs::read_to_string(cuad.join("contracts").join(&question.contract))
        .unwrap_or_default();
    let excerpt = |s: &str| s.chars().take(240).collect::<String>();
    let gold: Vec<String> = question
        .spans
        .iter()
        .filter_map(|&(start, end)| text.get(start..end))
        .map(excerpt)
        .collect();
    json!({
        "category": question.category,
        "question": question.text,
        "expert": gold,
        "top": results.iter().take(3).map(|r| json!({
            "file": r.chunk.filename == question.contract,
            "text": excerpt(&r.chunk.text),
        })).collect::<Vec<_>>(),
    })
}

/// From the end of retrieval (before the sentences are ranked and the prompt built) to
/// the first checked text streamed; none when nothing was streamed.
fn first_token_after_retrieval(t: &bulkhead::appliance::Timings) -> Option<Duration> {
    let first = t.first_token_ms?;
    Some(Duration::from_millis(
        first.saturating_sub(t.retrieved_ms.unwrap_or(0)),
    ))
}
