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

/// A file name without its extension.
fn file_stem(filename: &str) -> &str {
    filename.rsplit_once('.').map_or(filename, |(stem, _)| stem)
}

fn naming_words(document: &NamedDocument<'_>) -> HashSet<String> {
    let stem = file_stem(document.filename);
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
    let joined = joined_name_hits(&question_words, documents, &names);
    let scores: Vec<f32> = names
        .iter()
        .zip(&joined)
        .map(|(set, joined)| {
            let mut seen = HashSet::new();
            let whole: f32 = question_words
                .iter()
                .filter(|(_, word, _)| set.contains(word) && seen.insert(word.as_str()))
                .map(|(_, word, _)| weight(word))
                .sum();
            whole + joined
        })
        .collect();
    // A title the question spells out whole ("the Supply Agreement") names its documents
    // more surely than scattered words that other titles share ("license", "property").
    let titled = titled_in(&question_words, documents);
    let title_runs: Vec<std::ops::Range<usize>> =
        titled.iter().map(|(_, run)| run.clone()).collect();
    let titled: Vec<usize> = titled.into_iter().map(|(index, _)| index).collect();
    let mut tied: Vec<usize> = if titled.is_empty() {
        let best = scores.iter().copied().fold(0.0_f32, f32::max);
        let floor = scores.iter().copied().fold(f32::MAX, f32::min);
        if best - floor < MIN_DISTINCT_WEIGHT {
            return None;
        }
        let tied: Vec<usize> = (0..documents.len())
            .filter(|&i| scores[i] >= best - 1e-4)
            .collect();
        if tied.len() > MAX_TIED {
            return None;
        }
        tied
    } else {
        // Among documents of the same title, the other naming words (a party) choose.
        let best = titled.iter().map(|&i| scores[i]).fold(0.0_f32, f32::max);
        titled
            .into_iter()
            .filter(|&i| scores[i] >= best - 1e-4)
            .collect()
    };
    tied.sort();
    // A title spelled out goes as the run it is: its words elsewhere in the question are
    // the question's own ("transfer the license" in a question about a license agreement).
    let title_words: HashSet<&str> = title_runs
        .iter()
        .flat_map(|run| {
            question_words[run.clone()]
                .iter()
                .map(|(_, word, _)| word.as_str())
        })
        .collect();
    let naming: HashSet<&str> = tied
        .iter()
        .flat_map(|&i| names[i].iter().map(String::as_str))
        .filter(|word| !title_words.contains(word))
        .collect();
    Some(Resolution {
        query: without_naming_words(question, &question_words, &naming, &title_runs),
        documents: tied,
    })
}

