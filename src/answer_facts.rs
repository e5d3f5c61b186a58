//! Typed answers: the value a question asks for (a jurisdiction, a date, a duration, a
//! notice period, an amount, party names, yes/no), extracted from a passage with rules,
//! and the checker that every jurisdiction, date, number and name in a candidate answer
//! sentence appears in a cited passage.
//!
//! Pure functions over text: no I/O, no model, nothing about tenants. Spans are character
//! (not byte) offsets into the passage, like chunk spans.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use crate::values::{
    DateValue, MONTHS, char_span, find_amounts, find_dates, find_durations, find_jurisdictions,
    governing_jurisdiction, notice_period, word_number,
};

/// What kind of value a question asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactKind {
    Jurisdiction,
    Date,
    Duration,
    NoticePeriod,
    Amount,
    Parties,
    YesNo,
}

/// A value found in a passage, with where it was found (character offsets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    pub kind: FactKind,
    /// The value in a normal form: "New York", "2019-09-30", "5 years", "30 days",
    /// "$1,000,000", "Acme Corp.; Beta LLC", "yes".
    pub value: String,
    /// Where the value (or the clause, for yes/no) was found in the passage.
    pub span: Range<usize>,
}

/// Something in an answer that no cited passage contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsupported {
    Jurisdiction(String),
    Date(String),
    Number(String),
    Name(String),
}

/// Whether the question asks yes or no by its form: it opens with an auxiliary verb ("Can
/// a party terminate …?", "Is there …?"), possibly after naming where ("In the supply
/// agreement, does …?"). Its other words ("notice", "parties", "expire") then say what
/// the clause is about, not which value is asked for.
pub fn asks_yes_or_no(question: &str) -> bool {
    const AUXILIARIES: &[&str] = &[
        "is", "are", "does", "do", "did", "can", "could", "may", "must", "shall", "should", "will",
        "would", "has", "have",
    ];
    let lower = question.trim().to_lowercase();
    let opens = |text: &str| {
        text.split(|c: char| !c.is_alphanumeric())
            .find(|word| !word.is_empty())
            .is_some_and(|word| AUXILIARIES.contains(&word))
    };
    let after_where = ["in ", "under "]
        .iter()
        .any(|lead| lower.starts_with(lead))
        .then(|| lower.split_once(',').map(|(_, rest)| rest))
        .flatten();
    opens(&lower) || after_where.is_some_and(opens)
}

/// The kind of value a question asks for, from its wording; `None` for open questions
/// ("Summarise the termination rights").
pub fn kind_for_question(question: &str) -> Option<FactKind> {
    let q = question.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| q.contains(w));
    if has(&[
        "which law",
        "what law",
        "governing law",
        "governs",
        "governed by",
        "jurisdiction",
        "choice of law",
        "state/country",
    ]) {
        Some(FactKind::Jurisdiction)
    } else if has(&[
        "notice period",
        "how much notice",
        "days' notice",
        "days notice",
    ]) {
        Some(FactKind::NoticePeriod)
    } else if has(&[
        "who are the parties",
        "parties to",
        "which parties",
        "who signed",
    ]) || q.trim_end_matches('?').ends_with("parties")
    {
        Some(FactKind::Parties)
    } else if has(&[
        "what date",
        "which date",
        "when ",
        "effective date",
        "agreement date",
        "expiration date",
        "expire",
    ]) {
        Some(FactKind::Date)
    } else if has(&[
        "how long",
        "duration",
        "renewal term",
        "what term",
        "how many years",
    ]) {
        Some(FactKind::Duration)
    } else if has(&[
        "how much",
        "amount",
        "cap on liability",
        "what fee",
        "price",
    ]) {
        Some(FactKind::Amount)
    } else if [
        "does ",
        "is there",
        "are there",
        "can ",
        "may ",
        "is the",
        "do ",
        "has ",
    ]
    .iter()
    .any(|start| q.trim_start().starts_with(start))
    {
        Some(FactKind::YesNo)
    } else {
        None
    }
}

