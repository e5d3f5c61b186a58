//! The output check: which sentences of an answer the excerpts support, for a whole answer
//! ([`supported_sentences`]) or a token stream ([`SentenceGate`]).

use super::clean_answer;
use super::text::{content_words, numbers, plain_words, sentence_end, split_sentences};
use crate::store::ChunkRecord;

/// Share of a sentence's content words that must occur in the excerpts for the sentence
/// to count as supported.
pub const MIN_SUPPORT: f32 = 0.75;

/// Consecutive words an answer sentence must share with an excerpt.
pub const MIN_SHARED_RUN: usize = 4;

/// Keeps only the answer's sentences that the excerpts support, and returns the kept text
/// and how many sentences were dropped. A sentence is supported when
/// - most of its content words ([`MIN_SUPPORT`]) occur in the excerpts,
/// - every number in it occurs in the excerpts (a made-up date or amount is the worst
///   error a contract assistant can make), and
/// - it repeats at least [`MIN_SHARED_RUN`] consecutive words of one excerpt.
///
/// A small model embroiders; what it adds beyond the excerpts is not an answer from the
/// tenant's documents.
pub fn supported_sentences(answer: &str, excerpts: &[ChunkRecord]) -> (String, usize) {
    let mut source_words = std::collections::HashSet::new();
    let mut source_numbers = std::collections::HashSet::new();
    let mut source_runs = std::collections::HashSet::new();
    for excerpt in excerpts {
        source_words.extend(content_words(&excerpt.text));
        source_numbers.extend(numbers(&excerpt.text));
        let words = plain_words(&excerpt.text);
        for run in words.windows(MIN_SHARED_RUN) {
            source_runs.insert(run.join(" "));
        }
    }
    let mut kept = Vec::new();
    let mut dropped = 0;
    for sentence in split_sentences(answer) {
        let words = content_words(sentence);
        let supported = words
            .iter()
            .filter(|word| source_words.contains(*word))
            .count();
        let words_ok = supported as f32 >= MIN_SUPPORT * words.len() as f32;
        let numbers_ok = numbers(sentence).iter().all(|n| source_numbers.contains(n));
        let run_ok = plain_words(sentence)
            .windows(MIN_SHARED_RUN)
            .any(|run| source_runs.contains(&run.join(" ")));
        if !words.is_empty() && words_ok && numbers_ok && run_ok {
            kept.push(sentence.trim());
        } else {
            dropped += 1;
        }
    }
    (kept.join(" "), dropped)
}

/// Whether `line` says something `quote` does not: a content word the quote lacks. A
/// model's line that only repeats the quoted sentence adds nothing to the answer.
pub fn adds_to(line: &str, quote: &str) -> bool {
    let quoted = content_words(quote);
    content_words(line)
        .iter()
        .any(|word| !quoted.contains(word))
}

/// Passes on only the sentences of a token stream that the tenant's excerpts support
/// (output layer; with it off in an ablation test build, everything passes).
pub struct SentenceGate {
    excerpts: Vec<ChunkRecord>,
    /// Every number in the excerpts.
    numbers: std::collections::HashSet<String>,
    checking: bool,
    pending: String,
    /// The sentences passed on so far.
    pub kept: Vec<String>,
    /// How many sentences were withheld.
    pub dropped: usize,
}

impl SentenceGate {
    pub fn new(excerpts: &[ChunkRecord], citable: &[bool]) -> SentenceGate {
        let excerpts: Vec<ChunkRecord> = excerpts
            .iter()
            .zip(citable)
            .filter(|(_, citable)| **citable)
            .map(|(excerpt, _)| excerpt.clone())
            .collect();
        SentenceGate {
            numbers: excerpts.iter().flat_map(|e| numbers(&e.text)).collect(),
            excerpts,
            checking: crate::isolation::enabled(crate::isolation::Layer::Output),
            pending: String::new(),
            kept: Vec::new(),
            dropped: 0,
        }
    }

