//! The clause vocabulary: the 41 contract clause types of CUAD, each with the words a
//! user asks about it with and the wording it usually takes in a contract. A question is
//! matched to the clause type(s) it is about, and a keyword (BM25) query is expanded with
//! that type's contract wording, so that "Which law governs the supply agreement?" also
//! searches for "governed by", "construed in accordance with the laws of"….
//!
//! Pure data and functions: no I/O, no index, nothing about tenants. General legal
//! phrasing only: no contract names, no answers.

/// One clause type.
#[derive(Debug)]
pub struct ClauseType {
    /// The CUAD category name ("Governing Law").
    pub name: &'static str,
    /// Phrases in a question that mean this clause type (lower case).
    pub cues: &'static [&'static str],
    /// How contracts usually word the clause (lower case): added to the keyword query.
    pub wording: &'static [&'static str],
    /// What a question about it expects back.
    pub answer: AnswerShape,
}

/// What a question about a clause type expects back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerShape {
    Name,
    Parties,
    Date,
    Jurisdiction,
    Duration,
    NoticePeriod,
    /// Whether the contract has the clause, and what it says.
    YesNo,
}

pub mod evidence;
mod vocabulary;

pub use vocabulary::CLAUSE_TYPES;

/// The clause type named `name` (CUAD's category name, any case).
pub fn clause_type(name: &str) -> Option<&'static ClauseType> {
    CLAUSE_TYPES
        .iter()
        .find(|clause| clause.name.eq_ignore_ascii_case(name))
}

/// The words (lower case) of a clause type's name and of the cues users ask it with:
/// "uncapped", "liability" for "Uncapped Liability".
pub fn naming_words(clause: &ClauseType) -> std::collections::HashSet<String> {
    std::iter::once(clause.name)
        .chain(clause.cues.iter().copied())
        .flat_map(|text| text.split(|c: char| !c.is_alphanumeric()))
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The clause types a question is about, best first: each type scores the length of the
/// longest of its cues found in the question, so the more specific cue wins ("notice
/// period to terminate renewal" beats "renewal"; "non-transferable" beats "license").
pub fn detect(question: &str) -> Vec<&'static ClauseType> {
    let question = normalise(question);
    // "What is the name of the <contract>?" once the contract's own name has left the
    // question (the search is within it) ends in "name of": it asks for that name.
    let mut bare = question.trim_end_matches(|c: char| !c.is_alphanumeric());
    while let Some(rest) = ["the", "this", "of"].iter().find_map(|word| {
        bare.strip_suffix(word)
            .filter(|rest| rest.ends_with(' '))
            .map(str::trim_end)
    }) {
        bare = rest;
    }
    if bare.ends_with(" name") || bare.ends_with(" title") {
        return CLAUSE_TYPES
            .iter()
            .filter(|clause| clause.answer == AnswerShape::Name)
            .collect();
    }
    let mut scored: Vec<(usize, usize, &'static ClauseType)> = CLAUSE_TYPES
        .iter()
        .enumerate()
        .filter_map(|(order, clause)| {
            let best = clause
                .cues
                .iter()
                .filter(|cue| contains_phrase(&question, cue))
                .map(|cue| cue.len())
                .max()?;
            Some((best, order, clause))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, _, clause)| clause).collect()
}

/// The keyword query for a question: the question itself, then the contract wording of
/// the clause type it is most about (and of a second type only when its cue is as
/// specific). Phrases are quoted words joined by spaces; the caller's BM25 parser treats
/// them as more terms, so the expansion raises clauses worded that way without requiring
/// all of it.
pub fn expand_query(question: &str) -> String {
    let types = detect(question);
    let mut query = question.trim().to_owned();
    if let Some(best) = types.first() {
        for phrase in best.wording {
            query.push(' ');
            query.push_str(phrase);
        }
    }
    query
}

fn normalise(text: &str) -> String {
    text.to_lowercase()
        .replace(['’', '‘'], "'")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cue` occurs in `text` starting at a word boundary ("assign" in "assigned", not in
/// "reassign"; cues ending in a stem like "exclusiv" match any ending).
fn contains_phrase(text: &str, cue: &str) -> bool {
    text.match_indices(cue).any(|(at, _)| {
        at == 0
            || !text[..at]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(question: &str) -> Vec<&'static str> {
        detect(question).into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn the_vocabulary_is_cuads_41_categories() {
        assert_eq!(CLAUSE_TYPES.len(), 41);
        let csv = include_str!("../../data/eval/cuad-dev/category_descriptions.csv");
        for clause in CLAUSE_TYPES {
            assert!(
                csv.to_lowercase()
                    .contains(&format!("category: {}", clause.name.to_lowercase())),
                "{} is not a CUAD category",
                clause.name
            );
            assert!(!clause.cues.is_empty() && !clause.wording.is_empty());
        }
    }

    #[test]
    fn questions_find_their_clause_type() {
        assert_eq!(
            names("Which law governs the supply agreement?")[0],
            "Governing Law"
        );
        assert_eq!(names("Who are the parties?")[0], "Parties");
        assert_eq!(
            names("What is the notice period required to terminate renewal?")[0],
            "Notice Period To Terminate Renewal"
        );
        assert_eq!(
            names("Can Acme assign the agreement without consent?")[0],
            "Anti-Assignment"
        );
        assert_eq!(
            names("Is the licence non-transferable?")[0],
            "Non-Transferable License"
        );
        assert_eq!(
            names("What happens on a change of control of the distributor?")[0],
            "Change Of Control"
        );
        assert!(names("Summarise the recitals").is_empty());
        assert_eq!(names("What is the name of?")[0], "Document Name");
        assert_eq!(names("What is the name of the ?")[0], "Document Name");
        assert_eq!(names("What is the name")[0], "Document Name");
        assert!(!names("What is the name of the distributor?").contains(&"Document Name"));
    }

    #[test]
    fn the_keyword_query_adds_the_clause_wording() {
        let query = expand_query("Which law governs the hosting agreement?");
        assert!(query.starts_with("Which law governs the hosting agreement?"));
        assert!(query.contains("construed in accordance with the laws of"));
        assert_eq!(
            expand_query("Summarise the recitals"),
            "Summarise the recitals"
        );
    }
}
