//! The document catalogue: what a contract says about itself, found with rules in its
//! extracted text — its title, its parties, its agreement, effective and expiration dates,
//! its governing law, and a one-line summary built from those. Every field carries the
//! character span where it was found, so that an answer from the catalogue can cite it.
//!
//! Pure functions: no I/O, no model, nothing about tenants (the caller seals the result
//! like any other tenant content). Rules are general: nothing here names a contract.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::values::{self, DateValue, char_span};

mod parties;

pub use parties::parties;

/// A value and the character span of the text it was read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// A party named in the preamble, with the defined term it goes by, if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    /// The defined term ("Licensor", "PrimeCall") from the parenthetical after the name.
    pub alias: Option<String>,
    pub span: Range<usize>,
}

/// What a contract says about itself. Any field may be missing.
// Serde: the appliance stores a catalogue sealed as JSON (not a wire type: `wire` has its
// own shape for API.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalogue {
    pub title: Option<Field<String>>,
    pub parties: Vec<Party>,
    pub agreement_date: Option<Field<DateValue>>,
    pub effective_date: Option<Field<DateValue>>,
    pub expiration_date: Option<Field<DateValue>>,
    pub governing_law: Option<Field<String>>,
    /// One line: "<title> between <parties>, dated <date>; governed by <law> law."
    pub summary: String,
}

/// How far into a contract the title and preamble are looked for (characters).
const PREAMBLE_CHARS: usize = 6_000;

/// Builds the catalogue of one contract's extracted text.
pub fn catalogue(text: &str) -> Catalogue {
    let title = title(text);
    let parties = parties(text);
    let agreement_date = agreement_date(text);
    let effective_date = effective_date(text).or_else(|| agreement_date.clone());
    let expiration_date = expiration_date(text, effective_date.as_ref());
    let governing_law = governing_law(text);
    let summary = summary(
        title.as_ref(),
        &parties,
        agreement_date.as_ref().or(effective_date.as_ref()),
        governing_law.as_ref(),
    );
    Catalogue {
        title,
        parties,
        agreement_date,
        effective_date,
        expiration_date,
        governing_law,
        summary,
    }
}

// ---- title ---------------------------------------------------------------------------------

const TITLE_NOUNS: &str = "AGREEMENT|CONTRACT|AMENDMENT|ADDENDUM|LICEN[CS]E|LEASE|MEMORANDUM OF UNDERSTANDING|ARRANGEMENT|TERMS AND CONDITIONS|PLAN|DEED|UNDERTAKING";

static CAPS_TITLE_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A run of up to ten all-capital words on one or two lines ending in a title noun.
    let word = r"(?:[A-Z0-9][A-Z0-9&'’\-\./,]*)";
    let gap = r"(?:[ \t]{1,2}|[ \t]*\n[ \t]*)";
    Regex::new(&format!(
        r"\b(?:{word}{gap}){{0,10}}(?:{TITLE_NOUNS})S?\b(?:{gap}(?:NO\.|NUMBER)\s*\d+)?"
    ))
    .expect("title pattern")
});

static THIS_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s+THIS\s+").expect("this pattern"));

static SENTENCE_END_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A word ending a sentence or a bracket, not "NO." or an initial.
    Regex::new(r"[A-Z0-9]{2,}[.:\]]\s+|\]\s*").expect("sentence end pattern")
});

static PROSE_TITLE_RE: LazyLock<Regex> = LazyLock::new(|| {
    // "This Supply Agreement", "THIS Co-Branding and Services Agreement": on one line.
    // Words may be listed with commas ("Software License, Customization and Maintenance
    // Agreement").
    Regex::new(r"(?:[A-Z][\w\-&’']*,?[ \t]+(?:(?:and|of|for|to)[ \t]+)?){1,7}(?:Agreement|Contract|Amendment|Addendum|Licen[cs]e|Lease)\b")
        .expect("prose title pattern")
});

/// Leading words of a heading that are not part of the agreement's name.
const NOT_TITLE_WORDS: &[&str] = &[
    "EXHIBIT",
    "EXECUTION",
    "COPY",
    "VERSION",
    "FINAL",
    "CONFIDENTIAL",
    "THIS",
    "THE",
    "DRAFT",
    "ANNEX",
    "SCHEDULE",
    "APPENDIX",
    "AND",
    "PAGE",
];

