//! Section headings of a contract's extracted text: numbered sections ("15. Choice of Law
//! and Forum", "4.2 Term"), "ARTICLE 3" / "Section 4.2 Term" headings and all-capital
//! heading lines, as spans with exact character offsets, so that every chunk can carry the
//! title of the section it falls in.
//!
//! Pure functions over text; knows nothing about chunks, tenants or storage. Filings often
//! arrive as one long line, so headings are found inline too, and a run of numbered
//! headings must count upward to be believed (a cross-reference "see 7. Payment" in prose
//! does not open section 7).

use std::sync::LazyLock;

use regex::Regex;

use crate::values::char_span;

/// One section: `start..end` are character offsets into the text (`start` is where its
/// heading begins, `end` where the next section begins, or the end of the text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub start: usize,
    pub end: usize,
    /// The heading as written, spaces normalised: "15. Choice of Law and Forum".
    pub title: String,
    /// "15", "4.2", "3", "III", when the heading is numbered.
    pub number: Option<String>,
}

static NUMBERED_RE: LazyLock<Regex> = LazyLock::new(|| {
    // At the start of a line, or inline after a sentence end or a wide gap:
    // "15. Choice of Law and Forum." / "4.2 Term;" / "1. PURPOSE OF ENGAGEMENT."
    Regex::new(concat!(
        r"(?m)(?:^[ \t]*|[.:;][ \t]+|[ \t]{2,})",
        r"(?P<number>[1-9]\d?(?:\.\d{1,2}){0,2})\.?[ \t]+",
        r"(?P<title>[A-Z][A-Za-z'’]*(?:[ \t]+(?:[A-Z][A-Za-z'’\-/]*|and|or|of|the|to|for|in|on|&)){0,8})",
        r"(?P<end>[.:]|[ \t]*\n|[ \t]{2,}|[ \t]+[-–—])"
    ))
    .expect("numbered heading pattern")
});

static ARTICLE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?m)(?:^[ \t]*|[.:;][ \t]+|[ \t]{2,})",
        r"(?P<heading>(?:ARTICLE|Article|SECTION|Section)[ \t]+(?P<number>[0-9]+(?:\.[0-9]+)*|[IVXLC]+|[A-Z])\b",
        r"[.:]?(?:[ \t]*[-–—]?[ \t]*(?P<title>[A-Z][A-Za-z'’\-/]*(?:[ \t]+(?:[A-Z][A-Za-z'’\-/]*|and|or|of|the|to|for|in|on|&)){0,8}))?)",
        r"(?:[.:]|[ \t]*\n|[ \t]{2,}|$)"
    ))
    .expect("article heading pattern")
});

static CAPS_LINE_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A whole line in capitals, one to eight words: "GOVERNING LAW", "TERM AND TERMINATION".
    Regex::new(r"(?m)^[ \t]*(?P<title>[A-Z][A-Z'’\-&/]+(?:[ \t]+[A-Z'’\-&/]+){0,7})[ \t]*$")
        .expect("capital heading pattern")
});

