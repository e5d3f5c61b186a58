//! Local text generation: loads a llama- or qwen2-architecture GGUF model (weights, tokenizer and chat
//! template all read from the file's own metadata), formats a chat, and decodes greedily on
//! the CPU with candle, streaming valid UTF-8 pieces to a callback. It is a pure function of
//! (model, messages, options): it knows nothing about tenants, storage or HTTP, keeps no
//! state between calls, logs no prompt or answer text, and must not be given anything it
//! should not show the model.
//!
//! Layout: [`load`] reads the file and builds a [`Generator`], converting weights through
//! [`weights`]; [`tokenizer`] is rebuilt from the file's vocabulary; [`chat`] renders the
//! messages with the file's chat template; [`generate`] runs prefill and greedy decoding
//! over the project's own transformer ([`model`]: batched prefill through candle's matmuls,
//! a key/value cache the caller owns; [`decode`]: one token at a time over 4- or 8-bit
//! weights, [`q4`] and [`q8`]).

mod chat;
mod decode;
mod draft;
mod generate;
mod linear;
mod load;
mod model;
mod panels;
mod pause;
mod prefill;
mod prefix;
mod q4;
mod q8;
mod tokenizer;
mod weights;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chat::ChatTemplate;
pub use pause::{PausePoint, with_pause_point};
use tokenizer::GgufTokenizer;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of the conversation given to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// Limits for one generation.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Most tokens to generate; the prompt must leave room for them in the context.
    pub max_new_tokens: usize,
    /// Extra textual stops: generation ends before the first occurrence, which is not returned.
    pub stop_sequences: Vec<String>,
    /// Most tokens drafted from the prompt and checked in one pass ([`draft`]); 0 decodes
    /// one token a pass.
    pub draft_tokens: usize,
}

/// [`GenerateOptions::draft_tokens`] by default.
pub const DEFAULT_DRAFT_TOKENS: usize = 8;

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            stop_sequences: Vec::new(),
            draft_tokens: DEFAULT_DRAFT_TOKENS,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model emitted its end-of-turn token (or another control token).
    EndOfSequence,
    MaxTokens,
    StopSequence,
    /// The callback asked to stop.
    Cancelled,
    /// The model's context window is full.
    ContextFull,
}

/// The result of one generation, with timings.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The full answer text (as streamed, stop sequence excluded).
    pub text: String,
    pub prompt_tokens: usize,
    /// Tokens sampled, not counting the end-of-sequence token.
    pub generated_tokens: usize,
    /// How many of them were drafted from the prompt and confirmed in a batched pass.
    pub drafted_tokens: usize,
    /// From the call until the first new token was sampled (includes tokenising and prefill).
    pub time_to_first_token: Duration,
    /// Time spent running the prompt through the model.
    pub prefill: Duration,
    pub total: Duration,
    pub stop_reason: StopReason,
}

#[derive(thiserror::Error, Debug)]
pub enum LlmError {
    #[error("model file {} not found: run `models/fetch.sh` to download it (`models/fetch.sh --optional NAME` for an optional model such as qwen2.5-coder-0.5b)", path.display())]
    ModelMissing { path: PathBuf },
    #[error("model file {} cannot be used ({reason}): check it, or delete it and run `models/fetch.sh` again", path.display())]
    ModelCorrupt { path: PathBuf, reason: String },
    #[error("unsupported model: {0}")]
    UnsupportedModel(String),
    #[error(
        "prompt is {prompt_tokens} tokens but the context holds {context_length} including {max_new_tokens} new tokens: shorten the prompt or ask for fewer new tokens"
    )]
    PromptTooLong {
        prompt_tokens: usize,
        max_new_tokens: usize,
        context_length: usize,
    },
    #[error("inference failed: {0}: retry, and report it if it persists")]
    Inference(String),
}

impl From<candle_core::Error> for LlmError {
    fn from(e: candle_core::Error) -> Self {
        LlmError::Inference(e.to_string())
    }
}

/// How weights are held in memory after loading. Prefill multiplies a whole prompt chunk
/// by each weight: a batched GEMM (the project's int8 one, or candle's cache-blocked f32
/// gemm) batches tokens far better than candle's quantised kernels. Decoding multiplies one row: it is bound by the bytes
/// read, so the project's own kernels over 4- and 8-bit blocks ([`q4`], [`q8`]) are several
/// times cheaper than f32. The output projection (only one row ever meets it) is always
/// held that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// Exactly as stored in the file, for prefill and decoding (smallest; slow for Q4_1
    /// and other formats candle has no SIMD kernel for).
    AsStored,
    /// Everything dequantised to f32, for prefill and decoding (reads ~4 bytes a weight
    /// per token).
    F32,
    /// Every quantised tensor requantised to Q8_0, for prefill (candle's kernel) and
    /// decoding (the project's, over the same blocks).
    Q8_0,
    /// Two copies of the transformer layers: for batched prefill, int8 with a scale per
    /// row on the project's GEMM ([`crate::kernels`]; about 3× candle's f32 matmul) where
    /// the CPU has AVX-512 VNNI and `BULKHEAD_KERNELS` is not `f32`, else f32 as
    /// `FastF32`; for decoding the file's own Q4_1 blocks (exactly the same weights), or
    /// 8-bit blocks when the file holds another format. The fastest for both phases.
    #[default]
    Fast,
    /// `Fast` with the f32 prefill copy on candle's gemm (what `Fast` was before the int8
    /// kernels; about 80 MB more than `F32` for SmolLM2-135M), kept for comparison.
    FastF32,
}

