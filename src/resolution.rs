//! Which contract a question is about, and how well a passage answers a clause question.
//!
//! - **Contract resolution**: a question is scored against each document's names — its
//!   catalogue title, its parties' names and defined terms, its file name — with words
//!   weighted by how few documents share them (IDF), so "agreement" says nothing and
//!   "endorsement" or a company name says a lot. The naming words are then taken out of
//!   the retrieval query: they match every chunk of their own contract (the preamble most
//!   of all) and say nothing about which clause answers.
//! - **Clause re-ranking**: a passage scores for the contract wording of the question's
//!   clause type it contains, a section heading with the type's cues, and a typed value
//!   the answer needs (a jurisdiction after "laws of", a notice period).
//!
//! Pure functions: no I/O, nothing about tenants. General rules only: no contract names.

use std::collections::{HashMap, HashSet};

use crate::clauses::{AnswerShape, ClauseType};
use crate::values;

/// One document as resolution sees it.
pub struct NamedDocument<'a> {
    pub title: Option<&'a str>,
    /// Party names and their defined terms.
    pub parties: Vec<&'a str>,
    pub filename: &'a str,
}

/// The documents a question names (indices into the slice given), best first, and the
/// question without the words that name them.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    pub documents: Vec<usize>,
    pub query: String,
}

/// Words that never name a contract (question words, clause words, connectives).
const NOT_NAMING: &[&str] = &[
    "the",
    "a",
    "an",
    "of",
    "and",
    "or",
    "to",
    "in",
    "on",
    "for",
    "by",
    "with",
    "this",
    "that",
    "what",
    "which",
    "who",
    "whom",
    "when",
    "where",
    "how",
    "is",
    "are",
    "does",
    "do",
    "did",
    "has",
    "have",
    "any",
    "there",
    "it",
    "its",
    "be",
    "under",
    "between",
    "party",
    "parties",
    "contract",
    "law",
    "laws",
    "date",
    "clause",
    "term",
    "state",
    "country",
    "s",
    "inc",
    "ltd",
    "llc",
    "corp",
    "co",
    "com",
    "txt",
    "pdf",
    "ex",
    "exhibit",
    "agreement",
];

/// At least this much IDF weight of naming words must set the best document apart.
const MIN_DISTINCT_WEIGHT: f32 = 1.0;
/// More tied documents than this is no resolution at all.
const MAX_TIED: usize = 3;

/// Lower-case alphanumeric words with their byte offsets (the end is the original
/// word's: lower-casing may change a word's length).
fn words(text: &str) -> Vec<(usize, String, usize)> {
    let mut found = Vec::new();
    let mut start = None;
    for (at, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(at),
            (false, Some(from)) => {
                found.push((from, text[from..at].to_lowercase(), at));
                start = None;
            }
            _ => {}
        }
    }
    found
}

fn naming_words(document: &NamedDocument<'_>) -> HashSet<String> {
    let stem = document
        .filename
        .rsplit_once('.')
        .map_or(document.filename, |(stem, _)| stem);
    let mut set = HashSet::new();
    for text in document
        .title
        .into_iter()
        .chain(document.parties.iter().copied())
        .chain(std::iter::once(stem))
    {
        for (_, word, _) in words(text) {
            if word.chars().count() >= 3
                && !word.chars().all(|c| c.is_ascii_digit())
                && !NOT_NAMING.contains(&word.as_str())
            {
                set.insert(word);
            }
        }
    }
    set
}