/// The sections of `text`, in order, covering it from the first heading to the end.
pub fn sections(text: &str) -> Vec<Section> {
    // (byte start, title, number, major number for the counting check)
    let mut found: Vec<(usize, String, Option<String>)> = Vec::new();

    let mut previous_major: Option<u32> = None;
    for c in NUMBERED_RE.captures_iter(text) {
        let number = &c["number"];
        let title = c["title"].trim();
        if !looks_like_title(title) {
            continue;
        }
        let major: u32 = number
            .split('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        // Numbering counts on from the last heading (a heading the rules missed may be
        // skipped), or starts again at 1 (after a table of contents, in a schedule).
        let counts_on = match previous_major {
            None => major <= 2,
            Some(previous) => major == 1 || (previous..=previous + 2).contains(&major),
        };
        if !counts_on {
            continue;
        }
        previous_major = Some(major);
        let start = c.name("number").expect("number").start();
        found.push((
            start,
            normalise(&format!("{number}. {title}")),
            Some(number.to_owned()),
        ));
    }

    for c in ARTICLE_RE.captures_iter(text) {
        let heading = c.name("heading").expect("heading");
        // "Section 4.2 of this Agreement" in prose is a reference, not a heading: a heading
        // is followed by its title, a period or a line end, which the pattern demands; a
        // lower-case word after the number fails it.
        found.push((
            heading.start(),
            normalise(
                heading
                    .as_str()
                    .trim_end_matches([' ', '\t', '-', '–', '—']),
            ),
            Some(c["number"].to_owned()),
        ));
    }

    for c in CAPS_LINE_RE.captures_iter(text) {
        let title = c.name("title").expect("title");
        let words = title.as_str().split_whitespace().count();
        let lower = title.as_str().to_lowercase();
        // Not a signature block, a table-of-contents label or the agreement's own title.
        if words <= 8
            && (words > 1 || title.as_str().len() >= 4)
            && !lower.contains("witness")
            && !lower.ends_with("agreement")
            && lower != "table of contents"
        {
            found.push((title.start(), normalise(title.as_str()), None));
        }
    }

    found.sort_by_key(|(start, ..)| *start);
    // One heading per position: a numbered heading and a capital line may both match.
    found.dedup_by(|later, earlier| later.0 < earlier.0 + earlier.1.len().max(1));

    let total = text.chars().count();
    let starts: Vec<usize> = found
        .iter()
        .map(|(start, ..)| char_span(text, 0..*start).end)
        .collect();
    found
        .into_iter()
        .enumerate()
        .map(|(i, (_, title, number))| Section {
            start: starts[i],
            end: starts.get(i + 1).copied().unwrap_or(total),
            title,
            number,
        })
        .collect()
}

/// The section that contains character `offset`, if any.
pub fn section_at(sections: &[Section], offset: usize) -> Option<&Section> {
    let index = sections.partition_point(|section| section.start <= offset);
    index
        .checked_sub(1)
        .map(|i| &sections[i])
        .filter(|section| offset < section.end)
}

/// A title is short and mostly capitalised words, not the start of a sentence.
fn looks_like_title(title: &str) -> bool {
    let words: Vec<&str> = title.split_whitespace().collect();
    if words.is_empty() || words.len() > 9 || title.len() > 80 {
        return false;
    }
    let capitalised = words
        .iter()
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
        .count();
    // "The Company shall" is prose; "Term and Termination" is a title.
    let first = words[0].to_lowercase();
    let verb_like = [
        "the", "this", "each", "if", "in", "any", "all", "no", "such",
    ];
    capitalised * 2 >= words.len() && !(words.len() > 3 && verb_like.contains(&first.as_str()))
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(text: &str) -> Vec<String> {
        sections(text).into_iter().map(|s| s.title).collect()
    }

    #[test]
    fn numbered_headings_on_their_own_lines() {
        let text = "SUPPLY AGREEMENT\n\n1. Definitions\nWords mean things.\n\n2. Term\nFive years.\n\n\
                    15. Choice of Law and Forum\nNew York law.\n";
        // 15 does not count on from 2, so it is not believed.
        assert_eq!(titles(text), ["1. Definitions", "2. Term"]);
        let text = "1. Definitions\nx\n2. Term\ny\n3. Choice of Law and Forum\nNew York law.\n";
        let sections = sections(text);
        assert_eq!(sections[2].title, "3. Choice of Law and Forum");
        let chars: Vec<char> = text.chars().collect();
        let body: String = chars[sections[2].start..sections[2].end].iter().collect();
        assert_eq!(body, "3. Choice of Law and Forum\nNew York law.\n");
        assert_eq!(sections[0].start, 0);
        assert_eq!(sections[0].end, sections[1].start);
    }

    #[test]
    fn inline_headings_in_a_one_line_filing() {
        let text = "the parties agree as follows: 1. PURPOSE OF ENGAGEMENT. (a) Company agrees \
                    to pay. 2. TERM. This lasts, see 9. Payment below. 3. Governing Law. The laws of Japan.";
        assert_eq!(
            titles(text),
            ["1. PURPOSE OF ENGAGEMENT", "2. TERM", "3. Governing Law"]
        );
        let sections = sections(text);
        let chars: Vec<char> = text.chars().collect();
        let heading: String = chars[sections[2].start..sections[2].start + 16]
            .iter()
            .collect();
        assert_eq!(heading, "3. Governing Law");
        assert_eq!(
            section_at(&sections, text.chars().count() - 3).map(|s| s.title.as_str()),
            Some("3. Governing Law")
        );
        assert_eq!(section_at(&sections, 0), None);
    }

    #[test]
    fn articles_sections_and_capital_lines() {
        let text = "ARTICLE 3\nLICENSE\nThe licence.\n\nSection 4.2 Term. It ends.\n\nGOVERNING LAW\n\
                    As stated in Section 4.2 of this Agreement.\n";
        assert_eq!(
            titles(text),
            ["ARTICLE 3", "LICENSE", "Section 4.2 Term", "GOVERNING LAW"]
        );
    }
}