/// The value of `kind` in `passage`, if the rules find one. For `YesNo` the passage is
/// taken to be the best clause for the question: "yes" with the passage's span when it is
/// not empty (whether a clause of the type exists is decided by retrieval, not here).
pub fn extract(kind: FactKind, passage: &str) -> Option<Fact> {
    let fact = |value: String, span: Range<usize>| Fact { kind, value, span };
    match kind {
        FactKind::Jurisdiction => governing_jurisdiction(passage).map(|(v, s)| fact(v.into(), s)),
        FactKind::Date => find_dates(passage)
            .into_iter()
            .next()
            .map(|(d, s)| fact(d.to_string(), s)),
        FactKind::Duration => find_durations(passage)
            .into_iter()
            .find(|(value, _)| !value.ends_with("days") || value.starts_with(char::is_numeric))
            .map(|(v, s)| fact(v, s)),
        FactKind::NoticePeriod => notice_period(passage).map(|(v, s)| fact(v, s)),
        FactKind::Amount => find_amounts(passage)
            .into_iter()
            .next()
            .map(|(v, s)| fact(v, s)),
        FactKind::Parties => {
            let parties = crate::catalogue::parties(passage);
            if parties.is_empty() {
                return None;
            }
            let start = parties.iter().map(|p| p.span.start).min().unwrap_or(0);
            let end = parties.iter().map(|p| p.span.end).max().unwrap_or(0);
            let names: Vec<&str> = parties.iter().map(|p| p.name.as_str()).collect();
            Some(fact(names.join("; "), start..end))
        }
        FactKind::YesNo => {
            (!passage.trim().is_empty()).then(|| fact("yes".into(), 0..passage.chars().count()))
        }
    }
}

/// Checks a candidate answer sentence against the passages it cites: every jurisdiction,
/// date, number and capitalised name in it must appear in at least one of them. Returns
/// what does not.
pub fn check_answer(answer: &str, passages: &[&str]) -> Vec<Unsupported> {
    let joined = passages.join("\n");
    let lower = joined.to_lowercase();
    let mut missing = Vec::new();

    let passage_places: Vec<&str> = find_jurisdictions(&joined)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for (name, _) in find_jurisdictions(answer) {
        if !passage_places.contains(&name) {
            missing.push(Unsupported::Jurisdiction(name.to_owned()));
        }
    }

    let passage_dates: Vec<DateValue> = find_dates(&joined).into_iter().map(|(d, _)| d).collect();
    let mut date_ranges = Vec::new();
    for (date, span) in find_dates(answer) {
        date_ranges.push(span);
        let found = passage_dates.iter().any(|p| {
            p.year == date.year
                && (date.month.is_none() || p.month == date.month)
                && (date.day.is_none() || p.day == date.day)
        });
        if !found {
            missing.push(Unsupported::Date(date.to_string()));
        }
    }

    let passage_numbers = numbers(&joined);
    for (number, span) in numbers_with_spans(answer) {
        // Parts of a date were checked as the date.
        if date_ranges
            .iter()
            .any(|r| r.start <= span.start && span.end <= r.end)
        {
            continue;
        }
        if !passage_numbers.contains(&number) {
            missing.push(Unsupported::Number(number));
        }
    }

    for name in capitalised_names(answer) {
        if !lower.contains(&name.to_lowercase()) {
            missing.push(Unsupported::Name(name));
        }
    }
    missing
}

// ---- the checker's pieces ------------------------------------------------------------------

static NUMBER_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d[\d,]*(?:\.\d+)?").expect("number pattern"));

/// Numbers as digits without separators, plus number words as digits ("thirty" → 30):
/// "thirty (30) days" in a passage supports "30 days" and "thirty days" in an answer.
fn numbers(text: &str) -> std::collections::HashSet<String> {
    let mut found: std::collections::HashSet<String> = numbers_with_spans(text)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for word in text
        .split(|c: char| !c.is_alphabetic())
        .map(str::to_lowercase)
    {
        if let Some(n) = word_number(&word) {
            found.insert(n.to_string());
        }
    }
    found
}

fn numbers_with_spans(text: &str) -> Vec<(String, Range<usize>)> {
    NUMBER_RE
        .find_iter(text)
        .map(|m| {
            let digits: String = m
                .as_str()
                .trim_end_matches([',', '.'])
                .chars()
                .filter(|c| *c != ',')
                .collect();
            let digits = digits
                .strip_suffix(".00")
                .map(str::to_owned)
                .unwrap_or(digits);
            (digits, char_span(text, m.range()))
        })
        .collect()
}

