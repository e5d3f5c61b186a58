//! The parties a contract names: in its preamble ("by and between X, a Delaware
//! corporation (\"X\"), and Y …"), or, for an instrument "the undersigned" sign, in its
//! signature blocks.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::{PREAMBLE_CHARS, Party, normalise_space, prefix, title};
use crate::values::char_span;

static BETWEEN_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:by\s+and\s+(?:between|among)|between|among|entered\s+into\s+by|made\s+by)\b[\s:,]*")
        .expect("between pattern")
});

static PREAMBLE_END_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bwhereas\b|\brecitals?\b|w\s?i\s?t\s?n\s?e\s?s\s?s\s?e\s?t\s?h|\bbackground\b|now,?\s+therefore|agree\s+as\s+follows|\n\s*\n\s*(?:1\.|article|section)")
        .expect("preamble end pattern")
});

static DEFINED_TERM_RE: LazyLock<Regex> = LazyLock::new(|| {
    // ("PrimeCall"), (the "Company"), (hereinafter referred to as 'IMPCO', which …)
    Regex::new(r#"\((?:[^()]{0,120}?)["“'‘]([^"”'’]{2,40})["”'’][^()]{0,200}\)"#)
        .expect("defined term pattern")
});

static DESCRIPTION_RE: LazyLock<Regex> = LazyLock::new(|| {
    // Where a party's name ends and its description begins.
    Regex::new(r"(?:,\s*as\s+[A-Za-z]|\s+of\s+\d|\s+having\s|,?\s+represented\s+by|,\s*(?:an?|the)\s+[a-zA-Z]|,\s*(?:having|having\s+its|with|whose|located|incorporated|organized|organised|acting|through|on\s+behalf|registration|registered|reg\.|company\s+(?:no|number))\b|\s+with\s+(?:an?\s+|its\s+)?(?:principal\s+|registered\s+)?(?:office|place\s+of\s+business)|\s+\((?:hereinafter|the\s|a\s)|,\s*(?:a|an)\s+|\s+a\s+(?:[A-Z][a-z]+\s+)?(?:corporation|company|limited)|,\s*[A-Z][a-z]+\s+(?:corporation|limited\s+liability\s+company|limited\s+partnership)\b)")
        .expect("description pattern")
});

/// What leads a party's name without being part of it: "and", "between", or a number
/// that lists it ("(1) Oaktree Capital Management, L.P.", "(b) Establishment Labs").
static LEAD_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?i:and|between|among|by)\s+|\((?:\d{1,2}|[a-hA-H]|[ivxIVX]{1,4})\)\s*)")
        .expect("lead pattern")
});

/// A cover page's parties, each on a line of its own with "and" on the line between
/// ("CHINA ECONOMIC INFORMATION SERVICE OF XINHUA NEWS AGENCY\n AND\n XINHUA FINANCIAL
/// NETWORK LIMITED").
static COVER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^[ \t]*([^\n]{3,120}?)[ \t]*\n(?:[ \t]*\n)*[ \t]*(?i:and)[ \t]*\n(?:[ \t]*\n)*[ \t]*([^\n]{3,120}?)[ \t]*$")
        .expect("cover pattern")
});

/// A letter's or confirmation's addressee and sender ("To: Wells Fargo Bank, N.A. …",
/// "From: UBS AG, London Branch").
static LETTER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^[ \t]*(To|From):[ \t]+([^\n]{3,200})").expect("letter pattern")
});

/// "… and each of the persons set forth on the signature page hereto": parties the
/// preamble leaves to the signature blocks.
static SIGNATURE_PAGE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:set\s+forth|listed|named)\s+on\s+the\s+signature\s+pages?\b")
        .expect("signature page pattern")
});

/// An entity suffix followed by where the entity is ("… Limited of Boston House").
static SUFFIX_THEN_ADDRESS_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.*?\b(?i:limited|ltd\.?|inc\.?|llc|corporation|corp\.?|plc|gmbh|l\.p\.))\s+of\s+[A-Z0-9]")
        .expect("suffix then address pattern")
});

/// A dated filing line ("Source: XINHUA SPORTS & ENTERTAINMENT, F-1, 2/21/2007"), never a
/// party's name.
static FILING_DATE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b").expect("filing date pattern"));

static PARAGRAPH_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\n[ \t]*\n\s*").expect("paragraph pattern"));

static AND_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s+(?:and|AND)\s+").expect("and pattern"));