/// The documents `question` names, or `None` when it names none clearly.
pub fn resolve(question: &str, documents: &[NamedDocument<'_>]) -> Option<Resolution> {
    if documents.len() < 2 {
        return None;
    }
    let names: Vec<HashSet<String>> = documents.iter().map(naming_words).collect();
    let mut frequency: HashMap<&str, usize> = HashMap::new();
    for set in &names {
        for word in set {
            *frequency.entry(word.as_str()).or_default() += 1;
        }
    }
    let total = documents.len() as f32;
    let weight = |word: &str| {
        frequency
            .get(word)
            .map_or(0.0, |&df| (1.0 + total / df as f32).ln())
    };
    let question_words = words(question);
    let scores: Vec<f32> = names
        .iter()
        .map(|set| {
            let mut seen = HashSet::new();
            question_words
                .iter()
                .filter(|(_, word, _)| set.contains(word) && seen.insert(word.as_str()))
                .map(|(_, word, _)| weight(word))
                .sum()
        })
        .collect();
    let best = scores.iter().copied().fold(0.0_f32, f32::max);
    let floor = scores.iter().copied().fold(f32::MAX, f32::min);
    if best - floor < MIN_DISTINCT_WEIGHT {
        return None;
    }
    let mut tied: Vec<usize> = (0..documents.len())
        .filter(|&i| scores[i] >= best - 1e-4)
        .collect();
    if tied.len() > MAX_TIED {
        return None;
    }
    tied.sort();
    let naming: HashSet<&str> = tied
        .iter()
        .flat_map(|&i| names[i].iter().map(String::as_str))
        .collect();
    Some(Resolution {
        query: without_naming_words(question, &question_words, &naming),
        documents: tied,
    })
}

/// The question without the runs of words that name the contract ("the Endorsement
/// Agreement", "Acme Corp."), connecting words inside a run included.
fn without_naming_words(
    question: &str,
    question_words: &[(usize, String, usize)],
    naming: &HashSet<&str>,
) -> String {
    let connective = |word: &str| {
        matches!(
            word,
            "the" | "of" | "and" | "agreement" | "inc" | "ltd" | "llc" | "corp" | "co"
        )
    };
    let mut keep = String::with_capacity(question.len());
    let mut cursor = 0;
    let mut i = 0;
    while i < question_words.len() {
        let word = &question_words[i].1;
        if !naming.contains(word.as_str()) {
            i += 1;
            continue;
        }
        // Extend the run backwards over connectives ("the") and forwards over naming
        // words and connectives.
        let mut first = i;
        while first > 0 && connective(&question_words[first - 1].1) {
            first -= 1;
        }
        let mut last = i;
        while last + 1 < question_words.len()
            && (naming.contains(question_words[last + 1].1.as_str())
                || connective(&question_words[last + 1].1))
        {
            last += 1;
        }
        let run_start = question_words[first].0.max(cursor);
        let run_end = question_words[last].2;
        keep.push_str(&question[cursor..run_start]);
        cursor = run_end.min(question.len());
        i = last + 1;
    }
    keep.push_str(&question[cursor..]);
    let cleaned: Vec<&str> = keep
        .split_whitespace()
        .filter(|piece| piece.chars().any(char::is_alphanumeric))
        .collect();
    if cleaned.is_empty() {
        question.to_owned()
    } else {
        cleaned.join(" ")
    }
}

/// The documents most like what `question` names (indices, best first, at most `n`),
/// for telling a user who named a contract the tenant does not have which ones it does
/// have: naming words shared with the question, a word that starts alike ("Lifway",
/// "Lifeway") counting half. Documents that share nothing follow in their given order.
pub fn closest(question: &str, documents: &[NamedDocument<'_>], n: usize) -> Vec<usize> {
    let asked: Vec<String> = words(question)
        .into_iter()
        .map(|(_, word, _)| word)
        .filter(|word| word.chars().count() >= 3 && !NOT_NAMING.contains(&word.as_str()))
        .collect();
    let prefix = |word: &str| word.chars().take(4).collect::<String>();
    let mut scored: Vec<(f32, usize)> = documents
        .iter()
        .enumerate()
        .map(|(index, document)| {
            let naming = naming_words(document);
            let score: f32 = asked
                .iter()
                .map(|word| {
                    if naming.contains(word) {
                        1.0
                    } else if naming.iter().any(|name| prefix(name) == prefix(word)) {
                        0.5
                    } else {
                        0.0
                    }
                })
                .sum();
            (score, index)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(n).map(|(_, index)| index).collect()
}

/// How well `passage` reads as the clause of `clause`: the number of the type's contract
/// wordings it contains (at most three), one more when a heading-like line names a cue,
/// one more when the typed value the question needs is in it, and one more when it reads
/// as a clause of a yes/no type.
pub fn clause_score(clause: &ClauseType, passage: &str) -> f32 {
    let lower = passage.to_lowercase().replace(['’', '‘'], "'");
    let wording = clause
        .wording
        .iter()
        .filter(|phrase| lower.contains(*phrase))
        .count()
        .min(3) as f32;
    let heading = lower
        .lines()
        .take(2)
        .any(|line| line.len() < 120 && clause.cues.iter().any(|cue| line.contains(cue)));
    let typed = match clause.answer {
        AnswerShape::Jurisdiction => values::governing_jurisdiction(passage).is_some(),
        AnswerShape::NoticePeriod => values::notice_period(passage).is_some(),
        AnswerShape::Duration => !values::find_durations(passage).is_empty(),
        AnswerShape::Date => !values::find_dates(passage).is_empty(),
        AnswerShape::Name | AnswerShape::Parties | AnswerShape::YesNo => false,
    };
    // A yes/no type's sentence pattern (see `clauses::evidence`) counts like a heading.
    let reads_as = crate::clauses::evidence::reads_as(clause, passage);
    wording
        + f32::from(u8::from(heading))
        + f32::from(u8::from(typed))
        + f32::from(u8::from(reads_as))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document<'a>(title: &'a str, parties: Vec<&'a str>, filename: &'a str) -> NamedDocument<'a> {
        NamedDocument {
            title: Some(title),
            parties,
            filename,
        }
    }

    #[test]
    fn a_question_naming_a_title_resolves_to_it_and_loses_the_name() {
        let documents = [
            document(
                "ENDORSEMENT AGREEMENT",
                vec!["Acme Corp.", "Jane Roe"],
                "a.txt",
            ),
            document("SUPPLY AGREEMENT", vec!["Beta LLC", "Gamma Inc."], "b.txt"),
            document("HOSTING AGREEMENT", vec!["Delta Ltd"], "c.txt"),
        ];
        let resolution =
            resolve("Which law governs the Endorsement Agreement?", &documents).unwrap();
        assert_eq!(resolution.documents, [0]);
        assert_eq!(resolution.query, "Which law governs");
        let by_party = resolve("Who are the parties to the contract with Beta?", &documents);
        assert_eq!(by_party.map(|r| r.documents), Some(vec![1]));
        assert_eq!(
            resolve("Which law governs the agreement?", &documents),
            None
        );
    }

    #[test]
    fn the_closest_documents_share_or_nearly_share_the_question_s_words() {
        let documents = [
            document("SUPPLY AGREEMENT", vec!["Beta LLC"], "b.txt"),
            document("ENDORSEMENT AGREEMENT", vec!["Lifeway Foods"], "a.txt"),
            document("HOSTING AGREEMENT", vec!["Delta Ltd"], "c.txt"),
        ];
        assert_eq!(
            closest(
                "Which law governs the Lifway endorsement deal?",
                &documents,
                2
            ),
            [1, 0]
        );
        assert_eq!(
            closest("Which law governs the Acme lease?", &documents, 5),
            [0, 1, 2]
        );
    }

    #[test]
    fn clause_wording_scores_the_clause_above_the_preamble() {
        let governing = crate::clauses::clause_type("Governing Law").unwrap();
        let clause = "15. Governing Law\nThis Agreement shall be governed by the laws of the State of New York.";
        let preamble = "This Agreement is made between Acme Corp. and Beta LLC.";
        assert!(clause_score(governing, clause) >= 2.0);
        assert_eq!(clause_score(governing, preamble), 0.0);
    }
}