/// Words that start with a capital in an answer sentence without being names.
const NOT_NAMES: &[&str] = &[
    "the",
    "a",
    "an",
    "this",
    "that",
    "these",
    "it",
    "its",
    "yes",
    "no",
    "agreement",
    "contract",
    "section",
    "article",
    "clause",
    "party",
    "parties",
    "state",
    "law",
    "laws",
    "under",
    "in",
    "on",
    "of",
    "and",
    "or",
    "by",
    "for",
    "to",
    "each",
    "either",
    "neither",
    "there",
    "both",
    "effective",
    "date",
    "term",
    "company",
    "licensee",
    "licensor",
    "i",
];

/// Capitalised words of an answer that are not sentence starts, month names, or common
/// contract words: the names an answer could have made up.
fn capitalised_names(answer: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut sentence_start = true;
    for raw in answer.split_whitespace() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
        let ends_sentence = raw.ends_with(['.', '!', '?', ':']);
        let capitalised = word.chars().next().is_some_and(char::is_uppercase);
        let lower = word.to_lowercase();
        let month = MONTHS.contains(&lower.as_str());
        if capitalised
            && !sentence_start
            && !month
            && word.chars().count() > 1
            && !NOT_NAMES.contains(&lower.as_str())
        {
            names.push(word.to_owned());
        }
        sentence_start = ends_sentence && !is_abbreviation(word);
    }
    names
}

fn is_abbreviation(word: &str) -> bool {
    matches!(
        word.to_lowercase().as_str(),
        "inc" | "ltd" | "co" | "corp" | "no" | "st" | "u.s" | "n.a" | "l.p" | "s.a"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn yes_or_no_questions_are_told_by_their_form() {
        use super::asks_yes_or_no;
        assert!(asks_yes_or_no(
            "In the CO-BRANDING AGREEMENT, can a party terminate without cause (solely by giving a notice and allowing a waiting period to expire)?"
        ));
        assert!(asks_yes_or_no(
            "Is there any clause providing for joint ownership of intellectual property between the parties to the agreement?"
        ));
        assert!(!asks_yes_or_no(
            "Who are the parties to the supply agreement?"
        ));
        assert!(!asks_yes_or_no("In the lease, what is the notice period?"));
        assert!(!asks_yes_or_no("Isabel's agreement: when does it expire?"));
    }

    use super::*;

    #[test]
    fn jurisdiction_facts_come_from_the_clause() {
        let clause = "This Agreement, entered into in Virginia, shall be governed by and \
                      construed in accordance with the laws of the State of New York.";
        assert_eq!(
            extract(FactKind::Jurisdiction, clause).map(|f| f.value),
            Some("New York".to_owned())
        );
    }

    #[test]
    fn question_kinds() {
        assert_eq!(
            kind_for_question("Which law governs the supply agreement?"),
            Some(FactKind::Jurisdiction)
        );
        assert_eq!(
            kind_for_question("Who are the parties?"),
            Some(FactKind::Parties)
        );
        assert_eq!(
            kind_for_question("What is the effective date of the licence?"),
            Some(FactKind::Date)
        );
        assert_eq!(
            kind_for_question("Does the contract have a change of control clause?"),
            Some(FactKind::YesNo)
        );
        assert_eq!(kind_for_question("Summarise the termination rights"), None);
    }

    /// Issue 9: the demo said New York while its own citation said Japan.
    #[test]
    fn checker_catches_a_jurisdiction_the_passage_does_not_name() {
        let passage = "This Amendment shall be governed by the laws of Japan.";
        let wrong = "The laws of the state of New York govern the Veoneer amendment.";
        let missing = check_answer(wrong, &[passage]);
        assert!(missing.contains(&Unsupported::Jurisdiction("New York".into())));
        assert!(missing.contains(&Unsupported::Name("Veoneer".into())));
        assert!(
            check_answer(
                "The amendment is governed by the laws of Japan.",
                &[passage]
            )
            .is_empty()
        );
    }

    #[test]
    fn checker_accepts_dates_and_numbers_written_differently() {
        let passage = "effective as of the 1st day of October, 1999 for thirty (30) days";
        assert!(
            check_answer("It took effect on October 1, 1999 for 30 days.", &[passage]).is_empty()
        );
        assert_eq!(
            check_answer("It took effect on 10/2/1999.", &[passage]),
            [Unsupported::Date("1999-10-02".into())]
        );
        assert_eq!(
            check_answer("Notice is 45 days.", &[passage]),
            [Unsupported::Number("45".into())]
        );
    }
}