static PIECE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s+(?:and|AND)\s+|\n\s*\n|,\s*\n").expect("piece pattern"));

/// Endings that mark a name as an organisation's.
fn has_entity_suffix(name: &str) -> bool {
    let lower = name.to_lowercase();
    [
        "inc",
        "inc.",
        "llc",
        "ltd",
        "ltd.",
        "limited",
        "corp",
        "corp.",
        "corporation",
        "company",
        "co.",
        "plc",
        "gmbh",
        "ag",
        "b.v.",
        "b.v",
        "n.v.",
        "s.a.",
        "l.p.",
        "lp",
        "trust",
        "partnership",
        "bank",
        "n.a.",
        "s.r.l.",
        "pty",
    ]
    .iter()
    .any(|suffix| lower.ends_with(&format!(" {suffix}")) || lower.ends_with(&format!(",{suffix}")))
}

/// Defined terms that name the agreement or a date, not a party.
const NOT_PARTY_TERMS: &[&str] = &[
    "agreement",
    "this agreement",
    "effective date",
    "execution date",
    "commencement date",
    "parties",
    "party",
    "amendment",
    "contract",
];

/// How many parties a preamble names at most (more is a misread), and how many signature
/// blocks may (a joint filing agreement has a score of signatories).
const PREAMBLE_PARTIES: usize = 8;
const SIGNATORIES: usize = 30;
/// How far into a contract its cover page may name the parties.
const COVER_CHARS: usize = 1_500;

/// "The undersigned hereby agree …": an instrument whose parties are its signatories.
static UNDERSIGNED_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bthe\s+undersigned\b").expect("undersigned pattern"));

/// A signature block's entity, set in capitals on the line before "By:" ("PRAIRIE ECI
/// ACQUIROR LP By: …", "BIP HOLDINGS MANAGER L.L.C.\n\nBy: /s/ …").
static SIGNATORY_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b([A-Z][A-Z0-9&.,'’/ -]{2,100}[A-Z0-9.)])[ \t]*:?\s+By:")
        .expect("signatory pattern")
});

/// An entity that signs for another: "By: BIP Holdings Manager L.L.C., its general partner".
static SIGNS_FOR_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"By:\s+([A-Z][A-Za-z0-9&.,'’/ -]{2,100}?),\s+(?:its|their)\s+(?:sole\s+)?(?:general\s+partner|manager|managing\s+member|investment\s+(?:adviser|advisor|manager)|trustee|attorney-in-fact)")
        .expect("signs-for pattern")
});

/// Words that label a signature block's role rather than name an entity ("THE COMPANY",
/// "LICENSOR").
const ROLE_WORDS: &[&str] = &[
    "the",
    "company",
    "licensor",
    "licensee",
    "seller",
    "buyer",
    "purchaser",
    "supplier",
    "distributor",
    "customer",
    "consultant",
    "contractor",
    "client",
    "agent",
    "party",
    "parties",
    "franchisor",
    "franchisee",
    "investor",
    "issuer",
    "owner",
    "manager",
];

/// The parties a contract names: those of its preamble ("by and between X, a Delaware
/// corporation ("X"), and Y …"), in order, each with its defined term and the span of its
/// name; for an instrument "the undersigned" sign, or when the preamble names none, its
/// signature blocks' entities (`signatories`), when it has any.
pub fn parties(text: &str) -> Vec<Party> {
    let head = prefix(text, PREAMBLE_CHARS);
    let undersigned = UNDERSIGNED_RE.find(head).is_some_and(|undersigned| {
        BETWEEN_RE
            .find(head)
            .is_none_or(|between| undersigned.start() < between.start())
    });
    let mut preamble = preamble_parties(text, head);
    if preamble.len() < 2 {
        for other in [letter_parties(text, head), cover_parties(text, head)] {
            if other.len() >= 2 {
                return other;
            }
        }
    }
    if preamble.is_empty() || undersigned {
        let signed = signatories(text);
        if !signed.is_empty() {
            return signed;
        }
    }
    let preamble_end = PREAMBLE_END_RE.find(head).map_or(head.len(), |m| m.start());
    if SIGNATURE_PAGE_RE.is_match(&head[..preamble_end]) {
        // "… and each of the persons set forth on the signature page hereto".
        for signed in signatories(text) {
            let known = preamble
                .iter()
                .any(|party| party.name.eq_ignore_ascii_case(&signed.name));
            if !known && preamble.len() < SIGNATORIES {
                preamble.push(signed);
            }
        }
    }
    preamble
}

