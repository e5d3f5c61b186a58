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
/// Passages a question about all of a tenant's contracts looks through.
const ACROSS_CANDIDATES: usize = 50;
/// Contracts such an answer lists, and the length of each one's quote.
const LISTED_DOCUMENTS: usize = 5;
const LISTED_QUOTE_CHARS: usize = 200;

/// Words a sentence needs to be quoted as a clause: a heading ("Audit Rights.") names
/// the clause but says nothing of it.
const MIN_EVIDENCE_WORDS: usize = 6;

/// A sentence (not a heading) that reads as the clause.
fn is_evidence(clause: &ClauseType, sentence: &str) -> bool {
    sentence.split_whitespace().count() >= MIN_EVIDENCE_WORDS
        && evidence::reads_as(clause, sentence)
}

/// Of the sentences that read as the clause (in ranking order), the strongest: any that
/// states a term before any definition ("\"Change of Control\" means …" names the clause's
/// subject; the clause is the sentence that uses it), then the one carrying most of the
/// clause's wording (`resolution::clause_score`), then the first in the order
/// retrieval ranked their passages (it has already weighed the clause's wording and
/// section titles), then the best-ranked. Measured on 30 dev contracts (120 asks about
/// present clauses): it cites the experts' clause for 73, the best-ranked one for 67; putting
/// definitions last took 91 to 92 (session 8).
fn strongest_evidence(
    clause: &ClauseType,
    ranked: Vec<answer::RankedSentence>,
) -> Option<answer::RankedSentence> {
    answer::strongest(ranked, |sentence| {
        let defines = f32::from(u8::from(evidence::defines_a_term(&sentence.text)));
        // Wording scores at most 6, so a definition ranks below every other sentence.
        crate::resolution::clause_score(clause, &sentence.text) - 10.0 * defines
    })
}

/// "Which contracts have…", "Do any of my agreements…", "List the contracts…".
fn asks_which_documents(question: &str) -> bool {
    let lower = question.to_lowercase();
    let plural = ["contracts", "agreements", "documents"]
        .iter()
        .any(|word| lower.contains(word));
    plural
        && ["which", "what", "any", "list", "how many", "all"]
            .iter()
            .any(|word| lower.contains(word))
}

