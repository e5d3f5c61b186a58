//! Generation: prefill in chunks, then greedy decoding with a repeat penalty, stop tokens,
//! stop sequences and a token budget, streaming whole UTF-8 characters to a callback.

use std::time::{Duration, Instant};

use super::decode::Scratch;
use super::draft::Pass;
use super::model::KvCache;
use super::tokenizer::Utf8Stream;
use super::{ChatMessage, GenerateOptions, Generation, Generator, LlmError, StopReason};

/// Tokens fed per forward pass during prefill: bounds the attention scratch memory
/// (heads × chunk × context floats) on long prompts.
const PREFILL_CHUNK: usize = 512;
/// Mild repeat penalty over recently generated tokens: small models loop without it. The
/// prompt is left out on purpose so grounded answers may quote the excerpts.
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_LAST_N: usize = 64;

impl Generator {
    /// Deterministic (greedy / argmax) decoding; calls `on_token` with each new piece of
    /// decoded text as soon as it is available (always whole UTF-8 characters; text that might
    /// begin a stop sequence is held back until it is known not to). `on_token` returns false
    /// to cancel. Safe to call concurrently from several threads.
    pub fn generate(
        &self,
        messages: &[ChatMessage],
        options: &GenerateOptions,
        on_token: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, LlmError> {
        let started = Instant::now();
        let prompt = self.prompt_ids(messages)?;
        let prompt_tokens = prompt.len();
        if prompt_tokens == 0 || prompt_tokens + options.max_new_tokens > self.context_length {
            return Err(LlmError::PromptTooLong {
                prompt_tokens,
                max_new_tokens: options.max_new_tokens,
                context_length: self.context_length,
            });
        }
        let mut generation = Generation {
            text: String::new(),
            prompt_tokens,
            generated_tokens: 0,
            drafted_tokens: 0,
            time_to_first_token: Duration::ZERO,
            prefill: Duration::ZERO,
            total: Duration::ZERO,
            stop_reason: StopReason::MaxTokens,
        };
        if options.max_new_tokens == 0 {
            generation.total = started.elapsed();
            return Ok(generation);
        }

        // This generation's own cache, sized for it (it may already hold the prompt's
        // first turn), and buffers: nothing is allocated per token.
        let prefill_started = Instant::now();
        let capacity = prompt_tokens + options.max_new_tokens;
        let (mut cache, cached) = self.cache_for(&prompt, messages, capacity)?;
        let logits = self.prefill(&mut cache, &prompt[cached..])?;
        let scratch = Scratch::new(&self.model.dims, options.draft_tokens + 1);
        let mut pass = Pass::new(cache, scratch, logits, options.draft_tokens);
        generation.prefill = prefill_started.elapsed();

        let mut out = Output {
            stops: StopMatcher::new(&options.stop_sequences),
            utf8: Utf8Stream::default(),
            recent: Vec::with_capacity(REPEAT_LAST_N),
            history: prompt,
            max_new_tokens: options.max_new_tokens,
            generation,
        };
        let stop_reason = loop {
            let next = self.pick(&pass.logits, &out.recent)?;
            if out.generation.generated_tokens == 0 {
                out.generation.time_to_first_token = started.elapsed();
            }
            if let Some(reason) = self.take(&mut out, next, on_token) {
                break reason;
            }
            if pass.cache.len >= self.context_length {
                break StopReason::ContextFull;
            }
            // The scheduler may have lent this worker to a premium ask: wait here, between
            // tokens, until it is back.
            super::pause::pause_point();
            let room = (options.max_new_tokens - out.generation.generated_tokens)
                .min(self.context_length - pass.cache.len - 1)
                .min(pass.draft_length());
            if let Some(reason) = self.advance(&mut pass, &mut out, next, room, on_token)? {
                break reason;
            }
        };
        let Output {
            mut stops,
            mut utf8,
            mut generation,
            ..
        } = out;

        if !matches!(
            stop_reason,
            StopReason::Cancelled | StopReason::StopSequence
        ) {
            // Release text held back as a possible stop-sequence start, and any partial
            // character the model never completed.
            let mut rest = stops.finish();
            rest.push_str(&utf8.finish());
            if !rest.is_empty() {
                generation.text.push_str(&rest);
                on_token(&rest);
            }
        }
        generation.stop_reason = stop_reason;
        generation.total = started.elapsed();
        tracing::debug!(
            prompt_tokens,
            generated_tokens = generation.generated_tokens,
            prefill_ms = generation.prefill.as_millis() as u64,
            total_ms = generation.total.as_millis() as u64,
            stop_reason = ?stop_reason,
            "generation finished"
        );
        Ok(generation)
    }

    /// Takes `token` as the answer's next: streams its text, and says why generation
    /// ends if it does (an end token, a stop sequence, a cancelled stream, the budget).
    pub(super) fn take(
        &self,
        out: &mut Output,
        token: u32,
        on_token: &mut dyn FnMut(&str) -> bool,
    ) -> Option<StopReason> {
        if token == self.eos || token == self.im_end || self.tokenizer.is_control(token) {
            return Some(StopReason::EndOfSequence);
        }
        let generation = &mut out.generation;
        generation.generated_tokens += 1;
        if out.recent.len() == REPEAT_LAST_N {
            out.recent.remove(0);
        }
        out.recent.push(token);
        out.history.push(token);
        let piece = out.utf8.push(self.tokenizer.bytes(token));
        match out.stops.push(&piece) {
            Step::Emit(text) => {
                if !text.is_empty() {
                    generation.text.push_str(&text);
                    if !on_token(&text) {
                        return Some(StopReason::Cancelled);
                    }
                }
            }
            Step::Stop(text) => {
                if !text.is_empty() {
                    generation.text.push_str(&text);
                    // Stopping anyway: the callback's answer changes nothing.
                    on_token(&text);
                }
                return Some(StopReason::StopSequence);
            }
        }
        (generation.generated_tokens >= out.max_new_tokens).then_some(StopReason::MaxTokens)
    }

    /// Runs `tokens` through the model after the tokens `cache` holds, in chunks of
    /// [`PREFILL_CHUNK`] tokens, and returns the logits after the last one.
    pub(super) fn prefill(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
    ) -> Result<Vec<f32>, LlmError> {
        let mut logits = None;
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            logits = Some(self.model.prefill(cache, chunk)?);
        }
        logits.ok_or_else(|| LlmError::Inference("empty prompt".to_string()))
    }

