//! How the command line prints: progress bars, listings, citations, JSON.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::appliance::{Answer, SearchResult};
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
