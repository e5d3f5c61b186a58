//! Yes/no clause questions ("Does the supply agreement have a change of control clause?",
//! "What does it say about exclusivity?"), answered without the model: the clause's
//! sentence quoted, or, when the question names a contract and no sentence of it reads as
//! that clause, a plain statement that the contract does not contain one, with the
//! sections searched. "It isn't there" is then an answer, not a refusal; it makes no
//! citation (there is nothing to cite), so it is not `grounded`.

use super::ask::AnswerContext;
use super::*;
use crate::clauses::{ClauseType, evidence};

/// The longest quote, in characters; a longer sentence is cut around the clause wording.
const MAX_QUOTE_CHARS: usize = 420;
/// How many section titles an absence answer lists.
const LISTED_SECTIONS: usize = 10;

/// What the contract says about a yes/no clause type.
pub(super) enum Presence {
    /// The answer text and the index (in the context's retrieved chunks) of the chunk
    /// it quotes.
    Found(String, usize),
    /// The answer text: the named contract has no sentence that reads as the clause.
    Absent(String),
}

impl Appliance {
    /// The presence answer for a yes/no clause question, or `None` when the question is
    /// not one (then the other answer paths run). May add the chunk it quotes to the
    /// context (read from the named contract beyond the retrieved ones).
    pub(super) fn clause_presence(
        &self,
        scope: &TenantScope,
        context: &mut AnswerContext,
    ) -> Result<Option<Presence>, ApplianceError> {
        let Some(clause) = context.clause.filter(|clause| evidence::decidable(clause)) else {
            return Ok(None);
        };
        // The best-ranked retrieved sentence that reads as the clause.
        let ranked = context
            .ranked
            .iter()
            .find(|sentence| {
                context.owned[sentence.chunk] && evidence::reads_as(clause, &sentence.text)
            })
            .map(|sentence| (sentence.chunk, sentence.text.clone()));
        if let Some((chunk, sentence)) = ranked {
            let title = self.document_title(scope, &context.retrieved[chunk])?;
            return Ok(Some(Presence::Found(
                found_text(&title, clause, &sentence),
                chunk,
            )));
        }
        // Else the whole of the one contract the question names, in document order.
        let Some([document]) = context.documents.as_deref() else {
            return Ok(None);
        };
        let row_ids = self.store.document_row_ids(scope, document)?;
        let mut chunks = self.store.chunks(scope, &row_ids)?;
        if enabled(Layer::Prompt) {
            chunks.retain(|chunk| &chunk.tenant_id == scope.tenant_id());
        }
        if chunks.is_empty() || !output::owned(&self.store, scope, &[document])?[0] {
            return Ok(None);
        }
        chunks.sort_by_key(|chunk| chunk.start);
        let title = self.document_title(scope, &chunks[0])?;
        let found = answer::all_sentences(&chunks)
            .into_iter()
            .find(|(_, sentence)| evidence::reads_as(clause, sentence));
        Ok(Some(match found {
            Some((index, sentence)) => {
                let chunk = chunks.swap_remove(index);
                context.retrieved.push(chunk);
                context.owned.push(true);
                Presence::Found(
                    found_text(&title, clause, &sentence),
                    context.retrieved.len() - 1,
                )
            }
            None => Presence::Absent(absent_text(&title, clause, &chunks)),
        }))
    }

    /// The contract's title from its catalogue, else its file name.
    fn document_title(
        &self,
        scope: &TenantScope,
        chunk: &ChunkRecord,
    ) -> Result<String, ApplianceError> {
        Ok(self
            .stored_catalogue(scope, chunk.chunk_id.document_id())?
            .and_then(|catalogue| catalogue.title.map(|title| title.value))
            .unwrap_or_else(|| chunk.filename.clone()))
    }
}

/// "The SUPPLY AGREEMENT has a change of control clause: “…”"
fn found_text(title: &str, clause: &ClauseType, sentence: &str) -> String {
    format!(
        "The {} has {} clause: “{}”",
        without_article(title),
        with_article(&evidence::label(clause)),
        shortened(clause, sentence)
    )
}