    /// Greedy choice after the repeat penalty; ties go to the lowest id, so it is deterministic.
    pub(super) fn pick(&self, logits: &[f32], recent: &[u32]) -> Result<u32, LlmError> {
        // The penalty applies once per distinct recent token.
        let penalised = |id: usize, l: f32| {
            if recent.contains(&(id as u32)) {
                if l >= 0.0 {
                    l / REPEAT_PENALTY
                } else {
                    l * REPEAT_PENALTY
                }
            } else {
                l
            }
        };
        let mut best: Option<(usize, f32)> = None;
        for (i, l) in logits.iter().enumerate() {
            if l.is_nan() {
                continue;
            }
            // Only a logit that could win needs the penalty looked up.
            if best.is_some_and(|(_, b)| *l <= b) {
                continue;
            }
            let l = penalised(i, *l);
            if best.is_none_or(|(_, b)| l > b) {
                best = Some((i, l));
            }
        }
        let (id, _) = best.ok_or_else(|| LlmError::Inference("model produced no logits".into()))?;
        u32::try_from(id).map_err(|_| LlmError::Inference("token id out of range".into()))
    }
}

/// What a generation has produced so far, and what ends it.
pub(super) struct Output<'a> {
    generation: Generation,
    stops: StopMatcher<'a>,
    utf8: Utf8Stream,
    /// The last [`REPEAT_LAST_N`] tokens generated, for the repeat penalty.
    pub(super) recent: Vec<u32>,
    /// The prompt and every token generated, where drafts are looked up.
    history: Vec<u32>,
    max_new_tokens: usize,
}

impl Output<'_> {
    /// The prompt and every token taken so far.
    pub(super) fn history(&self) -> &[u32] {
        &self.history
    }

    /// Counts a token that came from a draft.
    pub(super) fn drafted(&mut self) {
        self.generation.drafted_tokens += 1;
    }
}

/// Holds back streamed text that could be the start of a stop sequence.
struct StopMatcher<'a> {
    stops: Vec<&'a str>,
    held: String,
}

enum Step {
    /// Text now safe to show.
    Emit(String),
    /// A stop sequence matched; the text before it is the last to show.
    Stop(String),
}

impl<'a> StopMatcher<'a> {
    fn new(stops: &'a [String]) -> Self {
        Self {
            stops: stops
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect(),
            held: String::new(),
        }
    }

