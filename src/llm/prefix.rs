//! Reuse of the prompt's first turn (issue 10): every grounded answer of a tenant starts
//! with the same system turn, so the model's state after it (its KV cache) is computed
//! once and copied into each ask's own cache, which then prefills only its excerpts and
//! question. The copy is a few MB (~100 tokens × 46 KB for SmolLM2-135M), far cheaper
//! than recomputing it.

use std::sync::PoisonError;

use super::chat::ChatTemplate;
use super::model::KvCache;
use super::{ChatMessage, Generator, LlmError, Role};

/// Distinct first turns kept (one per tenant name in use, typically). Each holds the KV
/// cache of about a hundred tokens: ~46 KB a token for SmolLM2-135M, so ~5 MB each.
const KEPT: usize = 8;

/// The model after one first turn.
pub(super) struct Prefix {
    ids: Vec<u32>,
    cache: KvCache,
}

impl Generator {
    /// A cache with room for `capacity` positions for `prompt` (the ids of `messages`) and
    /// how many of its tokens it already holds: the first turn's, when a later turn follows.
    pub(super) fn cache_for(
        &self,
        prompt: &[u32],
        messages: &[ChatMessage],
        capacity: usize,
    ) -> Result<(KvCache, usize), LlmError> {
        let dims = &self.model.dims;
        let fresh = || KvCache::new(dims, self.model.layers.len(), capacity);
        let length = self.first_turn_len(messages)?;
        if length == 0 || length >= prompt.len() {
            return Ok((fresh(), 0));
        }
        let prefix = &prompt[..length];
        {
            let mut kept = self.prefixes.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = kept.iter().position(|entry| entry.ids == prefix) {
                // Most recently used last.
                let entry = kept.remove(at);
                let cache = entry.cache.with_capacity(dims, capacity);
                kept.push(entry);
                return Ok((cache, length));
            }
        }
        // Computed outside the lock: a concurrent ask of another tenant does not wait.
        let mut cache = fresh();
        self.prefill(&mut cache, prefix)?;
        let mut kept = self.prefixes.lock().unwrap_or_else(PoisonError::into_inner);
        if !kept.iter().any(|entry| entry.ids == prefix) {
            if kept.len() >= KEPT {
                kept.remove(0);
            }
            kept.push(Prefix {
                ids: prefix.to_vec(),
                cache: cache.with_capacity(dims, length),
            });
        }
        Ok((cache, length))
    }

    /// Tokens of the prompt up to the end of its first turn (the system turn: the
    /// messages' own, else the template's default), BOS included; 0 when there is none.
    fn first_turn_len(&self, messages: &[ChatMessage]) -> Result<usize, LlmError> {
        let ChatTemplate::ChatMl { default_system } = &self.template;
        let system = match messages.first() {
            Some(first) if first.role == Role::System => first.content.as_str(),
            _ => match default_system {
                Some(system) => system.as_str(),
                None => return Ok(0),
            },
        };
        Ok(usize::from(self.bos.is_some()) + self.turn_ids("system", system)?.len())
    }
}

#[cfg(test)]
mod tests {
    use crate::llm::GenerateOptions;
    use crate::llm::model::KvCache;
    use crate::llm::tests::{generator, grounded_chat};

    #[test]
    fn a_reused_first_turn_answers_as_a_fresh_prefill() {
        let generator = generator();
        let messages = grounded_chat();
        let prompt = generator.prompt_ids(&messages).unwrap();
        let length = generator.first_turn_len(&messages).unwrap();
        assert!(length > 10 && length < prompt.len());
        assert_eq!(
            prompt[..length].last(),
            generator.tokenizer.encode("\n").unwrap().last()
        );
        let options = GenerateOptions {
            max_new_tokens: 24,
            ..GenerateOptions::default()
        };
        // The first call fills the cache, the second reuses it: same text; and the
        // same as a prefill without any cache.
        let first = generator
            .generate(&messages, &options, &mut |_| true)
            .unwrap();
        let second = generator
            .generate(&messages, &options, &mut |_| true)
            .unwrap();
        assert_eq!(first.text, second.text);
        let capacity = prompt.len() + 4;
        let dims = &generator.model.dims;
        let mut fresh = KvCache::new(dims, generator.model.layers.len(), capacity);
        let mut logits = generator.prefill(&mut fresh, &prompt).unwrap();
        let mut scratch = crate::llm::decode::Scratch::new(dims, 1);
        let mut text = Vec::new();
        for _ in 0..4 {
            let next = generator.pick(&logits, &[]).unwrap();
            text.extend_from_slice(generator.tokenizer.bytes(next));
            generator
                .model
                .step(&mut fresh, &mut scratch, next, &mut logits)
                .unwrap();
        }
        let fresh_start = String::from_utf8_lossy(&text).into_owned();
        assert!(
            first.text.starts_with(fresh_start.trim_end()),
            "{:?} vs {:?}",
            first.text,
            fresh_start
        );
    }
}