/// What the contract says about a yes/no clause type.
pub(super) enum Presence {
    /// The answer text and the indexes (in the context's retrieved chunks) of the chunks
    /// it quotes.
    Found(String, Vec<usize>),
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
        question: &str,
        context: &mut AnswerContext,
    ) -> Result<Option<Presence>, ApplianceError> {
        let Some(clause) = context.clause.filter(|clause| evidence::decidable(clause)) else {
            return Ok(None);
        };
        if context.documents.is_none() && asks_which_documents(question) {
            return self.clause_across_documents(scope, clause, question, context);
        }
        // The retrieved sentence that reads most strongly as the clause (only the
        // sentences that read as the clause are ranked, that is embedded).
        let owned = context.owned.clone();
        let ranked = self.ranked_where(context, |chunk, sentence| {
            owned[chunk] && is_evidence(clause, sentence)
        })?;
        if let Some(strongest) = strongest_evidence(clause, ranked) {
            let title = self.document_title(scope, &context.retrieved[strongest.chunk])?;
            return Ok(Some(Presence::Found(
                found_text(&title, clause, &strongest.text),
                vec![strongest.chunk],
            )));
        }
        // Else the whole of the one contract the question names, in document order.
        let Some(mut chunks) = self.named_contract_chunks(scope, context)? else {
            return Ok(None);
        };
        let title = self.document_title(scope, &chunks[0])?;
        let found = answer::all_sentences(&chunks)
            .into_iter()
            .find(|(_, sentence)| is_evidence(clause, sentence));
        Ok(Some(match found {
            Some((index, sentence)) => {
                let chunk = chunks.swap_remove(index);
                context.retrieved.push(chunk);
                context.owned.push(true);
                Presence::Found(
                    found_text(&title, clause, &sentence),
                    vec![context.retrieved.len() - 1],
                )
            }
            None => Presence::Absent(absent_text(&title, clause, &chunks)),
        }))
    }

    /// For a clause type whose answer is a value (a renewal term, its notice period), when
    /// the question names one contract and no sentence of it mentions what the clause is
    /// about: the plain statement that the contract has none. `None` otherwise (then the
    /// typed and quoted answers run).
    pub(super) fn value_clause_absent(
        &self,
        scope: &TenantScope,
        context: &AnswerContext,
    ) -> Result<Option<String>, ApplianceError> {
        let Some(clause) = context
            .clause
            .filter(|clause| evidence::absence_decidable(clause))
        else {
            return Ok(None);
        };
        let mentions = |chunks: &[ChunkRecord]| {
            answer::all_sentences(chunks)
                .iter()
                .any(|(_, sentence)| evidence::mentioned(clause, sentence))
        };
        // The retrieved passages (searched within the named contract) usually settle it
        // without reading the rest of the contract.
        if mentions(&context.retrieved) {
            return Ok(None);
        }
        let Some(chunks) = self.named_contract_chunks(scope, context)? else {
            return Ok(None);
        };
        if mentions(&chunks) {
            return Ok(None);
        }
        let title = self.document_title(scope, &chunks[0])?;
        Ok(Some(absent_text(&title, clause, &chunks)))
    }

    /// All the chunks of the one contract the question names, in document order, when the
    /// tenant may be shown every one of them.
    fn named_contract_chunks(
        &self,
        scope: &TenantScope,
        context: &AnswerContext,
    ) -> Result<Option<Vec<ChunkRecord>>, ApplianceError> {
        let Some([document]) = context.documents.as_deref() else {
            return Ok(None);
        };
        let row_ids = self.store.document_row_ids(scope, document)?;
        let (mut chunks, owned) = self.usable_chunks(scope, self.store.chunks(scope, &row_ids)?)?;
        if chunks.is_empty() || owned.contains(&false) {
            return Ok(None);
        }
        chunks.sort_by_key(|chunk| chunk.start);
        Ok(Some(chunks))
    }

    /// "Which contracts have a change of control clause?": the contracts among the
    /// passages that best match the clause's wording (keyword search over the whole
    /// tenant) with a sentence that reads as the clause, each quoted and cited; when there
    /// is none, that none appears to (saying how many passages were searched).
    fn clause_across_documents(
        &self,
        scope: &TenantScope,
        clause: &ClauseType,
        question: &str,
        context: &mut AnswerContext,
    ) -> Result<Option<Presence>, ApplianceError> {
        let query = crate::clauses::expand_query(question);
        let index = self.tenant_index(scope)?;
        let hits = read(&index).search(None, &query, ACROSS_CANDIDATES, SearchMode::Keyword)?;
        let row_ids: Vec<u64> = hits.iter().map(|hit| hit.row_id).collect();
        let (chunks, owned) = self.usable_chunks(scope, self.store.chunks(scope, &row_ids)?)?;
        let mut found: Vec<(String, String, usize)> = Vec::new();
        let mut seen = Vec::new();
        for (chunk, owned) in chunks.into_iter().zip(owned) {
            let document = chunk.chunk_id.document_id().clone();
            if !owned || seen.contains(&document) || found.len() == LISTED_DOCUMENTS {
                continue;
            }
            let sentence = answer::all_sentences(std::slice::from_ref(&chunk))
                .into_iter()
                .map(|(_, sentence)| sentence)
                .find(|sentence| is_evidence(clause, sentence));
            if let Some(sentence) = sentence {
                seen.push(document);
                let title = self.document_title(scope, &chunk)?;
                context.retrieved.push(chunk);
                context.owned.push(true);
                found.push((title, sentence, context.retrieved.len() - 1));
            }
        }
        let label = evidence::label(clause);
        if found.is_empty() {
            return Ok(Some(Presence::Absent(format!(
                "None of your contracts appears to contain {} clause: no sentence of the {} \
                 passages that best match its usual wording reads as one.",
                with_article(&label),
                row_ids.len()
            ))));
        }
        let listed: Vec<String> = found
            .iter()
            .map(|(title, sentence, _)| {
                format!(
                    "the {}: “{}”",
                    without_article(title),
                    shortened_to(clause, sentence, LISTED_QUOTE_CHARS)
                )
            })
            .collect();
        let text = match listed.as_slice() {
            [one] => format!(
                "One of your contracts has {} clause, {one}",
                with_article(&label)
            ),
            _ => format!(
                "{} of your contracts have {} clause: {}",
                listed.len(),
                with_article(&label),
                listed.join("; ")
            ),
        };
        Ok(Some(Presence::Found(
            text,
            found.into_iter().map(|(_, _, chunk)| chunk).collect(),
        )))
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
    shortened_to(clause, sentence, MAX_QUOTE_CHARS)
}

/// The sentence, or, when it is longer than `max` characters, the window of `max`
/// characters that still reads as the clause (earliest first, on word boundaries).
fn shortened_to(clause: &ClauseType, sentence: &str, max: usize) -> String {
    let chars: Vec<char> = sentence.chars().collect();
    if chars.len() <= max {
        return sentence.to_owned();
    }
    let step = max / 4;
    let mut start = 0;
    while start < chars.len() {
        let end = (start + max).min(chars.len());
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