/// A party named by a whole line or header value, where `range` (bytes of `text`) holds
/// only the name and what describes it.
fn named_in(text: &str, range: Range<usize>) -> Option<Party> {
    let value = &text[range.clone()];
    // "UBS AG, London Branch (\"UBS AG\")", "Wells Fargo Bank, N.A., not individually".
    let cut = [" (", "(", ", not ", ", but ", ", acting "]
        .iter()
        .filter_map(|stop| value.find(stop))
        .min()
        .unwrap_or(value.len());
    let (name, within) = party_name(&value[..cut])?;
    let named = name.split_whitespace().count() >= 2 || has_entity_suffix(&name);
    let lower = name.to_lowercase();
    let a_role = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .all(|word| ROLE_WORDS.contains(&word));
    let start = range.start + within.start;
    (named && !a_role && !lower.contains("agreement")).then(|| Party {
        span: char_span(text, start..start + within.len()),
        name,
        alias: None,
    })
}

/// A letter's or confirmation's parties: its sender ("From:"), then its addressee ("To:").
fn letter_parties(text: &str, head: &str) -> Vec<Party> {
    let mut found: Vec<(bool, Party)> = LETTER_RE
        .captures_iter(head)
        .filter_map(|header| {
            let value = header.get(2)?;
            let from = header[1].eq_ignore_ascii_case("from");
            Some((from, named_in(text, value.range())?))
        })
        .collect();
    found.sort_by_key(|(from, _)| !from);
    found.dedup_by(|a, b| a.0 == b.0);
    found.into_iter().map(|(_, party)| party).collect()
}

/// A cover page's parties ("X\nAND\nY" on lines of their own), when it opens the contract.
fn cover_parties(text: &str, head: &str) -> Vec<Party> {
    let cover = &head[..head.len().min(COVER_CHARS)];
    let Some(found) = COVER_RE.captures(cover) else {
        return Vec::new();
    };
    [found.get(1), found.get(2)]
        .into_iter()
        .flatten()
        .filter_map(|name| named_in(text, name.range()))
        .collect()
}

/// The entities of a contract's signature blocks, in order, each once: the name set in
/// capitals above "By:", and the one that signs for it ("By: X, its general partner").
pub fn signatories(text: &str) -> Vec<Party> {
    let mut names: Vec<(usize, Range<usize>)> = SIGNATORY_RE
        .captures_iter(text)
        .chain(SIGNS_FOR_RE.captures_iter(text))
        .filter_map(|found| found.get(1))
        .map(|name| (name.start(), name.range()))
        .collect();
    names.sort_by_key(|(start, _)| *start);
    let mut seen = std::collections::HashSet::new();
    let mut parties = Vec::new();
    for (_, range) in names {
        let raw = text[range.clone()].trim_end_matches([',', ' ']);
        let name = normalise_space(raw);
        let words: Vec<String> = name
            .split(|c: char| !c.is_alphanumeric())
            .filter(|word| !word.is_empty())
            .map(str::to_lowercase)
            .collect();
        let a_role = words.iter().all(|word| ROLE_WORDS.contains(&word.as_str()));
        let named = words.len() >= 2 || has_entity_suffix(&name);
        if a_role || !named || !seen.insert(words.join(" ")) {
            continue;
        }
        parties.push(Party {
            span: char_span(text, range.start..range.start + raw.len()),
            name,
            alias: None,
        });
        if parties.len() == SIGNATORIES {
            break;
        }
    }
    parties
}