    fn push(&mut self, piece: &str) -> Step {
        if self.stops.is_empty() {
            return Step::Emit(piece.to_string());
        }
        self.held.push_str(piece);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            self.held.truncate(at);
            return Step::Stop(std::mem::take(&mut self.held));
        }
        // Longest tail of the held text that is a proper prefix of some stop sequence.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .filter(|k| s.is_char_boundary(*k))
                    .filter(|k| self.held.ends_with(&s[..*k]))
            })
            .max()
            .unwrap_or(0);
        let emit_len = self.held.len() - keep;
        let rest = self.held.split_off(emit_len);
        Step::Emit(std::mem::replace(&mut self.held, rest))
    }

    fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tests::{generator, grounded_chat};
    use crate::llm::{ChatMessage, Role};

    #[test]
    fn grounded_answer_mentions_the_date() {
        let mut streamed = String::new();
        let generation = generator()
            .generate(
                &grounded_chat(),
                &GenerateOptions {
                    max_new_tokens: 48,
                    ..GenerateOptions::default()
                },
                &mut |piece| {
                    streamed.push_str(piece);
                    true
                },
            )
            .expect("generate");
        eprintln!(
            "answer: {:?} ({:?})",
            generation.text, generation.stop_reason
        );
        assert!(generation.text.contains("2027"), "{:?}", generation.text);
        assert_eq!(streamed, generation.text);
        assert!(generation.generated_tokens > 0);
        assert!(generation.time_to_first_token <= generation.total);
    }

    #[test]
    fn generation_is_deterministic_and_concurrent() {
        let options = GenerateOptions {
            max_new_tokens: 24,
            ..GenerateOptions::default()
        };
        let run = || {
            generator()
                .generate(&grounded_chat(), &options, &mut |_| true)
                .expect("generate")
                .text
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(run);
            let b = s.spawn(run);
            (a.join().expect("thread"), b.join().expect("thread"))
        });
        assert_eq!(a, b);
        assert_eq!(a, run());
    }

    #[test]
    fn cancel_and_stop_sequences() {
        let g = generator();
        let mut calls = 0;
        let cancelled = g
            .generate(&grounded_chat(), &GenerateOptions::default(), &mut |_| {
                calls += 1;
                false
            })
            .expect("generate");
        assert_eq!(cancelled.stop_reason, StopReason::Cancelled);
        assert_eq!(calls, 1);

        let full = g
            .generate(
                &grounded_chat(),
                &GenerateOptions {
                    max_new_tokens: 24,
                    ..GenerateOptions::default()
                },
                &mut |_| true,
            )
            .expect("generate");
        let stop = "2027".to_string();
        let mut streamed = String::new();
        let stopped = g
            .generate(
                &grounded_chat(),
                &GenerateOptions {
                    max_new_tokens: 24,
                    stop_sequences: vec![stop.clone()],
                    ..GenerateOptions::default()
                },
                &mut |piece| {
                    streamed.push_str(piece);
                    true
                },
            )
            .expect("generate");
        assert_eq!(stopped.stop_reason, StopReason::StopSequence);
        let at = full.text.find(&stop).expect("answer mentions 2027");
        assert_eq!(stopped.text, full.text[..at]);
        assert_eq!(streamed, stopped.text);

        let limited = g
            .generate(
                &grounded_chat(),
                &GenerateOptions {
                    max_new_tokens: 2,
                    ..GenerateOptions::default()
                },
                &mut |_| true,
            )
            .expect("generate");
        assert_eq!(limited.stop_reason, StopReason::MaxTokens);
        assert_eq!(limited.generated_tokens, 2);
    }

    #[test]
    fn prompt_too_long_is_rejected() {
        let g = generator();
        let long = "word ".repeat(g.context_length());
        let err = g
            .generate(
                &[ChatMessage::new(Role::User, long)],
                &GenerateOptions::default(),
                &mut |_| true,
            )
            .expect_err("prompt too long");
        assert!(matches!(err, LlmError::PromptTooLong { .. }), "{err}");
    }

    #[test]
    fn stop_matcher_holds_back_prefixes() {
        let stops = vec!["END".to_string(), "ß!".to_string()];
        let mut m = StopMatcher::new(&stops);
        assert!(matches!(m.push("abcE"), Step::Emit(t) if t == "abc"));
        assert!(matches!(m.push("Nx"), Step::Emit(t) if t == "ENx"));
        assert!(matches!(m.push("yß"), Step::Emit(t) if t == "y"));
        assert!(matches!(m.push("!z"), Step::Stop(t) if t.is_empty()));
        let mut m = StopMatcher::new(&stops);
        assert!(matches!(m.push("tail EN"), Step::Emit(t) if t == "tail "));
        assert_eq!(m.finish(), "EN");
    }
}
