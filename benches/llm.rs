//! LLM speed (`cargo bench --bench llm`): prefill and decode tokens/s and time to first
//! token for a ~600-token prompt with the default weight format.
//! `BULKHEAD_LLM_BENCH_ALL=1` also measures the other formats, including the file's own
//! Q4_1 (about a minute and a half on two cores); `BULKHEAD_LLM_BENCH_FORMATS=Q8_0,Fast`
//! measures the formats named (to profile one; `Fast,FastF32` compares the int8 prefill
//! with the f32 one it replaced); `BULKHEAD_LLM_BENCH_PREFILL=N` runs only
//! the default format's prefill, N times (to profile it); `BULKHEAD_LLM_BENCH_DECODE=N`
//! runs only decoding (a short prompt, 256 new tokens), N times with the default format
//! (to profile it, or to alternate with a peer). `BULKHEAD_LLM=qwen2.5-coder-0.5b`
//! measures that (optional) model instead of the default.

use std::time::Instant;

use bulkhead::config::{self, LlmChoice};
use bulkhead::llm::{ChatMessage, GenerateOptions, Generator, LoadOptions, Role, WeightFormat};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prefill and decode speed for a ~600-token prompt with the default (fast) weight format.
/// `BULKHEAD_LLM_BENCH_ALL=1` also measures the other formats, including the file's own
/// Q4_1 (about a minute and a half on two cores, hence not by default).
fn main() {
    let choice: LlmChoice =
        std::env::var(config::LLM_ENV).map_or(LlmChoice::default(), |name| name.parse().unwrap());
    let model_path = config::default_models_dir().join(choice.file());
    println!("model {}", model_path.display());
    // Loaded apart from the measured ones, and dropped before them (the larger models
    // hold a few GB).
    let generator = Generator::load(&model_path).expect("run models/fetch.sh");
    let filler = "Section 4.2 of the supply agreement states that the supplier shall deliver \
                      the goods within thirty days of each purchase order, and that late delivery \
                      entitles the buyer to a discount of two percent per week of delay. ";
    let mut excerpt = String::new();
    while generator.count_tokens(&excerpt) < 560 {
        excerpt.push_str(filler);
    }
    drop(generator);
    let chat = vec![
        ChatMessage::new(Role::System, "Answer only from the excerpt."),
        ChatMessage::new(
            Role::User,
            format!("Excerpt: {excerpt}\n\nQuestion: What discount applies to late delivery?"),
        ),
    ];
    // One token a pass, as llama.cpp decodes: drafts are measured apart ([`drafts`]).
    let options = GenerateOptions {
        max_new_tokens: 64,
        draft_tokens: 0,
        ..GenerateOptions::default()
    };
    if let Some(runs) = std::env::var("BULKHEAD_LLM_BENCH_PREFILL")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        prefill_only(&Generator::load(&model_path).expect("model"), &chat, runs);
        return;
    }
    if let Some(runs) = std::env::var("BULKHEAD_LLM_BENCH_DECODE")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        decode_only(&Generator::load(&model_path).expect("model"), runs);
        return;
    }
    let all = [
        WeightFormat::Fast,
        WeightFormat::FastF32,
        WeightFormat::F32,
        WeightFormat::Q8_0,
        WeightFormat::AsStored,
    ];
    let formats: Vec<WeightFormat> = match std::env::var("BULKHEAD_LLM_BENCH_FORMATS") {
        // A comma-separated list of format names, e.g. `Q8_0,Fast` (for profiling one).
        Ok(names) => all
            .into_iter()
            .filter(|f| names.split(',').any(|n| n.trim() == format!("{f:?}")))
            .collect(),
        Err(_) if std::env::var_os("BULKHEAD_LLM_BENCH_ALL").is_some() => all.to_vec(),
        Err(_) => vec![WeightFormat::Fast],
    };
    for format in formats {
        let load_started = Instant::now();
        let g = Generator::load_with(&model_path, LoadOptions { weights: format }).expect("load");
        let load = load_started.elapsed();
        // Other work on the machine skews single runs: report each, and the best.
        let runs = if format == WeightFormat::AsStored {
            1
        } else {
            3
        };
        if runs > 1 {
            // Warm-up: first use packs weights and sizes thread pools.
            g.generate(
                &chat,
                &GenerateOptions {
                    max_new_tokens: 1,
                    ..options.clone()
                },
                &mut |_| true,
            )
            .expect("generate");
        }
        let (mut best_prefill, mut best_decode) = (0f64, 0f64);
        for _ in 0..runs {
            let r = g
                .generate(&chat, &options, &mut |_| true)
                .expect("generate");
            assert!(r.prompt_tokens >= 550);
            let decode = r.total.saturating_sub(r.time_to_first_token);
            let prefill_rate = r.prompt_tokens as f64 / r.prefill.as_secs_f64();
            let decode_rate = r.generated_tokens.saturating_sub(1) as f64 / decode.as_secs_f64();
            best_prefill = best_prefill.max(prefill_rate);
            best_decode = best_decode.max(decode_rate);
            eprintln!(
                "{format:?}: load {:.2}s, prompt {} tok, prefill {prefill_rate:.0} tok/s, ttft {:.2}s, decode {} tok at {decode_rate:.1} tok/s",
                load.as_secs_f64(),
                r.prompt_tokens,
                r.time_to_first_token.as_secs_f64(),
                r.generated_tokens,
            );
        }
        eprintln!(
            "{format:?} best: prefill {best_prefill:.0} tok/s, decode {best_decode:.1} tok/s"
        );
        if format == WeightFormat::Fast {
            prefix_reuse(&g, &excerpt);
            drafts(&g, &excerpt);
        }
    }
}