    /// Adds generated text; returns the newly completed, supported sentences.
    pub fn push(&mut self, piece: &str) -> String {
        self.pending.push_str(piece);
        let mut passed = String::new();
        while let Some(end) = sentence_end(&self.pending) {
            let sentence: String = self.pending.drain(..end).collect();
            passed.push_str(&self.check(&sentence));
        }
        passed
    }

    /// Whether the sentence being written can no longer pass the check, whatever follows:
    /// it already holds a whole number (digits followed by something else) that no
    /// excerpt has, and every number must be in the excerpts. Generating the rest of it
    /// only delays the answer that replaces it. Never with the check off.
    pub fn doomed(&self) -> bool {
        if !self.checking {
            return false;
        }
        let pending = self.pending.trim_end_matches(|c: char| c.is_ascii_digit());
        numbers(pending)
            .iter()
            .any(|number| !self.numbers.contains(number))
    }

    /// Checks what is left when generation ends.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.check(&clean_answer(&rest))
    }

    fn check(&mut self, sentence: &str) -> String {
        if sentence.trim().is_empty() {
            return String::new();
        }
        let (kept, dropped) = if self.checking {
            supported_sentences(sentence, &self.excerpts)
        } else {
            (sentence.trim().to_owned(), 0)
        };
        self.dropped += dropped;
        if kept.is_empty() {
            return String::new();
        }
        let piece = if self.kept.is_empty() {
            kept.clone()
        } else {
            format!(" {kept}")
        };
        self.kept.push(kept);
        piece
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::tests::excerpt;

    #[test]
    fn a_sentence_with_a_made_up_number_is_doomed_once_the_number_ends() {
        let excerpts = [excerpt("The term ends on 31 December 2030 [1].")];
        let mut gate = SentenceGate::new(&excerpts, &[true]);
        gate.push("The term ends on 31 December 203");
        assert!(!gate.doomed(), "the number may still become 2030");
        gate.push("0 [1");
        assert!(
            !gate.doomed(),
            "2030 is in the excerpt; [1 may be a citation"
        );
        gate.push("] and renews for 5");
        assert!(!gate.doomed(), "5 may still become 50");
        gate.push(" years");
        assert!(gate.doomed(), "no excerpt says 5");
        assert_eq!(gate.push(" each time. "), "", "and the check drops it");
        assert_eq!(gate.dropped, 1);
        assert!(!gate.doomed(), "the next sentence starts clean");
    }

    #[test]
    fn a_line_adds_to_a_quote_only_with_words_the_quote_lacks() {
        let quote = "According to a.txt: “This Agreement is governed by the laws of Delaware.”";
        assert!(!adds_to(
            "The agreement is governed by Delaware law [1].",
            quote
        ));
        assert!(adds_to(
            "The agreement is governed by Delaware law and renews yearly [1].",
            quote
        ));
    }

    #[test]
    fn unsupported_sentences_are_dropped() {
        let excerpts = [excerpt(
            "This Agreement will be governed by the laws of the State of Illinois.",
        )];
        let (kept, dropped) = supported_sentences(
            "The agreement is governed by the laws of Illinois [1]. The franchise terminates on March 14th, 2016 under copyright protection.",
            &excerpts,
        );
        assert_eq!(
            kept,
            "The agreement is governed by the laws of Illinois [1]."
        );
        assert_eq!(dropped, 1);
        let excerpts = [excerpt(
            "This Agreement shall continue until December 31, 2020, unless extended.",
        )];
        let (kept, _) = supported_sentences(
            "The agreement shall continue until December 31, 2021.",
            &excerpts,
        );
        assert_eq!(kept, "", "a number not in the excerpts");
        let (kept, _) =
            supported_sentences("The agreement contains terms until December.", &excerpts);
        assert_eq!(kept, "", "no run of the excerpt's words");
        let (kept, _) =
            supported_sentences("It shall continue until December 31, 2020 [1].", &excerpts);
        assert_eq!(kept, "It shall continue until December 31, 2020 [1].");
    }
}