/// The parties of the preamble (see [`parties`]).
fn preamble_parties(text: &str, head: &str) -> Vec<Party> {
    // The preamble starts after "by and between" (or "among"); without one, after the
    // title ("Aduro Biotech, Inc. (\"Aduro\") and IREYA B.V (\"Consultant\") agree …").
    let base = match BETWEEN_RE.find(head) {
        Some(between) => between.end(),
        None => title(text).map_or(0, |t| {
            let chars_to_bytes = text.char_indices().nth(t.span.end);
            chars_to_bytes.map_or(head.len(), |(byte, _)| byte.min(head.len()))
        }),
    };
    let window_end = PREAMBLE_END_RE
        .find_at(head, base)
        .map_or(head.len().min(base + 2_500), |m| m.start());
    let window = &head[base..window_end];

    let mut parties = Vec::new();
    let mut segment_start = 0;
    for term in DEFINED_TERM_RE.captures_iter(window) {
        let whole = term.get(0).expect("match");
        let alias = normalise_space(&term[1]);
        let segment = &window[segment_start..whole.start()];
        let next_start = whole.end();
        if NOT_PARTY_TERMS.contains(&alias.to_lowercase().as_str()) {
            segment_start = next_start;
            continue;
        }
        // "…, is between Clear Capital (the \"Company\")": the name starts after "between".
        let mut offset = BETWEEN_RE.find_iter(segment).last().map_or(0, |m| m.end());
        // "iBio Inc., a corporation … and Beijing CC-Pharming Ltd. (\"CC-Pharming\")": an
        // earlier party without a defined term of its own.
        if let Some(and) = AND_RE.find_iter(&segment[offset..]).last() {
            let before = &segment[offset..offset + and.start()];
            if before.trim().len() > 2
                && let Some((name, range)) = party_name(before)
                && DESCRIPTION_RE.is_match(before)
            {
                let start = base + segment_start + offset + range.start;
                parties.push(Party {
                    name,
                    alias: None,
                    span: char_span(text, start..start + range.len()),
                });
                offset += and.start();
            }
        }
        // "Lifeway Foods, Inc. (\"Lifeway\") with a principal business address of … and
        // Ludmila Smolyansky (\"Individual\")": the earlier party's address, then the name.
        let named = party_name(&segment[offset..]).or_else(|| {
            let and = AND_RE.find_iter(&segment[offset..]).last()?;
            let (name, range) = party_name(&segment[offset + and.end()..])?;
            Some((name, range.start + and.end()..range.end + and.end()))
        });
        if let Some((name, range)) = named {
            let start = base + segment_start + offset + range.start;
            parties.push(Party {
                name,
                alias: Some(alias),
                span: char_span(text, start..start + range.len()),
            });
        }
        segment_start = next_start;
    }
    if parties.len() < 2 {
        // No defined terms, or too few read: "between X and Y." (what a defined term
        // follows may be a party's address instead).
        let plain = plain_parties(text, window, base);
        if plain.len() > parties.len() {
            parties = plain;
        }
    }
    parties.truncate(PREAMBLE_PARTIES);
    parties
}

/// The parties of a preamble without defined terms: "between X and Y.", or a cover page
/// "among X, as Issuer, Y, as Depositor and Z, as Servicer". `window` starts at byte
/// `base` of `text`.
fn plain_parties(text: &str, window: &str, base: usize) -> Vec<Party> {
    let mut parties = Vec::new();
    let sentence_end = window.find(". ").unwrap_or(window.len());
    let sentence = &window[..sentence_end];
    let mut offset = 0;
    for piece in PIECE_RE.split(sentence) {
        if let Some((name, range)) = party_name(piece)
            && (name.split_whitespace().count() >= 2 || has_entity_suffix(&name))
        {
            parties.push(Party {
                name,
                alias: None,
                span: char_span(text, base + offset + range.start..base + offset + range.end),
            });
        }
        offset += piece.len();
        offset += PIECE_RE.find_at(sentence, offset).map_or(0, |m| m.len());
    }
    parties
}

