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

/// A calendar date; `day` or `month` is `None` when the text leaves it open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateValue {
    pub year: i32,
    pub month: Option<u8>,
    pub day: Option<u8>,
}

impl std::fmt::Display for DateValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.month, self.day) {
            (Some(month), Some(day)) => write!(f, "{:04}-{month:02}-{day:02}", self.year),
            (Some(month), None) => write!(f, "{:04}-{month:02}", self.year),
            _ => write!(f, "{:04}", self.year),
        }
    }
}

/// Something in an answer that no cited passage contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsupported {
    Jurisdiction(String),
    Date(String),
    Number(String),
    Name(String),
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

// ---- jurisdictions -----------------------------------------------------------------------

/// Jurisdictions a contract names as its governing law, longest names first so that
/// "New Mexico" wins over "Mexico" and "West Virginia" over "Virginia".
const JURISDICTIONS: &[&str] = &[
    "People's Republic of China",
    "England and Wales",
    "District of Columbia",
    "British Columbia",
    "New South Wales",
    "North Carolina",
    "South Carolina",
    "Massachusetts",
    "New Hampshire",
    "United Kingdom",
    "United States",
    "West Virginia",
    "Rhode Island",
    "South Dakota",
    "North Dakota",
    "Pennsylvania",
    "Connecticut",
    "Mississippi",
    "Netherlands",
    "Switzerland",
    "Washington",
    "California",
    "New Jersey",
    "New Mexico",
    "Louisiana",
    "Minnesota",
    "Tennessee",
    "Wisconsin",
    "Hong Kong",
    "Singapore",
    "Australia",
    "Luxembourg",
    "Colorado",
    "Delaware",
    "Illinois",
    "Kentucky",
    "Maryland",
    "Michigan",
    "Missouri",
    "Nebraska",
    "Oklahoma",
    "Virginia",
    "New York",
    "Arkansas",
    "Victoria",
    "Scotland",
    "Ontario",
    "Quebec",
    "Alberta",
    "Germany",
    "Ireland",
    "England",
    "Alabama",
    "Arizona",
    "Florida",
    "Georgia",
    "Indiana",
    "Montana",
    "Nevada",
    "Oregon",
    "Vermont",
    "Wyoming",
    "Alaska",
    "Hawaii",
    "Kansas",
    "Canada",
    "France",
    "Israel",
    "Sweden",
    "Norway",
    "Mexico",
    "Cayman Islands",
    "Bermuda",
    "Belgium",
    "Denmark",
    "Finland",
    "Austria",
    "Italy",
    "Spain",
    "Japan",
    "Korea",
    "Taiwan",
    "China",
    "India",
    "Texas",
    "Maine",
    "Idaho",
    "Iowa",
    "Ohio",
    "Utah",
    "Wales",
];

static JURISDICTION_RE: LazyLock<Regex> = LazyLock::new(|| {
    let names: Vec<String> = JURISDICTIONS
        .iter()
        .map(|name| regex::escape(name).replace("'", "['’]"))
        .collect();
    Regex::new(&format!(r"\b(?:{})\b", names.join("|"))).expect("jurisdiction pattern")
});

/// Every jurisdiction named in `text` (case-sensitive: "Georgia" the state, not "georgia"),
/// in order, with its character span.
pub fn find_jurisdictions(text: &str) -> Vec<(&'static str, Range<usize>)> {
    JURISDICTION_RE
        .find_iter(text)
        .filter_map(|m| {
            let found = m.as_str().replace('’', "'");
            let name = JURISDICTIONS.iter().find(|name| **name == found)?;
            // "Washington, D.C." is the District of Columbia, not the state; it is rare
            // enough in governing-law clauses to leave as the state.
            Some((*name, char_span(text, m.range())))
        })
        .collect()
}

static LAWS_OF_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\blaws?\s+of\b").expect("laws-of pattern"));

static GOVERNED_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:governed|construed|interpreted|governing|jurisdiction|courts?)\b")
        .expect("governed pattern")
});

/// The jurisdiction whose law governs, from a governing-law clause: the first jurisdiction
/// named within 120 characters after "laws of", else after "governed by", "construed"…,
/// else the first named at all ("entered into in Virginia … the laws of New York" is New
/// York).
pub fn governing_jurisdiction(passage: &str) -> Option<(&'static str, Range<usize>)> {
    let found = find_jurisdictions(passage);
    for anchor_re in [&*LAWS_OF_RE, &*GOVERNED_RE] {
        for anchor in anchor_re.find_iter(passage) {
            let at = char_span(passage, anchor.range()).end;
            let mut after = found
                .iter()
                .filter(|(_, span)| span.start >= at && span.start - at <= 120);
            if let Some(first) = after.next() {
                // "the federal laws of the United States and the laws of the State of New
                // York": the state is what the experts (and lawyers) call the governing law.
                if first.0 == "United States"
                    && let Some(next) = after.next()
                {
                    return Some(next.clone());
                }
                return Some(first.clone());
            }
        }
    }
    found.into_iter().next()
}