/// Options for [`Generator::load_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    pub weights: WeightFormat,
}

/// A loaded model, ready to generate. Cheap to share: `generate` takes `&self`, the weights
/// are read-only and each call owns its key/value cache and buffers, so calls from several
/// threads run independently.
pub struct Generator {
    model: model::Model,
    /// The model after the prompt's first (system) turn, for the last few distinct
    /// system turns: each ask then prefills only its own excerpts and question.
    prefixes: std::sync::Mutex<Vec<prefix::Prefix>>,
    tokenizer: GgufTokenizer,
    template: ChatTemplate,
    im_start: u32,
    im_end: u32,
    bos: Option<u32>,
    eos: u32,
    context_length: usize,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("context_length", &self.context_length)
            .field("vocab_size", &self.tokenizer.vocab_size())
            .finish_non_exhaustive()
    }
}

impl Generator {
    /// Loads a llama- or qwen2-architecture GGUF with the fastest in-memory weight layout.
    pub fn load(gguf_path: &Path) -> Result<Generator, LlmError> {
        Self::load_with(gguf_path, LoadOptions::default())
    }

    /// Tokens `text` occupies when placed in a message (no chat framing).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text).map_or(0, |ids| ids.len())
    }

    /// The usable context window in tokens (prompt plus generated tokens).
    pub fn context_length(&self) -> usize {
        self.context_length
    }
}

// `generate` is shared across request threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Generator>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    pub(super) fn model_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    }

    /// The optional Qwen2.5-Coder-0.5B-Instruct file (`models/fetch.sh --optional
    /// qwen2.5-coder-0.5b`), when it has been fetched; tests that need it say they skip.
    pub(super) fn optional_qwen() -> Option<&'static Generator> {
        static GENERATOR: OnceLock<Option<Generator>> = OnceLock::new();
        GENERATOR
            .get_or_init(|| {
                let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
                    "models/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                );
                if !path.exists() {
                    eprintln!(
                        "skipped: optional model {} is not fetched (models/fetch.sh --optional qwen2.5-coder-0.5b)",
                        path.display()
                    );
                    return None;
                }
                Some(Generator::load(&path).expect("load the optional qwen2 model"))
            })
            .as_ref()
    }

    pub(super) fn generator() -> &'static Generator {
        static GENERATOR: OnceLock<Generator> = OnceLock::new();
        GENERATOR.get_or_init(|| Generator::load(&model_path()).expect("load the test model"))
    }

    pub(super) fn grounded_chat() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new(Role::System, "Answer only from the excerpt."),
            ChatMessage::new(
                Role::User,
                "Excerpt: The agreement terminates on 31 March 2027.\nQuestion: When does the agreement terminate?",
            ),
        ]
    }

    /// The qwen2 architecture (query/key/value biases, the halves rotary layout), its own
    /// tokenizer (Qwen2's pre-tokenizer: ids as its tokenizer.json gives them) and ChatML.
    #[test]
    fn optional_qwen2_model_tokenizes_and_answers() {
        let Some(qwen) = optional_qwen() else {
            return;
        };
        let ids = |text: &str| qwen.tokenizer.encode(text).expect("encode");
        assert_eq!(ids("Hello world"), [9707, 1879]);
        assert_eq!(ids("Hello, world!"), [9707, 11, 1879, 0]);
        assert_eq!(ids("2027").len(), 4, "qwen2 splits digits singly");
        assert_eq!(qwen.im_start, 151644);
        assert_eq!(qwen.im_end, 151645);
        let generation = qwen
            .generate(
                &grounded_chat(),
                &GenerateOptions {
                    max_new_tokens: 32,
                    ..GenerateOptions::default()
                },
                &mut |_| true,
            )
            .expect("generate");
        eprintln!("qwen2 answer: {:?}", generation.text);
        assert!(generation.text.contains("2027"), "{:?}", generation.text);
        assert!(generation.text.contains("March"), "{:?}", generation.text);
    }

    #[test]
    fn missing_file_is_model_missing() {
        let err = Generator::load(Path::new("/nonexistent/model.gguf")).expect_err("missing");
        assert!(matches!(err, LlmError::ModelMissing { .. }), "{err}");
        assert!(err.to_string().contains("models/fetch.sh"));
    }

    #[test]
    fn garbage_and_truncated_files_are_model_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("garbage.gguf");
        std::fs::write(&garbage, b"this is not a gguf file at all, just text").expect("write");
        let err = Generator::load(&garbage).expect_err("garbage");
        assert!(matches!(err, LlmError::ModelCorrupt { .. }), "{err}");

        let empty = dir.path().join("empty.gguf");
        std::fs::write(&empty, b"").expect("write");
        let err = Generator::load(&empty).expect_err("empty");
        assert!(matches!(err, LlmError::ModelCorrupt { .. }), "{err}");

        let real = std::fs::read(model_path()).expect("read model");
        for cut in [real.len() / 2, real.len() - 1, 1 << 20, 64] {
            let truncated = dir.path().join("truncated.gguf");
            std::fs::write(&truncated, &real[..cut]).expect("write");
            let err = Generator::load(&truncated).expect_err("truncated");
            assert!(
                matches!(err, LlmError::ModelCorrupt { .. }),
                "cut {cut}: {err}"
            );
        }
    }
}