/// The party's name in the text between two defined terms: after a leading "and", up to
/// its description (", a Delaware corporation"). Byte range within `segment`.
fn party_name(segment: &str) -> Option<(String, Range<usize>)> {
    let mut start = 0;
    let mut rest = segment;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || ",;:".contains(c));
        start += rest.len() - trimmed.len();
        rest = trimmed;
        // "and ", or "AND" on a line of its own.
        match LEAD_RE.find(rest) {
            Some(lead) => {
                start += lead.end();
                rest = &rest[lead.end()..];
            }
            None => break,
        }
    }
    let mut end = DESCRIPTION_RE.find(rest).map_or(rest.len(), |m| m.start());
    // "Tigrent Learning UK Limited of Boston House, …": an address after the entity suffix.
    if let Some(suffix) = SUFFIX_THEN_ADDRESS_RE.captures(&rest[..end]) {
        end = suffix.get(1).map_or(end, |name| name.end());
    }
    // A name does not span a blank line: what precedes one is a heading ("Parties to this
    // agreement").
    if let Some(paragraph) = PARAGRAPH_RE.find_iter(&rest[..end]).last() {
        start += paragraph.end();
        rest = &rest[paragraph.end()..];
        end -= paragraph.end();
    }
    let mut name = rest[..end].trim_end_matches(|c: char| c.is_whitespace() || ",;:".contains(c));
    // A sentence's full stop is not part of the name; "Inc." and "N.A." keep theirs.
    if let Some(bare) = name.strip_suffix('.') {
        let last = bare.rsplit(' ').next().unwrap_or_default().to_lowercase();
        if !last.contains('.')
            && !["inc", "ltd", "co", "corp", "jr", "sr", "bhd"].contains(&last.as_str())
        {
            name = bare;
        }
    }
    let words = name.split_whitespace().count();
    // Names may start in lower case ("deltathree.com, Inc."), prose may not.
    let first: String = name
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let prose = [
        "is",
        "are",
        "dated",
        "made",
        "entered",
        "source",
        "page",
        "exhibit",
        "table",
        "this",
        "each",
        "which",
        "who",
        "collectively",
        "individually",
        "together",
        "hereinafter",
        "hereby",
        "pursuant",
        "we",
        "such",
    ]
    .contains(&first.as_str());
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_uppercase() || (c.is_alphanumeric() && name.contains('.')));
    let filing = FILING_DATE_RE.is_match(name);
    (starts_well && !prose && !filing && (1..=12).contains(&words) && name.len() <= 120)
        .then(|| (normalise_space(name), start..start + name.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        parties(text).into_iter().map(|party| party.name).collect()
    }

    #[test]
    fn numbered_parties_and_an_address_before_the_next_party() {
        let text = "SUPPLY AGREEMENT\n\nThis Agreement is entered into by and between (1) Apollo \
                    Widgets, Delaware corporation having offices at 1 Main St (\"APOLLO\"), and (2) \
                    Estab Labs, S.A a corporation organized under the laws of Costa Rica \
                    (\"ESTAB\").\n\nRECITALS";
        assert_eq!(names(text), ["Apollo Widgets", "Estab Labs, S.A"]);
        let text = "Endorsement Agreement (\"Agreement\") is made this 14th day of March, 2016 by \
                    and between Acme Foods, Inc. (\"Acme\") with a principal business address of \
                    6 West Street, Morton Grove, IL 60053 and Jane Smolyan (\"Individual\") on her \
                    own behalf. The terms are as follows:";
        assert_eq!(names(text), ["Acme Foods, Inc.", "Jane Smolyan"]);
        let text = "THIS SUPPLEMENTAL AGREEMENT is made by and between Tigris Learning UK Limited \
                    of Boston House, 69 Manor Road, Brentford (\"Company\") and Speakers Ltd \
                    (\"CSA\").\n\nWHEREAS";
        assert_eq!(names(text)[0], "Tigris Learning UK Limited");
    }

    #[test]
    fn a_cover_page_a_letter_and_a_signature_page_name_parties() {
        let text = "EXHIBIT 99.4\n      DATED 15TH DECEMBER 2001\n   CHINA NEWS INFORMATION \
                    SERVICE OF THE AGENCY\n        AND\n   FINANCIAL NETWORK LIMITED\n   \
                    ----------\n   CONTENT LICENSE AGREEMENT\n\nSource: FINANCIAL NETWORK, F-1, \
                    2/21/2007\n";
        assert_eq!(
            names(text),
            [
                "CHINA NEWS INFORMATION SERVICE OF THE AGENCY",
                "FINANCIAL NETWORK LIMITED"
            ]
        );
        let text = "Yield Maintenance Agreement\nDate: 27 April 2006\nTo:      Wells Bank, N.A., \
                    not individually, but solely as Master Servicer (\"Counterparty\")\nFrom:    \
                    UBS AG, London Branch (\"UBS AG\")\nSubject: Interest Rate Cap\nDear Sirs\n";
        assert_eq!(names(text), ["UBS AG, London Branch", "Wells Bank, N.A."]);
        let text = "COOPERATION AGREEMENT This AGREEMENT (this \"Agreement\") is made and entered \
                    into by The Meet Co., Inc., a Delaware corporation (the \"Company\"), and each \
                    of the persons set forth on the signature page hereto (each, an \"Investor\"). \
                    WHEREAS, the Investors own shares.\n\nTHE MEET CO., INC.\nBy: /s/ A\n\n\
                    HARVEST SMALL CAP PARTNERS, L.P.\nBy: /s/ B\n";
        assert_eq!(
            names(text),
            ["The Meet Co., Inc.", "HARVEST SMALL CAP PARTNERS, L.P."]
        );
    }
}