// ---- dates --------------------------------------------------------------------------------

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

static DATE_RE: LazyLock<Regex> = LazyLock::new(|| {
    let month = r"(?P<month>Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?";
    let month2 = month.replace("?P<month>", "?P<month2>");
    Regex::new(&format!(
        concat!(
            r"(?i)\b(?:",
            // March 14, 2018 / March 14th, 2018 / March 2018
            r"{month}\s+(?:(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s+)?(?P<year>\d{{4}})",
            // 14 March 2018 / 14th day of March, 2018
            r"|(?P<day2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?{month2},?\s+(?P<year2>\d{{4}})",
            // 3/14/2018, 03-14-18
            r"|(?P<m3>\d{{1,2}})[/-](?P<d3>\d{{1,2}})[/-](?P<y3>\d{{4}}|\d{{2}})",
            // 2018-03-14
            r"|(?P<y4>\d{{4}})-(?P<m4>\d{{2}})-(?P<d4>\d{{2}})",
            r")\b"
        ),
        month = month,
        month2 = month2
    ))
    .expect("date pattern")
});

/// Every date written in `text` ("March 14, 2018", "14th day of March, 2018", "3/14/18",
/// "2018-03-14"), in order, with its character span. Two-digit years are 19xx above 50.
pub fn find_dates(text: &str) -> Vec<(DateValue, Range<usize>)> {
    let month_number = |name: &str| {
        let name = name.trim_end_matches('.').to_lowercase();
        MONTHS
            .iter()
            .position(|m| m.starts_with(&name[..name.len().min(3)]))
            .map(|i| i as u8 + 1)
    };
    let year = |text: &str| -> Option<i32> {
        let y: i32 = text.parse().ok()?;
        Some(match (text.len(), y) {
            (2, 0..=50) => 2000 + y,
            (2, _) => 1900 + y,
            _ => y,
        })
    };
    DATE_RE
        .captures_iter(text)
        .filter_map(|c| {
            let get = |name: &str| c.name(name).map(|m| m.as_str());
            let date = if let Some(y) = get("year") {
                DateValue {
                    year: year(y)?,
                    month: month_number(get("month")?),
                    day: get("day").and_then(|d| d.parse().ok()),
                }
            } else if let Some(y) = get("year2") {
                DateValue {
                    year: year(y)?,
                    month: month_number(get("month2")?),
                    day: get("day2").and_then(|d| d.parse().ok()),
                }
            } else if let Some(y) = get("y3") {
                DateValue {
                    year: year(y)?,
                    month: get("m3").and_then(|m| m.parse().ok()),
                    day: get("d3").and_then(|d| d.parse().ok()),
                }
            } else {
                DateValue {
                    year: year(get("y4")?)?,
                    month: get("m4").and_then(|m| m.parse().ok()),
                    day: get("d4").and_then(|d| d.parse().ok()),
                }
            };
            let plausible = (1900..=2100).contains(&date.year)
                && date.month.is_none_or(|m| (1..=12).contains(&m))
                && date.day.is_none_or(|d| (1..=31).contains(&d));
            let whole = c.get(0)?.range();
            plausible.then(|| (date, char_span(text, whole)))
        })
        .collect()
}

// ---- durations, notice periods, amounts ---------------------------------------------------

const NUMBER_WORDS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

static DURATION_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)\b(?:(?P<word>[a-z]+(?:[- ][a-z]+)?)\s*\(\s*(?P<paren>\d+)\s*\)|(?P<digits>\d+)",
        r"|(?P<bare>one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|sixty|ninety))",
        r"\s*(?:-\s*)?(?:calendar\s+|business\s+|consecutive\s+|full\s+)?",
        r"(?P<unit>years?|months?|weeks?|days?)\b"
    ))
    .expect("duration pattern")
});