/// The agreement's own name: the first all-capital heading ending in "AGREEMENT" (or
/// contract, amendment, licence, lease…) near the top, else "This … Agreement" in prose.
pub fn title(text: &str) -> Option<Field<String>> {
    let head = prefix(text, PREAMBLE_CHARS);
    let caps = caps_title(text, head);
    // A name on a line of its own above the first capitals heading is the heading
    // ("Collaboration Agreement" over a table of contents that lists "… DEFRA AGREEMENT").
    let line = PROSE_TITLE_RE.find_iter(head).find(|m| {
        let before = head[..m.start()].rsplit('\n').next().unwrap_or("");
        let after = head[m.end()..].split('\n').next().unwrap_or("");
        before.trim().is_empty() && after.trim().is_empty()
    });
    match (caps, line) {
        (Some((at, _)), Some(line)) if line.start() < at => Some(prose_title(text, line)),
        (Some((_, caps)), _) => Some(caps),
        (None, line) => line
            .or_else(|| PROSE_TITLE_RE.find(head))
            .map(|m| prose_title(text, m)),
    }
}

/// The first all-capital heading ending in a title noun, and where it starts.
fn caps_title(text: &str, head: &str) -> Option<(usize, Field<String>)> {
    CAPS_TITLE_RE.find_iter(head).find_map(|m| {
        // Drop leading words that label the filing rather than name the agreement.
        let mut start = m.start();
        let mut rest = m.as_str();
        // "… PUBLICLY DISCLOSED. [EXECUTION VERSION] STRATEGIC ALLIANCE AGREEMENT": the
        // name starts after the last word that ends a sentence or a bracket.
        if let Some(cut) = SENTENCE_END_RE
            .find_iter(rest)
            .filter(|end| !end.as_str().starts_with("NO."))
            .last()
        {
            start += cut.end();
            rest = &rest[cut.end()..];
        }
        loop {
            let trimmed = rest.trim_start();
            start += rest.len() - trimmed.len();
            rest = trimmed;
            let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = rest[..word_end].trim_matches([',', '.', ':', '[', ']', '(', ')']);
            let drop = NOT_TITLE_WORDS.contains(&word)
                || word.chars().all(|c| !c.is_alphabetic())
                || (word.len() <= 2 && !["OF", "TO"].contains(&word) && word_end < rest.len());
            if !drop || word_end == rest.len() {
                break;
            }
            start += word_end;
            rest = &rest[word_end..];
        }
        // A heading followed by "THIS … AGREEMENT" in the preamble: keep the heading.
        let rest = THIS_RE.split(rest).next().unwrap_or(rest);
        let end = start + rest.len();
        let name = normalise_space(rest);
        let words = name.split(' ').count();
        (words >= 2 || name.len() > 9).then(|| {
            (
                m.start(),
                Field {
                    span: char_span(text, start..end),
                    value: name,
                },
            )
        })
    })
}

/// A title in prose ("This Supply Agreement …"), without its leading article.
fn prose_title(text: &str, m: regex::Match<'_>) -> Field<String> {
    let mut value = m.as_str();
    let mut start = m.start();
    for lead in ["This ", "THIS ", "The ", "THE "] {
        if let Some(rest) = value.strip_prefix(lead) {
            start += lead.len();
            value = rest;
        }
    }
    Field {
        value: normalise_space(value),
        span: char_span(text, start..m.end()),
    }
}

// ---- dates ---------------------------------------------------------------------------------

static EFFECTIVE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)effective\s+(?:as\s+of|on|from)?|["“]effective\s+date["”]"#)
        .expect("effective pattern")
});

static EXPIRY_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:until|expires?\s+on|expiring\s+on|terminates?\s+on|ending\s+on|through)\b",
    )
    .expect("expiry pattern")
});

