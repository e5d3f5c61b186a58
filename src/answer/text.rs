//! Words and sentences: the common question words, content words, numbers, and where a
//! sentence ends.

/// Question words that are capitalised only because they start a sentence.
pub(super) const COMMON_WORDS: &[&str] = &[
    "a",
    "until",
    "since",
    "besides",
    "also",
    "now",
    "then",
    "explain",
    "describe",
    "find",
    "name",
    "regarding",
    "whether",
    "once",
    "unless",
    "upon",
    "may",
    "must",
    "shall",
    "about",
    "according",
    "after",
    "agreement",
    "agreements",
    "all",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "before",
    "by",
    "can",
    "contract",
    "contracts",
    "could",
    "did",
    "do",
    "does",
    "document",
    "documents",
    "each",
    "for",
    "from",
    "give",
    "has",
    "have",
    "how",
    "i",
    "if",
    "in",
    "is",
    "it",
    "its",
    "list",
    "me",
    "my",
    "of",
    "on",
    "or",
    "our",
    "please",
    "say",
    "says",
    "should",
    "show",
    "summarize",
    "summarise",
    "tell",
    "that",
    "the",
    "their",
    "there",
    "this",
    "to",
    "under",
    "us",
    "was",
    "we",
    "what",
    "when",
    "where",
    "which",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
];

/// The word without a possessive `'s` or `’s`.
pub(super) fn without_possessive(word: &str) -> &str {
    word.strip_suffix("'s")
        .or_else(|| word.strip_suffix("’s"))
        .unwrap_or(word)
}

/// The text with every run of whitespace made one space, and none at either end.
pub(super) fn flatten_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lowercased words of four or more characters, cut to six characters: a crude stem, so
/// "terminates" and "termination" match.
pub(super) fn content_words(text: &str) -> std::collections::HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.chars().count() >= 4)
        .map(str::to_lowercase)
        .filter(|word| !COMMON_WORDS.contains(&word.as_str()))
        .map(|word| word.chars().take(6).collect())
        .collect()
}

pub(super) fn plain_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Digit groups ("2020", "60", "4" and "750" of "4,750"), ignoring citation markers.
pub(super) fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let is_marker = rest[..start].ends_with('[') && tail[end..].starts_with(']');
        if !is_marker {
            out.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

/// Words after which a period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "inc", "ltd", "co", "corp", "llc", "no", "nos", "mr", "mrs", "ms", "dr", "st", "sec", "art",
    "vs", "etc", "e.g", "i.e", "u.s", "u.k", "approx", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec",
];

/// The byte offset just past the first complete sentence of `text`: after `.`, `!` or
/// `?` followed by whitespace (not after an abbreviation or a single initial), or after a
/// blank line. `None` while the sentence may still continue.
pub fn sentence_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        let followed_by_space = bytes.get(index + 1).is_some_and(u8::is_ascii_whitespace);
        if *byte == b'\n' && bytes.get(index + 1) == Some(&b'\n') {
            return Some(index + 2);
        }
        if !matches!(byte, b'.' | b'!' | b'?') || !followed_by_space {
            continue;
        }
        if *byte == b'.' {
            let word = text[..index]
                .rsplit(|c: char| c.is_whitespace() || c == '(' || c == ',')
                .next()
                .unwrap_or("");
            let lower = word.to_lowercase();
            let initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
            if initial || ABBREVIATIONS.contains(&lower.as_str()) {
                continue;
            }
        }
        return Some(index + 1);
    }
    None
}

/// Splits text into sentences (see [`sentence_end`]); the remainder is the last one.
pub(super) fn split_sentences(text: &str) -> Vec<&str> {
    sentences_at(text).map(|(_, sentence)| sentence).collect()
}

/// The sentences of `text` (see [`split_sentences`]), each with the byte offset it starts
/// at; blank ones are left out.
pub fn sentences_at(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let rest = &text[start..];
        if rest.is_empty() {
            return None;
        }
        let end = sentence_end(rest).unwrap_or(rest.len());
        let at = start;
        start += end;
        Some((at, &rest[..end]))
    })
    .filter(|(_, sentence)| !sentence.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_punctuation_but_not_at_abbreviations() {
        let text = "Kingdom Connect, Inc. pays J. Smith $5. Then it ends! More";
        assert_eq!(
            split_sentences(text),
            vec![
                "Kingdom Connect, Inc. pays J. Smith $5.",
                " Then it ends!",
                " More"
            ]
        );
        assert_eq!(sentence_end("no end yet"), None);
    }
}
