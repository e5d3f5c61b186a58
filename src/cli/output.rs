//! How the command line prints: progress bars, listings, citations, JSON.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::appliance::{Answer, SearchResult, Timings};
use crate::catalogue::Catalogue;
use crate::ids::DocumentId;
use crate::store::{DocumentRecord, IssuedToken, TenantRecord};

pub(super) fn progress_bar(length: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub(super) fn print_tenants(tenants: &[TenantRecord]) {
    for tenant in tenants {
        println!(
            "{}  {:<10}  {}  {}",
            tenant.tenant_id,
            tenant.tier.as_str(),
            crate::time::rfc3339(tenant.created_at),
            tenant.name
        );
    }
}

pub(super) fn print_tokens(tokens: &[IssuedToken]) {
    for token in tokens {
        println!(
            "{}  {:<8}  expires {}  {}  ({})",
            token.jti,
            if token.revoked { "revoked" } else { "live" },
            crate::time::rfc3339(token.expires_at),
            token.user.as_deref().unwrap_or("(tenant locked)"),
            token.roles.join(", ")
        );
    }
}

pub(super) fn print_results(results: &[SearchResult]) {
    for (rank, result) in results.iter().enumerate() {
        println!(
            "{}. {} [{}..{}] score {:.4}\n   {}",
            rank + 1,
            result.chunk.filename,
            result.chunk.start,
            result.chunk.end,
            result.score,
            snippet(&result.chunk.text, 200)
        );
    }
}

/// One line per document, then its catalogue summary (indented) when it has one.
pub(super) fn print_documents(
    documents: &[DocumentRecord],
    catalogues: &std::collections::HashMap<DocumentId, Catalogue>,
) {
    for document in documents {
        println!(
            "{}  {:<8}  {:>4} chunks  {}{}",
            document.document_id,
            document.status.as_str(),
            document.chunks,
            document.filename,
            document
                .error
                .as_deref()
                .map(|error| format!(" — {error}"))
                .unwrap_or_default()
        );
        if let Some(catalogue) = catalogues.get(&document.document_id)
            && !catalogue.summary.is_empty()
        {
            println!("    {}", catalogue.summary);
        }
    }
}

pub fn print_citations(answer: &Answer) {
    for (number, citation) in answer.citations.iter().enumerate() {
        println!(
            "  [{}] {} (characters {}–{})\n      “{}”",
            number + 1,
            citation.filename,
            citation.start,
            citation.end,
            snippet(&citation.text, 160)
        );
    }
}

/// Where an ask's time went, one line under its sources (issue 10): retrieval, the
/// model's prefill and decoding with their token counts and speed, the first checked text
/// and the total. An answer given without the model says so.
pub fn print_timings(answer: &Answer) {
    println!("  ({})", timings_line(&answer.timings));
}

fn timings_line(t: &Timings) -> String {
    let mut parts = vec![format!("retrieval {} ms", t.embed_ms + t.retrieve_ms)];
    if t.prompt_tokens == 0 {
        parts.push("answered without the model".to_owned());
    } else {
        parts.push(format!(
            "prefill_ms {} for {} prompt tokens",
            t.prefill_ms, t.prompt_tokens
        ));
        let rate = match t.decode_ms {
            0 => String::new(),
            ms => format!(", {:.0} tok/s", t.answer_tokens as f64 * 1000.0 / ms as f64),
        };
        parts.push(format!(
            "decode_ms {} for {} answer tokens{rate}",
            t.decode_ms, t.answer_tokens
        ));
    }
    if let Some(first) = t.first_token_ms {
        parts.push(format!("first text at {first} ms"));
    }
    parts.push(format!("total {} ms", t.total_ms));
    parts.join(" · ")
}

pub fn snippet(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        format!("{}…", flat.chars().take(max_chars).collect::<String>())
    }
}

pub(super) fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: cannot serialise output: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timings_line_shows_prefill_and_decode() {
        let mut timings = Timings {
            embed_ms: 20,
            retrieve_ms: 12,
            first_token_ms: Some(910),
            retrieved_ms: Some(40),
            generate_ms: 950,
            prefill_ms: 400,
            decode_ms: 500,
            total_ms: 1000,
            prompt_tokens: 300,
            answer_tokens: 40,
        };
        assert_eq!(
            timings_line(&timings),
            "retrieval 32 ms · prefill_ms 400 for 300 prompt tokens · decode_ms 500 for 40 \
             answer tokens, 80 tok/s · first text at 910 ms · total 1000 ms"
        );
        timings.prompt_tokens = 0;
        timings.first_token_ms = None;
        assert_eq!(
            timings_line(&timings),
            "retrieval 32 ms · answered without the model · total 1000 ms"
        );
    }
}