static TERM_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:initial\s+term|term\s+of\s+(?:this|the)\s+agreement|term\b[^.]{0,40}\b(?:shall|will)\s+(?:be|continue|remain|commence|begin)|agreement\s+(?:shall|will)\s+(?:continue|remain|commence|begin|become\s+effective|be\s+effective))")
        .expect("term pattern")
});

/// A filing's page footer ("Source: VITALIBIS INC, 8-K, 3/16/2018"): its date is when the
/// contract was filed, not made.
static FILING_LINE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^[ \t]*Source:[^\n]*").expect("filing line pattern"));

/// The dates of a contract's preamble, without those of filing footers.
fn preamble_dates(head: &str) -> Vec<(DateValue, std::ops::Range<usize>)> {
    let footers: Vec<std::ops::Range<usize>> = FILING_LINE_RE
        .find_iter(head)
        .map(|line| char_span(head, line.range()))
        .collect();
    values::find_dates(head)
        .into_iter()
        .filter(|(_, span)| !footers.iter().any(|line| line.contains(&span.start)))
        .collect()
}

/// The date the agreement was made: the first date in the preamble.
pub fn agreement_date(text: &str) -> Option<Field<DateValue>> {
    let head = prefix(text, PREAMBLE_CHARS);
    let dates = preamble_dates(head);
    dates
        .iter()
        .find(|(date, _)| date.day.is_some())
        .or_else(|| dates.iter().find(|(date, _)| date.month.is_some()))
        .map(|(value, span)| Field {
            value: *value,
            span: span.clone(),
        })
}

/// The effective date: a date within 120 characters after "effective" in the preamble.
pub fn effective_date(text: &str) -> Option<Field<DateValue>> {
    let head = prefix(text, PREAMBLE_CHARS);
    let dates = preamble_dates(head);
    EFFECTIVE_RE.find_iter(head).find_map(|m| {
        let at = char_span(head, m.range());
        dates
            .iter()
            .find(|(date, span)| {
                date.month.is_some()
                    && (span.start >= at.start && span.start - at.start < 120
                        || span.end <= at.start && at.start - span.end < 40)
            })
            .map(|(value, span)| Field {
                value: *value,
                span: span.clone(),
            })
    })
}

/// When the initial term ends: a date after "until"/"expires on" in a term clause, else
/// the effective date plus the initial term ("for a period of five (5) years").
pub fn expiration_date(
    text: &str,
    effective: Option<&Field<DateValue>>,
) -> Option<Field<DateValue>> {
    for term in TERM_RE.find_iter(text) {
        let window_end = floor_char_boundary(text, (term.end() + 400).min(text.len()));
        let window = &text[term.start()..window_end];
        let sentence = &window[..window.find(". ").map_or(window.len(), |i| i + 1)];
        let base = char_span(text, 0..term.start()).end;
        if let Some(expiry) = EXPIRY_RE.find(sentence) {
            let after = &sentence[expiry.end()..];
            if let Some((value, span)) = values::find_dates(after).into_iter().next() {
                let offset = base + char_span(sentence, 0..expiry.end()).end;
                return Some(Field {
                    value,
                    span: offset + span.start..offset + span.end,
                });
            }
        }
        if let Some(effective) = effective
            && let Some((period, span)) = values::find_durations(sentence)
                .into_iter()
                .find(|(period, _)| period.contains("year") || period.contains("month"))
        {
            let value = add_period(effective.value, &period)?;
            return Some(Field {
                value,
                span: base + span.start..base + span.end,
            });
        }
    }
    None
}

fn add_period(date: DateValue, period: &str) -> Option<DateValue> {
    let (n, unit) = period.split_once(' ')?;
    let n: i32 = n.parse().ok()?;
    let months = match unit.trim_end_matches('s') {
        "year" => n * 12,
        "month" => n,
        _ => return None,
    };
    let month0 = i32::from(date.month?) - 1 + months;
    Some(DateValue {
        year: date.year + month0.div_euclid(12),
        month: Some((month0.rem_euclid(12) + 1) as u8),
        day: date.day,
    })
}

// ---- governing law -------------------------------------------------------------------------

static GOVERNING_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)governed\s+by|governing\s+law|choice\s+of\s+law|applicable\s+law|construed\s+(?:and\s+\w+\s+)?(?:in\s+accordance\s+with|under)|laws\s+of\s+the\s+state\s+of")
        .expect("governing law pattern")
});