/// "The SUPPLY AGREEMENT does not contain a change of control clause: …"
fn absent_text(title: &str, clause: &ClauseType, chunks: &[ChunkRecord]) -> String {
    let text = document_text(chunks);
    let titles: Vec<String> = crate::ingest::sections::sections(&text)
        .into_iter()
        .map(|section| section.title)
        .collect();
    let searched = match titles.len() {
        0 => format!("all {} of its passages were searched", chunks.len()),
        n if n <= LISTED_SECTIONS => format!("sections searched: {}", titles.join("; ")),
        n => format!(
            "sections searched: {}; and {} more",
            titles[..LISTED_SECTIONS].join("; "),
            n - LISTED_SECTIONS
        ),
    };
    format!(
        "The {} does not contain {} clause: no sentence in it reads as one ({searched}).",
        without_article(title),
        with_article(&evidence::label(clause))
    )
}

/// The document's text rebuilt from its chunks (in document order; overlaps once).
fn document_text(chunks: &[ChunkRecord]) -> String {
    let mut text = String::new();
    let mut at: usize = 0;
    for chunk in chunks {
        let skip = at.saturating_sub(chunk.start);
        text.extend(chunk.text.chars().skip(skip));
        at = at.max(chunk.end);
    }
    text
}

/// "an exclusivity", "a change of control".
fn with_article(label: &str) -> String {
    let article = if label.starts_with(['a', 'e', 'i', 'o', 'u', 'I']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {label}")
}

/// A title without its own leading "The" ("The Parties' Agreement" → "Parties' Agreement").
fn without_article(title: &str) -> &str {
    let trimmed = title.trim();
    match trimmed.get(..4) {
        Some(article) if article.eq_ignore_ascii_case("the ") => trimmed[4..].trim_start(),
        _ => trimmed,
    }
}

/// The sentence, or, when it is long, the part of it around the clause wording.
fn shortened(clause: &ClauseType, sentence: &str) -> String {
    let chars: Vec<char> = sentence.chars().collect();
    if chars.len() <= MAX_QUOTE_CHARS {
        return sentence.to_owned();
    }
    // The window of MAX_QUOTE_CHARS that still reads as the clause, earliest first, on
    // word boundaries.
    let step = MAX_QUOTE_CHARS / 4;
    let mut start = 0;
    while start < chars.len() {
        let end = (start + MAX_QUOTE_CHARS).min(chars.len());
        let window: String = chars[start..end].iter().collect();
        if evidence::reads_as(clause, &window) || end == chars.len() {
            let first = if start == 0 { 0 } else { word_start(&window) };
            let last = if end == chars.len() {
                window.len()
            } else {
                window.rfind(' ').unwrap_or(window.len())
            };
            let part = window[first..last.max(first)].trim();
            let before = if start > 0 { "… " } else { "" };
            let after = if end < chars.len() { " …" } else { "" };
            return format!("{before}{part}{after}");
        }
        start += step;
    }
    sentence.to_owned()
}

/// The byte offset just after the first space (a window's first, cut word is dropped).
fn word_start(window: &str) -> usize {
    window.find(' ').map_or(0, |at| at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clauses::clause_type;

    #[test]
    fn presence_answers_name_the_contract_and_the_clause() {
        let clause = clause_type("Change Of Control").unwrap();
        assert_eq!(
            found_text(
                "THE SUPPLY AGREEMENT",
                clause,
                "Either party may terminate upon a change of control."
            ),
            "The SUPPLY AGREEMENT has a change of control clause: “Either party may terminate upon a change of control.”"
        );
        let long = format!(
            "{} Either party may terminate upon a change of control. {}",
            "Recital words here. ".repeat(40),
            "More trailing words. ".repeat(40)
        );
        let quote = shortened(clause, &long);
        assert!(quote.contains("change of control"), "{quote}");
        assert!(quote.chars().count() <= MAX_QUOTE_CHARS + 4, "{quote}");
        assert!(quote.starts_with("… ") && quote.ends_with(" …"), "{quote}");
        assert_eq!(with_article("exclusivity"), "an exclusivity");
    }
}
