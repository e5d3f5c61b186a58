//! Quoted answers: sentences of the excerpts that could answer on their own, ranked, and
//! quoted verbatim when the model's answer cannot be traced back to the excerpts.

use super::text::{content_words, flatten_whitespace, plain_words, split_sentences};
use crate::store::ChunkRecord;

/// Sentences of the excerpts that could answer on their own: (excerpt index, sentence).
/// Used when the model's answer cannot be traced back to the excerpts: the best-matching
/// sentence, quoted verbatim, is grounded by construction.
pub fn candidate_sentences(excerpts: &[ChunkRecord]) -> Vec<(usize, String)> {
    let mut candidates = Vec::new();
    for (index, excerpt) in excerpts.iter().enumerate() {
        for sentence in split_sentences(&excerpt.text) {
            let flat = flatten_whitespace(sentence);
            let words = flat.split(' ').count();
            if (6..=90).contains(&words)
                && !is_heading(&flat)
                && !candidates.iter().any(|(_, s)| s == &flat)
            {
                candidates.push((index, flat));
            }
        }
    }
    candidates
}

/// Every sentence of the excerpts, whitespace flattened, whatever its length: (excerpt
/// index, sentence). For deciding whether a clause is there at all.
pub fn all_sentences(excerpts: &[ChunkRecord]) -> Vec<(usize, String)> {
    excerpts
        .iter()
        .enumerate()
        .flat_map(|(index, excerpt)| {
            split_sentences(&excerpt.text)
                .into_iter()
                .map(move |sentence| (index, flatten_whitespace(sentence)))
        })
        .collect()
}

/// One sentence of a retrieved chunk, scored as an answer to the question.
#[derive(Clone, Debug)]
pub struct RankedSentence {
    pub score: f32,
    pub similarity: f32,
    /// Index into the retrieved chunks.
    pub chunk: usize,
    pub text: String,
}

/// Of ranked sentences, the one of greatest `strength`; among equals the one of the
/// best-retrieved chunk (lowest index), then the best-ranked (the first given).
pub fn strongest(
    ranked: Vec<RankedSentence>,
    strength: impl Fn(&RankedSentence) -> f32,
) -> Option<RankedSentence> {
    // `min_by` keeps the first of equals: the best-ranked.
    ranked
        .into_iter()
        .map(|sentence| (strength(&sentence), sentence))
        .min_by(|(a, a_sentence), (b, b_sentence)| {
            b.total_cmp(a).then(a_sentence.chunk.cmp(&b_sentence.chunk))
        })
        .map(|(_, sentence)| sentence)
}

/// A title or heading in capitals ("VISP WEB SITE BUILDING AND HOSTING AGREEMENT") names
/// the subject but answers nothing.
fn is_heading(text: &str) -> bool {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let upper = letters.iter().filter(|c| c.is_uppercase()).count();
    letters.is_empty() || upper * 2 > letters.len()
}

/// Ranks a candidate quote: its embedding similarity to the question (without names),
/// plus a little for each of the question's content words it contains — a sentence that
/// says "notice", "terminate" and "without cause" answers a question asking about them.
pub fn quote_score(similarity: f32, generic_question: &str, sentence: &str) -> f32 {
    let question_words = content_words(generic_question);
    let sentence_words = content_words(sentence);
    let shared = question_words.intersection(&sentence_words).count();
    let mut score = similarity + 0.08 * shared as f32;
    // The kind of answer asked for: a question about a date is answered by a sentence
    // holding one; a question about an amount or a period, by one holding a number.
    let question = generic_question.to_lowercase();
    let asks = |cues: &[&str]| cues.iter().any(|cue| question.contains(cue));
    if asks(&["when", "date", "until", "expire", "expiration"]) && mentions_date(sentence) {
        score += 0.1;
    }
    if asks(&[
        "how much", "how many", "how long", "notice", "period", "amount", "fee", "price",
    ]) && mentions_number(sentence)
    {
        score += 0.1;
    }
    score
}

fn mentions_date(sentence: &str) -> bool {
    let lower = sentence.to_lowercase();
    let year = lower
        .split(|c: char| !c.is_ascii_digit())
        .any(|digits| digits.len() == 4 && (digits.starts_with("19") || digits.starts_with("20")));
    year || crate::values::MONTHS
        .iter()
        .any(|month| lower.contains(month))
}

const NUMBER_WORDS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "fifteen", "twenty", "thirty", "forty", "fifty", "sixty", "ninety", "hundred",
];

fn mentions_number(sentence: &str) -> bool {
    sentence.chars().any(|c| c.is_ascii_digit())
        || plain_words(sentence)
            .iter()
            .any(|word| NUMBER_WORDS.contains(&word.as_str()))
}

/// An answer that quotes the excerpt's own words.
pub fn quoted_answer(filename: &str, sentence: &str) -> String {
    format!("According to {filename}: “{sentence}”")
}

/// Ranks candidate sentences (chunk index, text) as answers, best first, from their
/// embeddings and the embedding of the question without its specific words.
pub fn rank_sentences(
    candidates: Vec<(usize, String)>,
    vectors: Vec<Vec<f32>>,
    query_vector: &[f32],
    generic_question: &str,
) -> Vec<RankedSentence> {
    let mut ranked: Vec<RankedSentence> = candidates
        .into_iter()
        .zip(vectors)
        .map(|((chunk, text), vector)| {
            let similarity = crate::embed::dot(&vector, query_vector);
            RankedSentence {
                score: quote_score(similarity, generic_question, &text),
                similarity,
                chunk,
                text,
            }
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::tests::excerpt;

    #[test]
    fn candidate_sentences_are_whole_sentences_of_the_excerpts() {
        let excerpts = [excerpt(
            "3. Term of Agreement. This Agreement shall begin on the Effective Date and shall\n continue until December 31, 2020, unless extended. Short one.",
        )];
        let candidates = candidate_sentences(&excerpts);
        assert_eq!(
            candidates,
            vec![(0, "This Agreement shall begin on the Effective Date and shall continue until December 31, 2020, unless extended.".to_owned())]
        );
    }

    #[test]
    fn quotes_prefer_sentences_that_answer_over_headings_and_look_alikes() {
        let excerpts = [excerpt(
            "VISP WEB SITE BUILDING AND HOSTING AGREEMENT\n\nBoth parties may terminate the Agreement with immediate effect in case of bankruptcy. Dragon may terminate this agreement without cause by giving sixty (60) days written notice to MMI.",
        )];
        let candidates = candidate_sentences(&excerpts);
        assert!(candidates.iter().all(|(_, s)| !s.starts_with("VISP")));
        let question =
            "How much notice must give to terminate the outsourcing agreement without cause?";
        let scores: Vec<f32> = candidates
            .iter()
            .map(|(_, s)| quote_score(0.5, question, s))
            .collect();
        assert!(scores[1] > scores[0], "{candidates:?} {scores:?}");
    }
}