/// File names often run a company's words together ("ZETABANCORPINC_1996-EX-1.1"): words
/// of the question that, run together, begin such a file-name word ("Zeta Bancorp"), five
/// letters or more and not already a naming word, name the document too, weighted by how
/// few documents' file names hold them. One score per document: its best such run.
fn joined_name_hits(
    question_words: &[(usize, String, usize)],
    documents: &[NamedDocument<'_>],
    names: &[HashSet<String>],
) -> Vec<f32> {
    let file_words: Vec<Vec<String>> = documents
        .iter()
        .map(|document| {
            words(file_stem(document.filename))
                .into_iter()
                .map(|(_, word, _)| word)
                .collect()
        })
        .collect();
    let mut scores = vec![0.0_f32; documents.len()];
    for first in 0..question_words.len() {
        let mut run = String::new();
        for (_, word, _) in question_words.iter().skip(first).take(4) {
            run.push_str(word);
            if run.chars().count() < 5 || NOT_NAMING.contains(&run.as_str()) {
                continue;
            }
            let holders: Vec<usize> = (0..documents.len())
                .filter(|&i| {
                    !names[i].contains(&run)
                        && file_words[i]
                            .iter()
                            .any(|file_word| file_word.starts_with(run.as_str()))
                })
                .collect();
            if holders.is_empty() {
                break;
            }
            let weight = (1.0 + documents.len() as f32 / holders.len() as f32).ln();
            for i in holders {
                scores[i] = scores[i].max(weight);
            }
        }
    }
    scores
}

/// The documents whose whole title appears in the question as a run of words, the
/// longest such titles only ("the Manufacturing and Supply Agreement" is not also "the
/// Supply Agreement"), each with where (word indices). A title must hold a naming word:
/// "Agreement" alone names nothing.
fn titled_in(
    question_words: &[(usize, String, usize)],
    documents: &[NamedDocument<'_>],
) -> Vec<(usize, std::ops::Range<usize>)> {
    let asked: Vec<&str> = question_words
        .iter()
        .map(|(_, word, _)| word.as_str())
        .collect();
    let mut found: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        let Some(title) = document.title else {
            continue;
        };
        let title: Vec<String> = words(title).into_iter().map(|(_, word, _)| word).collect();
        let names_something = title
            .iter()
            .any(|word| word.chars().count() >= 3 && !NOT_NAMING.contains(&word.as_str()));
        if !names_something {
            continue;
        }
        if let Some(at) = asked
            .windows(title.len())
            .position(|run| run == title.as_slice())
        {
            found.push((index, at..at + title.len()));
        }
    }
    let longest = found.iter().map(|(_, run)| run.len()).max().unwrap_or(0);
    found.retain(|(_, run)| run.len() == longest);
    // A file name that spells the same title ("…-Collaboration Agreement.txt") names its
    // document too: the title the catalogue read may be another heading of it ("Special
    // Conditions …"). Among them, the other naming words (a party) then choose.
    let runs: Vec<std::ops::Range<usize>> = found.iter().map(|(_, run)| run.clone()).collect();
    let stems: Vec<Vec<String>> = if runs.is_empty() {
        Vec::new()
    } else {
        documents
            .iter()
            .map(|document| {
                words(file_stem(document.filename))
                    .into_iter()
                    .map(|(_, word, _)| word)
                    .collect()
            })
            .collect()
    };
    // A document whose own title only holds the run inside a longer name ("Manufacturing
    // and Supply Agreement" for "the Supply Agreement") is not named by its file name
    // either: as above, the longer name is another contract's.
    let longer_title = |document: &NamedDocument<'_>, title: &[&str]| {
        document.title.is_some_and(|own| {
            let own: Vec<String> = words(own).into_iter().map(|(_, word, _)| word).collect();
            own.len() > title.len() && own.windows(title.len()).any(|window| window == title)
        })
    };
    for run in runs {
        let title = &asked[run.clone()];
        for (index, stem) in stems.iter().enumerate() {
            let spelled = stem.windows(title.len()).any(|window| window == title);
            if spelled
                && !longer_title(&documents[index], title)
                && !found.iter().any(|(known, _)| *known == index)
            {
                found.push((index, run.clone()));
            }
        }
    }
    found
}

