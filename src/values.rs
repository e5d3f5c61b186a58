//! Typed values as contracts write them: jurisdictions, calendar dates, durations,
//! notice periods and amounts, each found with its character span, plus the byte-to-char
//! span helper every rule module uses.
//!
//! A leaf: `catalogue`, `answer_facts` and `ingest::sections` build on it; it imports
//! none of them. Pure functions over text: no I/O, no model, nothing about tenants.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// A calendar date; `day` or `month` is `None` when the text leaves it open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

/// Month names, lower case, January first.
pub const MONTHS: [&str; 12] = [
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
            // 14 March 2018 / 14th day of March, 2018; as converted from filings, "as of1
            // August 2019" and "20t h day of December 2018"
            r"|(?:of)?(?P<day2>\d{{1,2}})(?:st|nd|rd|th|s\s?t|n\s?d|r\s?d|t\s?h)?\s+(?:day\s+of\s+)?{month2},?\s+(?P<year2>\d{{4}})",
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
            let mut whole = c.get(0)?.range();
            // "of1 August 2019": the date starts at the digit.
            if text[whole.clone()]
                .get(..2)
                .is_some_and(|of| of.eq_ignore_ascii_case("of"))
            {
                whole.start += 2;
            }
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

/// "thirty" → 30, "twelve" → 12 (the number words contracts spell out).
pub fn word_number(word: &str) -> Option<u64> {
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
        // Digits with thousands commas, never a comma that ends the clause ("$7,731,000, and").
        r"\d(?:[\d,]*\d)?(?:\.\d+)?(?:\s?(?:million|billion|thousand))?"
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
            governing_jurisdiction(clause).map(|j| j.0),
            Some("New York")
        );
        let japan = "governed by and construed in accordance with the laws of Japan";
        let (name, span) = governing_jurisdiction(japan).unwrap();
        assert_eq!(name, "Japan");
        let chars: Vec<char> = japan.chars().collect();
        assert_eq!(chars[span].iter().collect::<String>(), "Japan".to_owned());
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
        let listed = "an amount of $7,731,000, payable in two instalments";
        assert_eq!(find_amounts(listed)[0].0, "$7,731,000");
    }
}