/// `BULKHEAD_LLM_BENCH_PREFILL=N`: the prompt's prefill alone, N times (to profile it:
/// `perf record -g` sees little else).
fn prefill_only(g: &Generator, chat: &[ChatMessage], runs: usize) {
    let options = GenerateOptions {
        max_new_tokens: 1,
        ..GenerateOptions::default()
    };
    for _ in 0..runs {
        let r = g.generate(chat, &options, &mut |_| true).expect("generate");
        eprintln!(
            "prefill {} tok in {:.0} ms: {:.0} tok/s",
            r.prompt_tokens,
            r.prefill.as_secs_f64() * 1000.0,
            r.prompt_tokens as f64 / r.prefill.as_secs_f64()
        );
    }
}

/// `BULKHEAD_LLM_BENCH_DECODE=N`: up to 256 tokens after a short prompt, N times; the
/// prompt's prefill is a small share, so `perf record` sees decoding.
fn decode_only(g: &Generator, runs: usize) {
    let chat = [ChatMessage::new(
        Role::User,
        "Write a long story about a lighthouse keeper and the ships she guides.",
    )];
    let options = GenerateOptions {
        max_new_tokens: 256,
        draft_tokens: 0,
        ..GenerateOptions::default()
    };
    for _ in 0..runs {
        let r = g
            .generate(&chat, &options, &mut |_| true)
            .expect("generate");
        let decode = r.total.saturating_sub(r.time_to_first_token);
        eprintln!(
            "decode {} tok after a {}-token prompt: {:.1} tok/s",
            r.generated_tokens,
            r.prompt_tokens,
            r.generated_tokens.saturating_sub(1) as f64 / decode.as_secs_f64()
        );
    }
}

/// Prefill of a grounded answer's prompt (the appliance's own system turn, ~180 tokens of
/// excerpt) when the system turn is new (a tenant's first ask) and when it is reused.
fn prefix_reuse(g: &Generator, excerpt: &str) {
    let excerpt: String = excerpt.split(' ').take(140).collect::<Vec<_>>().join(" ");
    let options = GenerateOptions {
        max_new_tokens: 1,
        ..GenerateOptions::default()
    };
    let (mut fresh, mut reused) = (Vec::new(), Vec::new());
    for tenant in 0..5 {
        let mut chat = bulkhead::answer::build_prompt(
            &format!("Tenant {tenant} Holdings"),
            "What discount applies to late delivery?",
            &[],
        );
        chat[1].content = format!("Excerpts:\n[1] {excerpt}\n\n{}", chat[1].content);
        let first = g
            .generate(&chat, &options, &mut |_| true)
            .expect("generate");
        let again = g
            .generate(&chat, &options, &mut |_| true)
            .expect("generate");
        fresh.push(first.prefill.as_secs_f64() * 1000.0);
        reused.push(again.prefill.as_secs_f64() * 1000.0);
        if tenant == 0 {
            eprintln!("grounded prompt: {} tokens", first.prompt_tokens);
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (fresh, reused) = (median(&mut fresh), median(&mut reused));
    eprintln!(
        "prefill, system turn new: {fresh:.0} ms; reused: {reused:.0} ms (median of 5; ratio {:.2})",
        reused / fresh
    );
}

/// A grounded answer (the appliance's prompt, ~300 tokens of excerpt) decoded one token a
/// pass and with drafts from the prompt, alternated: the decode time of each, and whether
/// both give the same answer.
fn drafts(g: &Generator, excerpt: &str) {
    let excerpt: String = excerpt.split(' ').take(230).collect::<Vec<_>>().join(" ");
    let mut chat = bulkhead::answer::build_prompt(
        "Bench Holdings",
        "What discount applies to late delivery?",
        &[],
    );
    chat[1].content = format!("Excerpts:\n[1] {excerpt}\n\n{}", chat[1].content);
    let run = |draft_tokens: usize| {
        let options = GenerateOptions {
            max_new_tokens: 48,
            draft_tokens,
            ..GenerateOptions::default()
        };
        g.generate(&chat, &options, &mut |_| true)
            .expect("generate")
    };
    let (mut plain, mut drafted) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..5 {
        for (draft_tokens, times) in [(0, &mut plain), (8, &mut drafted)] {
            let r = run(draft_tokens);
            times.push(r.total.saturating_sub(r.prefill).as_secs_f64() * 1000.0);
            last = Some((draft_tokens, r));
        }
    }
    let (one, with_drafts) = (run(0), last.expect("ran").1);
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (plain, drafted) = (median(&mut plain), median(&mut drafted));
    eprintln!(
        "grounded answer of {} tokens: decoded in {plain:.0} ms one token a pass, {drafted:.0} ms with drafts ({} tokens drafted; ratio {:.2}); same text: {}",
        with_drafts.generated_tokens,
        with_drafts.drafted_tokens,
        drafted / plain,
        one.text == with_drafts.text
    );
}
