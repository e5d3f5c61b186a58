//! Drafts from the prompt (issue 10): a grounded answer copies the words of its excerpt,
//! so the tokens that followed the answer's last few tokens where they occur in the
//! prompt are a good guess at what comes next. The guess (the draft) goes through the
//! model in one pass with the token just picked, which gives the logits after each of
//! them; the draft's tokens are taken for as long as each is what greedy decoding picks
//! from the logits before it, and the first one that is not is replaced by the pick. So
//! the answer is the one greedy decoding gives (up to the rounding of the batched pass),
//! and a pass over several tokens costs little more than one token, because decoding is
//! bound by reading the weights, which one pass reads once.
//!
//! This is prompt-lookup decoding (Saxena, 2023), a form of speculative decoding that
//! needs no second model.

use super::decode::Scratch;
use super::generate::Output;
use super::model::KvCache;
use super::{Generator, LlmError, StopReason};

/// Longest run of the answer's last tokens looked up in the prompt; shorter runs are
/// tried when it does not occur.
const MAX_MATCH: usize = 3;
/// Shortest run looked up: one token recurs too often to say what follows it.
const MIN_MATCH: usize = 2;

/// The tokens that followed the most recent earlier occurrence of the last tokens of
/// `history` (the longest of up to [`MAX_MATCH`] tokens that occurs), at most `max`: empty
/// when none occurs.
pub(super) fn lookup(history: &[u32], max: usize) -> &[u32] {
    if max == 0 {
        return &[];
    }
    for run in (MIN_MATCH..=MAX_MATCH.min(history.len().saturating_sub(1))).rev() {
        let tail = &history[history.len() - run..];
        // Occurrences that end before the tail's own last token, latest first.
        let found = (0..history.len() - run)
            .rev()
            .find(|&start| &history[start..start + run] == tail);
        if let Some(start) = found {
            let from = start + run;
            return &history[from..(from + max).min(history.len())];
        }
    }
    &[]
}

/// Tokens drafted at first, and after a draft cut short at its first token.
const START: usize = 4;

/// The model's state while decoding: its cache, its buffers, the logits after the last
/// token the cache holds, room for a pass's logits row by row, and how long the next
/// draft may be.
pub(super) struct Pass {
    pub(super) cache: KvCache,
    scratch: Scratch,
    pub(super) logits: Vec<f32>,
    /// The tokens of a pass: the one just taken and the draft after it.
    fed: Vec<u32>,
    rows: Vec<f32>,
    /// A row costs about a quarter of a pass of one token (its products' arithmetic; the
    /// weights are read once a pass), so a draft that is cut short early costs more than
    /// it saves: the length grows by two after a draft taken whole, and falls to one
    /// more than what was taken after one cut short, as speculative decoders commonly
    /// adapt it.
    draft_length: usize,
    max_draft: usize,
}

impl Pass {
    /// Drafts of up to `max_draft` tokens (0: none).
    pub(super) fn new(
        cache: KvCache,
        scratch: Scratch,
        logits: Vec<f32>,
        max_draft: usize,
    ) -> Self {
        Self {
            cache,
            scratch,
            logits,
            fed: Vec::with_capacity(max_draft + 1),
            rows: Vec::new(),
            draft_length: START.min(max_draft),
            max_draft,
        }
    }

    /// How many tokens the next draft may have.
    pub(super) fn draft_length(&self) -> usize {
        self.draft_length
    }

    fn drafted(&mut self, drafted: usize, taken: usize) {
        self.draft_length = if taken == drafted {
            (self.draft_length + 2).min(self.max_draft)
        } else {
            (taken + 1).min(self.max_draft)
        };
    }
}