/// The question without the runs of words that name the contract ("the Endorsement
/// Agreement", "Acme Corp."), connecting words inside a run included.
fn without_naming_words(
    question: &str,
    question_words: &[(usize, String, usize)],
    naming: &HashSet<&str>,
    title_runs: &[std::ops::Range<usize>],
) -> String {
    // A name is written with a capital ("Acme", "the Licensee"); "a licensee" in lower case
    // is the question's own word, whatever a party calls itself.
    let names_here = |i: usize| {
        let (start, word, _) = &question_words[i];
        title_runs.iter().any(|run| run.contains(&i))
            || (naming.contains(word.as_str())
                && question[*start..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit()))
    };
    let connective = |word: &str| {
        matches!(
            word,
            "the" | "of" | "and" | "with" | "agreement" | "inc" | "ltd" | "llc" | "corp" | "co"
        )
    };
    let mut keep = String::with_capacity(question.len());
    let mut cursor = 0;
    let mut i = 0;
    while i < question_words.len() {
        if !names_here(i) {
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
            && (names_here(last + 1) || connective(&question_words[last + 1].1))
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
    fn a_file_name_spelling_the_title_counts_and_a_party_chooses() {
        let documents = [
            document(
                "Collaboration Agreement",
                vec!["F. Hoffmann-La Roche Ltd", "Foundation Medicine, Inc."],
                "FOUNDATIONMEDICINE-EX-10.2-Collaboration Agreement.txt",
            ),
            document(
                "SPECIAL CONDITIONS IN CONNECTION WITH DEFRA AGREEMENT",
                vec!["Institute of Grassland and Environmental Research"],
                "CERES,INC-EX-10.20-Collaboration Agreement.txt",
            ),
            document("SUPPLY AGREEMENT", vec!["Beta LLC"], "b.txt"),
        ];
        let ask = |question: &str| resolve(question, &documents).map(|r| r.documents);
        assert_eq!(
            ask(
                "Which law governs the Collaboration Agreement with Institute of Grassland and Environmental Research?"
            ),
            Some(vec![1])
        );
        assert_eq!(
            ask("Which law governs the Collaboration Agreement with F. Hoffmann-La Roche Ltd?"),
            Some(vec![0])
        );
        assert_eq!(
            ask("Which law governs the Collaboration Agreement?"),
            Some(vec![0, 1])
        );
    }

    #[test]
    fn a_longer_title_in_a_file_name_is_another_contract_and_with_goes_with_the_name() {
        let documents = [
            document(
                "MANUFACTURING AND SUPPLY AGREEMENT",
                vec!["Apollo Endosurgery, Inc."],
                "Apollo - Manufacturing and Supply Agreement.txt",
            ),
            document(
                "SUPPLY AGREEMENT",
                vec!["Miltenyi Biotec GmbH"],
                "BELLICUM-EX-10.1-Supply Agreement.txt",
            ),
            document(
                "OUTSOURCING AGREEMENT",
                vec!["Twin Cities Power Holdings, LLC"],
                "c.txt",
            ),
        ];
        let supply = resolve("What is the name of the Supply Agreement?", &documents).unwrap();
        assert_eq!(supply.documents, [1]);
        let outsourcing = resolve(
            "What is the name of the OUTSOURCING AGREEMENT with Twin Cities Power Holdings, LLC?",
            &documents,
        )
        .unwrap();
        assert_eq!(outsourcing.documents, [2]);
        // Nothing of the name is left to mislead the search: "with" went with it.
        assert_eq!(outsourcing.query, "What is the name");
    }

    #[test]
    fn a_title_spelled_out_whole_beats_words_other_titles_share() {
        let documents = [
            document(
                "INTELLECTUAL PROPERTY AGREEMENT",
                vec!["Acme Corp."],
                "a.txt",
            ),
            document("OUTSOURCING AGREEMENT", vec!["Beta LLC"], "b.txt"),
            document(
                "JOINT CONTENT LICENSE AGREEMENT",
                vec!["Gamma Inc."],
                "c.txt",
            ),
            document("SUPPLY AGREEMENT", vec!["Delta Ltd"], "d.txt"),
            document(
                "MANUFACTURING AND SUPPLY AGREEMENT",
                vec!["Epsilon"],
                "e.txt",
            ),
            document("AGENCY AGREEMENT", vec!["Zeta Bank"], "f.txt"),
            document("AGENCY AGREEMENT", vec!["Eta Insurance"], "g.txt"),
        ];
        let owned = resolve(
            "Does intellectual property created by one party become the property of the \
             counterparty under the OUTSOURCING AGREEMENT?",
            &documents,
        )
        .unwrap();
        assert_eq!(owned.documents, [1]);
        assert!(
            owned.query.contains("intellectual property"),
            "{}",
            owned.query
        );
        let license = "Does the JOINT CONTENT LICENSE AGREEMENT limit the ability of a party \
                       to transfer the license being granted to the Gamma licensee?";
        let kept = resolve(license, &documents).unwrap();
        assert_eq!(kept.documents, [2]);
        assert!(
            kept.query
                .starts_with("Does limit the ability of a party to transfer the license")
                && kept.query.contains("licensee")
                && !kept.query.contains("Gamma"),
            "{}",
            kept.query
        );
        let licensed = resolve(
            "Does the Outsourcing Agreement grant a license?",
            &documents,
        );
        assert_eq!(licensed.map(|r| r.documents), Some(vec![1]));
        let supply = |q| resolve(q, &documents).map(|r| r.documents);
        assert_eq!(
            supply("Who supplies under the Supply Agreement?"),
            Some(vec![3])
        );
        assert_eq!(
            supply("Who supplies under the Manufacturing and Supply Agreement?"),
            Some(vec![4])
        );
        assert_eq!(
            supply("Which law governs the Agency Agreement?"),
            Some(vec![5, 6])
        );
        assert_eq!(
            supply("Which law governs the Agency Agreement with Eta Insurance?"),
            Some(vec![6])
        );
        let mut joined = documents;
        joined[5].filename = "ZETABANCORPINC_1996-EX-1.1-AGENCY AGREEMENT.txt";
        joined[5].parties = Vec::new();
        assert_eq!(
            resolve(
                "Which law governs the Agency Agreement with Zeta Bancorp?",
                &joined
            )
            .map(|r| r.documents),
            Some(vec![5])
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