/// The jurisdiction named in the governing-law clause. Every place the clause could be
/// ("governed by", "governing law", "construed in accordance with"…) is scored by how
/// much of the usual wording is near it; the best-worded one wins, so "a Delaware
/// corporation" in the preamble or an "applicable law" definition loses to "shall be
/// governed by the laws of the State of New York".
pub fn governing_law(text: &str) -> Option<Field<String>> {
    let mut best: Option<(u32, Field<String>)> = None;
    for m in GOVERNING_RE.find_iter(text) {
        let end = floor_char_boundary(text, (m.end() + 350).min(text.len()));
        let window = &text[m.start()..end];
        let base = char_span(text, 0..m.start()).end;
        let Some((name, span)) = values::governing_jurisdiction(window) else {
            continue;
        };
        let near = window[..floor_char_boundary(window, window.len().min(250))].to_lowercase();
        let score = [
            ("governed by", 3),
            ("laws of", 2),
            ("law of", 2),
            ("construed", 1),
            ("governing law", 1),
            ("choice of law", 1),
            ("conflict", 1),
        ]
        .iter()
        .filter(|(phrase, _)| near.contains(phrase))
        .map(|(_, weight)| weight)
        .sum::<u32>();
        if best.as_ref().is_none_or(|(top, _)| score > *top) {
            best = Some((
                score,
                Field {
                    value: name.to_owned(),
                    span: base + span.start..base + span.end,
                },
            ));
        }
    }
    best.map(|(_, field)| field)
}

// ---- summary -------------------------------------------------------------------------------

fn summary(
    title: Option<&Field<String>>,
    parties: &[Party],
    date: Option<&Field<DateValue>>,
    law: Option<&Field<String>>,
) -> String {
    let mut line = title.map_or_else(|| "Agreement".to_owned(), |t| t.value.clone());
    let names: Vec<&str> = parties.iter().map(|p| p.name.as_str()).collect();
    match names.as_slice() {
        [] => {}
        [one] => line.push_str(&format!(" of {one}")),
        [init @ .., last] => line.push_str(&format!(" between {} and {last}", init.join(", "))),
    }
    if let Some(date) = date {
        line.push_str(&format!(", dated {}", date.value));
    }
    if let Some(law) = law {
        line.push_str(&format!("; governed by {} law", law.value));
    }
    line.push('.');
    line
}

// ---- helpers -------------------------------------------------------------------------------