impl Generator {
    /// Runs `next` (just taken, the last token of `out`'s history) through the model,
    /// with a draft of at most `room` tokens after it in the same pass ([`lookup`]). The
    /// draft's tokens are taken while each is greedy decoding's pick from the logits
    /// before it (streamed as [`Generator::take`] does); the cache then forgets the rest,
    /// and `pass.logits` are the logits after the last token taken. Returns why
    /// generation ends, if a taken token ends it.
    pub(super) fn advance(
        &self,
        pass: &mut Pass,
        out: &mut Output,
        next: u32,
        room: usize,
        on_token: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Option<StopReason>, LlmError> {
        let model = &self.model;
        pass.fed.clear();
        pass.fed.push(next);
        pass.fed.extend_from_slice(lookup(out.history(), room));
        if pass.fed.len() == 1 {
            model.step(&mut pass.cache, &mut pass.scratch, next, &mut pass.logits)?;
            return Ok(None);
        }
        let vocab = model.dims.vocab;
        let start = pass.cache.len;
        pass.rows.resize(pass.fed.len() * vocab, 0.0);
        model.step_rows(
            &mut pass.cache,
            &mut pass.scratch,
            &pass.fed,
            &mut pass.rows,
        )?;
        let draft = &pass.fed[1..];
        let (mut taken, mut stop) = (0, None);
        for (row, &token) in pass.rows.chunks_exact(vocab).zip(draft) {
            if self.pick(row, &out.recent)? != token {
                break;
            }
            taken += 1;
            stop = self.take(out, token, on_token);
            if stop == Some(StopReason::EndOfSequence) {
                break;
            }
            out.drafted();
            if stop.is_some() {
                break;
            }
        }
        let drafted = draft.len();
        pass.drafted(drafted, taken);
        pass.cache.truncate(&model.dims, start + 1 + taken);
        pass.logits
            .copy_from_slice(&pass.rows[taken * vocab..(taken + 1) * vocab]);
        Ok(stop)
    }
}

#[cfg(test)]
mod tests {
    use super::lookup;
    use crate::llm::GenerateOptions;
    use crate::llm::decode::tests::fixed_prompts;
    use crate::llm::tests::generator;

    /// Issue 10's bar: greedy answers to twenty fixed prompts are the same tokens with
    /// drafts as one token a pass, and the grounded ones take many tokens from drafts.
    #[test]
    fn drafts_give_the_answers_of_one_token_a_pass() {
        let g = generator();
        let (mut same, mut generated, mut drafted) = (0, 0, 0);
        let prompts = fixed_prompts();
        for (index, chat) in prompts.iter().enumerate() {
            let run = |draft_tokens| {
                let options = GenerateOptions {
                    max_new_tokens: 48,
                    draft_tokens,
                    ..GenerateOptions::default()
                };
                g.generate(chat, &options, &mut |_| true).expect("generate")
            };
            let (plain, with_drafts) = (run(0), run(8));
            assert_eq!(plain.drafted_tokens, 0);
            if plain.text == with_drafts.text {
                same += 1;
            } else {
                eprintln!("differs: {:?}\n    vs {:?}", plain.text, with_drafts.text);
            }
            // The first twelve answer from an excerpt; the rest are open questions.
            if index < 12 {
                generated += with_drafts.generated_tokens;
                drafted += with_drafts.drafted_tokens;
            }
        }
        eprintln!(
            "{same} of {} answers the same; grounded ones: {drafted} of {generated} tokens drafted",
            prompts.len()
        );
        // Each pass is exactly one-token decoding's arithmetic, row by row: nothing differs.
        assert_eq!(same, prompts.len());
        // Measured: 76 of 426 (these excerpts are one sentence; the appliance's are longer).
        assert!(
            drafted * 10 >= generated,
            "{drafted} of {generated} drafted"
        );
    }

    #[test]
    fn drafts_continue_the_latest_occurrence_of_the_longest_tail() {
        // "governed by the laws of Delaware" in the prompt; the answer has reached "by the".
        let history = [1, 7, 8, 9, 10, 11, 12, 2, 9, 5, 9, 3, 8, 9];
        assert_eq!(lookup(&history, 4), &[10, 11, 12, 2], "run of 2: (8, 9)");
        assert_eq!(lookup(&history, 2), &[10, 11]);
        // A run of two at least: a lone token recurring drafts nothing.
        assert!(lookup(&[4, 9, 3, 6, 9], 8).is_empty());
        assert_eq!(lookup(&[4, 9, 3, 6, 4, 9], 8), &[3, 6, 4, 9]);
        assert!(lookup(&[4, 5, 6], 8).is_empty(), "nothing repeats");
        assert!(lookup(&history, 0).is_empty());
        assert!(lookup(&[], 3).is_empty());
    }
}
