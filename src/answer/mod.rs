//! Grounded answers: deciding whether the tenant's retrieved chunks can answer a question,
//! building the prompt, and choosing citations.
//!
//! The prompt names the tenant (taken from the [`TenantScope`]'s record, never from the
//! question or the documents), holds only this tenant's retrieved chunks, and quotes them
//! as data. Pure functions: no model, storage or I/O here, so every rule is unit-tested.
//!
//! - `text`: word and sentence splitting shared by the rest.
//! - `prompt`: the chat messages and the excerpts they quote.
//! - `quotes`: candidate sentences, ranked, for a verbatim quoted answer.
//! - `grounding`: the sentence-support check, whole or streamed ([`SentenceGate`]).
//! - `citations`: which excerpts an answer cites.
//!
//! [`TenantScope`]: crate::auth::TenantScope

mod citations;
mod grounding;
mod prompt;
mod quotes;
mod text;

pub use citations::{choose_citations, cite_support, renumber_markers};
pub use grounding::{MIN_SHARED_RUN, MIN_SUPPORT, SentenceGate, adds_to, supported_sentences};
pub use prompt::{QUOTE_CANDIDATE_CHUNKS, build_prompt, excerpts_from_sentences};
pub use quotes::{
    RankedSentence, all_sentences, candidate_sentences, quote_score, quoted_answer, rank_sentences,
    strongest,
};
pub use text::{sentence_end, sentences_at};

use text::{COMMON_WORDS, without_possessive};

/// Below this cosine similarity the best chunk is unrelated to the question (all-MiniLM:
/// unrelated pairs sit around 0–0.2, a clause and a question about it around 0.4–0.7).
pub const MIN_SIMILARITY: f32 = 0.3;

/// What the user is told when their documents cannot answer.
pub const NOT_IN_DOCUMENTS: &str = "Your documents do not say.";

/// Words of the question that name something specific — proper names, codes, numbers.
/// If the tenant's documents contain none of them at all, the question is about something
/// else (often another company's contract) and must not be answered from look-alikes.
pub fn specific_words(question: &str) -> Vec<&str> {
    question
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’' || c == '-'))
        .map(|word| {
            without_possessive(word.trim_matches(|c: char| c == '\'' || c == '’' || c == '-'))
        })
        .filter(|word| word.chars().count() >= 3)
        .filter(|word| {
            let has_upper = word.chars().any(char::is_uppercase);
            let has_digit = word.chars().any(|c| c.is_ascii_digit());
            (has_upper || has_digit) && !COMMON_WORDS.contains(&word.to_lowercase().as_str())
        })
        .collect()
}

/// The question with its specific words (names, numbers) removed.
pub fn without_specific_words(question: &str) -> String {
    let specific = specific_words(question);
    question
        .split_whitespace()
        .filter(|word| {
            let bare = without_possessive(word.trim_matches(|c: char| !c.is_alphanumeric()));
            !specific.contains(&bare)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a question is not answered from the documents.
#[derive(Clone, Debug, PartialEq)]
pub enum Ungrounded {
    NoDocuments,
    NothingRelevant,
    AbsentNames(Vec<String>),
    ModelDeclined,
    /// The model's answer could not be traced back to the excerpts.
    Unsupported,
}

impl Ungrounded {
    pub fn message(&self) -> String {
        match self {
            Ungrounded::NoDocuments => {
                format!("{NOT_IN_DOCUMENTS} No documents have been indexed yet.")
            }
            Ungrounded::Unsupported => format!(
                "{NOT_IN_DOCUMENTS} An answer was generated but could not be traced back to them, so it was withheld."
            ),
            Ungrounded::NothingRelevant | Ungrounded::ModelDeclined => {
                format!("{NOT_IN_DOCUMENTS} Nothing in them answers this question.")
            }
            Ungrounded::AbsentNames(names) => format!(
                "{NOT_IN_DOCUMENTS} None of them mentions {}.",
                names
                    .iter()
                    .map(|name| format!("“{name}”"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        }
    }
}

/// Decides, before any model runs, whether retrieval found something that can answer.
pub fn check_retrieval(
    best_similarity: Option<f32>,
    absent_specific_words: &[String],
    has_chunks: bool,
) -> Result<(), Ungrounded> {
    if !has_chunks {
        return Err(Ungrounded::NoDocuments);
    }
    if !absent_specific_words.is_empty() {
        return Err(Ungrounded::AbsentNames(absent_specific_words.to_vec()));
    }
    match best_similarity {
        Some(similarity) if similarity >= MIN_SIMILARITY => Ok(()),
        _ => Err(Ungrounded::NothingRelevant),
    }
}

/// True when the model itself says the excerpts do not answer.
pub fn model_declined(answer: &str) -> bool {
    let lower = answer.to_lowercase();
    lower.trim().is_empty()
        || lower.contains("documents do not say")
        || lower.contains("not contain the answer")
        || lower.contains("not contain any information")
        || lower.contains("does not say")
}

/// Removes the `[n]` markers' trailing junk and whitespace the model may leave.
pub fn clean_answer(answer: &str) -> String {
    answer
        .trim()
        .trim_end_matches("<|im_end|>")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ChunkId, DocumentId};
    use crate::store::ChunkRecord;

    /// An excerpt of `text` from "a.txt" (shared by the submodules' tests).
    pub(super) fn excerpt(text: &str) -> ChunkRecord {
        ChunkRecord {
            tenant_id: crate::ids::TenantId::generate(),
            row_id: 1,
            chunk_id: ChunkId::new(DocumentId::generate(), 0),
            filename: "a.txt".into(),
            start: 0,
            end: text.chars().count(),
            text: text.into(),
        }
    }

    #[test]
    fn specific_words_are_names_and_numbers_not_question_words() {
        assert_eq!(
            specific_words("What does Pepsi's supply agreement with Kingdom Connect say?"),
            vec!["Pepsi", "Kingdom", "Connect"]
        );
        assert_eq!(
            specific_words("When does the Agreement terminate?"),
            Vec::<&str>::new()
        );
        assert_eq!(specific_words("Is clause 2027 valid"), vec!["2027"]);
        assert_eq!(
            without_specific_words("How long is the hosting agreement with Kingdom Connect?"),
            "How long is the hosting agreement with"
        );
    }

    #[test]
    fn retrieval_check_refuses_unrelated_or_foreign_questions() {
        assert_eq!(check_retrieval(Some(0.6), &[], true), Ok(()));
        assert_eq!(
            check_retrieval(Some(0.1), &[], true),
            Err(Ungrounded::NothingRelevant)
        );
        assert_eq!(
            check_retrieval(None, &[], false),
            Err(Ungrounded::NoDocuments)
        );
        let absent = vec!["Pepsi".to_owned()];
        assert!(matches!(
            check_retrieval(Some(0.9), &absent, true),
            Err(Ungrounded::AbsentNames(_))
        ));
        assert!(
            Ungrounded::AbsentNames(absent)
                .message()
                .starts_with(NOT_IN_DOCUMENTS)
        );
    }
}