fn prefix(text: &str, bytes: usize) -> &str {
    &text[..floor_char_boundary(text, bytes.min(text.len()))]
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn normalise_space(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREAMBLE: &str = "Execution Copy\n\n        CO-BRANDING AND SERVICES AGREEMENT\n\n \
        Co-Branding and Services Agreement, effective as of October 1, 1999 (this \"Agreement\"), \
        between RSL COM PrimeCall, Inc., a Delaware corporation (\"PrimeCall\"), and Delta Three, Inc., \
        a Delaware corporation (\"DeltaThree\").\n\n WHEREAS, PrimeCall sells cards;\n\n\
        8. Term. The initial term of this Agreement shall be three (3) years from the Effective Date.\n\
        15. Governing Law. This Agreement, signed in Tokyo, shall be governed by the laws of the State of New York.";

    fn at(text: &str, span: &Range<usize>) -> String {
        text.chars().skip(span.start).take(span.len()).collect()
    }

    #[test]
    fn title_parties_dates_and_law_with_exact_spans() {
        let catalogue = catalogue(PREAMBLE);
        let title = catalogue.title.unwrap();
        assert_eq!(title.value, "CO-BRANDING AND SERVICES AGREEMENT");
        assert_eq!(at(PREAMBLE, &title.span), title.value);
        let names: Vec<(&str, Option<&str>)> = catalogue
            .parties
            .iter()
            .map(|p| (p.name.as_str(), p.alias.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("RSL COM PrimeCall, Inc.", Some("PrimeCall")),
                ("Delta Three, Inc.", Some("DeltaThree"))
            ]
        );
        for party in &catalogue.parties {
            assert_eq!(at(PREAMBLE, &party.span), party.name);
        }
        let effective = catalogue.effective_date.unwrap();
        assert_eq!(effective.value.to_string(), "1999-10-01");
        assert_eq!(at(PREAMBLE, &effective.span), "October 1, 1999");
        assert_eq!(
            catalogue.expiration_date.unwrap().value.to_string(),
            "2002-10-01"
        );
        let law = catalogue.governing_law.unwrap();
        assert_eq!(law.value, "New York");
        assert_eq!(at(PREAMBLE, &law.span), "New York");
        assert!(catalogue.summary.starts_with(
            "CO-BRANDING AND SERVICES AGREEMENT between RSL COM PrimeCall, Inc. and Delta Three, Inc., dated 1999-10-01"
        ));
    }

    #[test]
    fn single_line_filing_with_exhibit_label() {
        let text = "Exhibit 10.2   FORM OF CONTENT LICENSE AGREEMENT   THIS CONTENT LICENSE AGREEMENT \
            (this \"Agreement\"), dated as of June 2, 2015 (the \"Effective Date\"), is entered into between \
            Beijing Sun Seven Stars Culture Development Limited, a P.R.C. company (\"Licensor\"), and \
            YOU ON DEMAND HOLDINGS, INC., a Nevada corporation (\"Licensee\").   WHEREAS, Licensor …";
        let catalogue = catalogue(text);
        assert_eq!(
            catalogue.title.unwrap().value,
            "FORM OF CONTENT LICENSE AGREEMENT"
        );
        let names: Vec<&str> = catalogue.parties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Beijing Sun Seven Stars Culture Development Limited",
                "YOU ON DEMAND HOLDINGS, INC."
            ]
        );
        assert_eq!(
            catalogue.agreement_date.unwrap().value.to_string(),
            "2015-06-02"
        );
    }

    #[test]
    fn parties_listed_under_a_heading_and_joined_by_a_line_of_their_own() {
        let text = "OUTSOURCING AGREEMENT\n\nThis Outsourcing Agreement (hereinafter \"Agreement\") is effective as from the 1st day of January, 2009, by and between:\n\nParties to this agreement\n\nSILICON SMELTERS << Pty >> Ltd, registration nr 1998/019036/07, Registered office at Beyersnek Road, represented by Benoit Ollivier, Managing Director (hereinafter referred to as \"the Customer\"),\n\nAND\n\nESPACIO INFORMATION TECHNOLOGY, SA., a public limited company with place of business in Madrid, SPAIN (hereinafter referred to as \"EIT\").\n\n1. RECORDINGS";
        let names: Vec<String> = parties(text).into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "SILICON SMELTERS << Pty >> Ltd",
                "ESPACIO INFORMATION TECHNOLOGY, SA"
            ]
        );
    }

    #[test]
    fn a_title_on_its_own_line_and_parties_with_their_offices() {
        let text = "Exhibit 10.2\n\nEXECUTION COPY\n\n***Text Omitted and Filed Separately with the Securities and Exchange Commission\n\nCollaboration Agreement\n\nThis Agreement is entered into with effect as of the Effective Date (as defined below)\n\nby and between\n\nF. Hoffmann-La Roche Ltd\n\nwith an office and place of business at Grenzacherstrasse 124, 4070 Basel, Switzerland (\"Roche Basel\")\n\nand\n\nHoffmann-La Roche Inc.\n\nwith an office and place of business at 150 Clove Road, Little Falls, New Jersey 07424, U.S.A. (\"Roche US\"; Roche Basel and Roche US together referred to as \"Roche\")\n\non the one hand\n\nand\n\nFoundation Medicine, Inc.\n\nwith an office and place of business at 150 Second Street, Cambridge, Massachusetts 02141 (\"FMI\")\n\non the other hand.";
        let catalogue = catalogue(text);
        assert_eq!(catalogue.title.unwrap().value, "Collaboration Agreement");
        let names: Vec<&str> = catalogue.parties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "F. Hoffmann-La Roche Ltd",
                "Hoffmann-La Roche Inc.",
                "Foundation Medicine, Inc."
            ]
        );
    }

    #[test]
    fn the_parties_of_an_instrument_the_undersigned_sign_are_its_signatories() {
        let text = "JOINT FILING AGREEMENT\n\nThe undersigned hereby agree to the joint filing \
            of the Statement (the \"Exchange Act\"). IN WITNESS WHEREOF, the undersigned execute \
            this Agreement as of May 1, 2020. ACME HOLDINGS LP By: Acme GP L.L.C., its general \
            partner\n\nBy: /s/ Jane Roe Name: Jane Roe Title: Director\n\nACME GP L.L.C.\n\n\
            By: /s/ Jane Roe Name: Jane Roe\n\nTHE COMPANY\nBy: /s/ John Doe";
        let parties = catalogue(text).parties;
        let names: Vec<&str> = parties.iter().map(|p| p.name.as_str()).collect();
        // Each entity once, in order; the role label "THE COMPANY" is no party, and the
        // defined term "Exchange Act" is no party either.
        assert_eq!(names, ["ACME HOLDINGS LP", "Acme GP L.L.C."]);
        assert_eq!(at(text, &parties[0].span), "ACME HOLDINGS LP");
        assert_eq!(at(text, &parties[1].span), "Acme GP L.L.C.");
    }

    #[test]
    fn prose_title_and_parties_without_defined_terms() {
        let text = "This Supply Agreement is made between Acme Widgets Ltd and Beta Stores LLC.";
        let catalogue = catalogue(text);
        assert_eq!(catalogue.title.unwrap().value, "Supply Agreement");
        let names: Vec<&str> = catalogue.parties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Acme Widgets Ltd", "Beta Stores LLC"]);
    }

    #[test]
    fn a_heading_line_above_a_capitals_table_of_contents_and_a_title_with_commas() {
        let text = "Exhibit 10.20\n\nCollaboration Agreement\n\nbetween\n\nAcme Research\n\nTABLE OF CONTENTS 1. RESEARCH 3 18. SPECIAL CONDITIONS IN CONNECTION WITH DEFRA AGREEMENT 28";
        let title = catalogue(text).title.unwrap();
        assert_eq!(title.value, "Collaboration Agreement");
        assert_eq!(&text[title.span.clone()], "Collaboration Agreement");
        let text = "SCHEDULE TO Software License, Customization and Maintenance Agreement    Supplier Name: Acme, Inc.";
        assert_eq!(
            catalogue(text).title.unwrap().value,
            "SCHEDULE TO Software License, Customization and Maintenance Agreement"
        );
    }

    #[test]
    fn filing_footers_are_not_dates_and_converted_ordinals_are() {
        let text = "MARKETING AGREEMENT\n\nSource: TODOS LTD, 20-F, 3/28/2019\n\nTHIS AGREEMENT is \
                    made and entered into this 20t h day of December 2018 (the \"Effective Date\"), \
                    by and between Todos Ltd. (\"Todos\") and Reseller Inc. (\"Reseller\").";
        let found = super::catalogue(text);
        let agreement = found.agreement_date.unwrap();
        assert_eq!(agreement.value.to_string(), "2018-12-20");
        assert_eq!(
            found.effective_date.unwrap().value.to_string(),
            "2018-12-20"
        );
        assert_eq!(at(text, &agreement.span), "20t h day of December 2018");
        let text = "DISTRIBUTOR AGREEMENT THIS AGREEMENT is made and effective as of1 August 2019, \
                    by and between B Corp LLC (\"Company\") and D Ltd. (\"Distributor\").\n\n\
                    Source: GENTECH, 1-A, 8/8/2019";
        let found = super::catalogue(text);
        let agreement = found.agreement_date.unwrap();
        assert_eq!(agreement.value.to_string(), "2019-08-01");
        assert_eq!(at(text, &agreement.span), "1 August 2019");
        let footer_only = "SERVICES AGREEMENT\n\nSource: VITALIBIS INC, 8-K, 3/16/2018\n\nThis \
                           Agreement is entered into by and between V Inc. (\"V\") and H LLC (\"H\").";
        assert!(super::catalogue(footer_only).agreement_date.is_none());
    }
}