/// Every period written in `text` ("five (5) years", "30 days", "twelve months"),
/// normalised to "<n> <unit>s", with its character span.
pub fn find_durations(text: &str) -> Vec<(String, Range<usize>)> {
    DURATION_RE
        .captures_iter(text)
        .filter_map(|c| {
            let n: u64 = if let Some(p) = c.name("paren") {
                p.as_str().parse().ok()?
            } else if let Some(d) = c.name("digits") {
                d.as_str().parse().ok()?
            } else {
                let word = c.name("bare")?.as_str().to_lowercase();
                word_number(&word)?
            };
            let unit = c.name("unit")?.as_str().to_lowercase();
            let unit = unit.trim_end_matches('s');
            let value = if n == 1 {
                format!("1 {unit}")
            } else {
                format!("{n} {unit}s")
            };
            Some((value, char_span(text, c.get(0)?.range())))
        })
        .collect()
}

fn word_number(word: &str) -> Option<u64> {
    if let Some(i) = NUMBER_WORDS.iter().position(|w| *w == word) {
        return Some(i as u64);
    }
    match word {
        "thirty" => Some(30),
        "sixty" => Some(60),
        "ninety" => Some(90),
        _ => None,
    }
}

/// The notice period in a clause: the period nearest to a "notice", else the first period.
pub fn notice_period(passage: &str) -> Option<(String, Range<usize>)> {
    let periods = find_durations(passage);
    let lower = passage.to_lowercase();
    let notice_at: Vec<usize> = lower
        .match_indices("notice")
        .map(|(i, _)| char_span(&lower, 0..i).end)
        .collect();
    let distance = |span: &Range<usize>| {
        notice_at
            .iter()
            .map(|&n| n.abs_diff(span.end).min(n.abs_diff(span.start)))
            .min()
            .unwrap_or(usize::MAX)
    };
    periods
        .iter()
        .filter(|(_, span)| distance(span) < 120)
        .min_by_key(|(_, span)| distance(span))
        .or(periods.first())
        .cloned()
}

static AMOUNT_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)(?:(?:US|U\.S\.|CDN|C|A|HK)?\$|USD|EUR|GBP|€|£|RMB)\s?",
        r"\d[\d,]*(?:\.\d+)?(?:\s?(?:million|billion|thousand))?"
    ))
    .expect("amount pattern")
});

/// Every sum of money written in `text` ("$1,000,000", "US$ 5 million", "EUR 10,000"),
/// as written, with its character span.
pub fn find_amounts(text: &str) -> Vec<(String, Range<usize>)> {
    AMOUNT_RE
        .find_iter(text)
        .map(|m| (m.as_str().to_owned(), char_span(text, m.range())))
        .collect()
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

/// The character span of a byte range of `text`.
pub fn char_span(text: &str, bytes: Range<usize>) -> Range<usize> {
    let start = text[..bytes.start].chars().count();
    start..start + text[bytes].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn governing_law_takes_the_jurisdiction_after_laws_of() {
        let clause = "15. Choice of Law. This Agreement, entered into in Virginia, shall be \
                      governed by and construed in accordance with the laws of the State of New York.";
        assert_eq!(
            extract(FactKind::Jurisdiction, clause).map(|f| f.value),
            Some("New York".to_owned())
        );
        let japan = "governed by and construed in accordance with the laws of Japan";
        let fact = extract(FactKind::Jurisdiction, japan).unwrap();
        assert_eq!(fact.value, "Japan");
        let chars: Vec<char> = japan.chars().collect();
        assert_eq!(
            chars[fact.span].iter().collect::<String>(),
            "Japan".to_owned()
        );
        assert_eq!(
            governing_jurisdiction("the laws of the State of New Mexico").map(|j| j.0),
            Some("New Mexico")
        );
    }

    #[test]
    fn dates_in_the_usual_forms() {
        let text =
            "dated as of March 14th, 2018, effective 1st day of October, 1999 until 12/31/22";
        let dates: Vec<String> = find_dates(text)
            .into_iter()
            .map(|(d, _)| d.to_string())
            .collect();
        assert_eq!(dates, ["2018-03-14", "1999-10-01", "2022-12-31"]);
        assert_eq!(find_dates("in June 2020")[0].0.to_string(), "2020-06");
        assert!(find_dates("Section 13/45/9999").is_empty());
    }

    #[test]
    fn periods_amounts_and_notice() {
        let text = "for a term of five (5) years, renewing for successive one year terms unless \
                    either party gives ninety (90) days' prior written notice; fees of US$1,500,000.";
        let periods: Vec<String> = find_durations(text).into_iter().map(|p| p.0).collect();
        assert_eq!(periods, ["5 years", "1 year", "90 days"]);
        assert_eq!(notice_period(text).unwrap().0, "90 days");
        assert_eq!(find_amounts(text)[0].0, "US$1,500,000");
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
