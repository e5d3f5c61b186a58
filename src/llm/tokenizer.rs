//! Byte-level BPE tokenizer rebuilt from a GGUF file's own metadata (vocabulary, merges,
//! token types, pre-tokenizer name), plus the streaming byte-to-text decoder generation
//! needs. candle's `TokenizerFromGguf` assumes GPT-2 with a prefix space, which gives
//! wrong ids for models such as SmolLM2, so the pipeline is assembled here by hand.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::LlmError;

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Llama 3's pre-tokenizer regex (llama.cpp `LLAMA_VOCAB_PRE_TYPE_LLAMA3`).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's pre-tokenizer regex (llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`, the `Split` of the
/// model's own tokenizer.json): Llama 3's with single digits.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Tokenizer built from GGUF metadata.
pub(crate) struct GgufTokenizer {
    /// Parses control tokens written as text (`<|im_start|>`): only for trusted template text.
    with_special: Tokenizer,
    /// Treats everything as plain text, so document or user content spelling a control token
    /// cannot forge a role boundary in the prompt.
    plain: Tokenizer,
    /// Raw bytes each id stands for (byte-level alphabet undone); control tokens hold their text.
    token_bytes: Vec<Vec<u8>>,
    is_control: Vec<bool>,
    vocab: HashMap<String, u32>,
}

impl GgufTokenizer {
    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
    pub(crate) fn from_metadata(md: &HashMap<String, Value>) -> Result<Self, LlmError> {
        let model = md_string(md, "tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(LlmError::UnsupportedModel(format!(
                "tokenizer type `{model}` is not supported (only byte-level BPE, `gpt2`): use a GGUF with a BPE tokenizer"
            )));
        }
        let pre = md
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map_or("default", String::as_str);

        let tokens = md_array(md, "tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| unsupported_metadata("tokenizer.ggml.tokens", &e))?;
        let n_tokens = u32::try_from(tokens.len()).map_err(|_| {
            LlmError::UnsupportedModel("vocabulary has more than 2^32 tokens".to_string())
        })?;
        let token_types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .and_then(|a| a.iter().map(Value::to_i32).collect())
                .map_err(|e| unsupported_metadata("tokenizer.ggml.token_type", &e))?,
            None => vec![1; tokens.len()],
        };
        if token_types.len() != tokens.len() {
            return Err(LlmError::UnsupportedModel(
                "token type list and vocabulary differ in length: re-export the GGUF".to_string(),
            ));
        }
        let merges: Merges = md_array(md, "tokenizer.ggml.merges")?
            .iter()
            .map(|v| {
                let s = v
                    .to_string()
                    .map_err(|e| unsupported_metadata("tokenizer.ggml.merges", &e))?;
                s.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| {
                        LlmError::UnsupportedModel(format!(
                            "merge `{s}` has no space separator: re-export the GGUF"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;

        let vocab: HashMap<String, u32> = tokens.iter().cloned().zip(0..n_tokens).collect();
        let bpe_vocab: Vocab = vocab.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(bpe_vocab, merges)
            // Llama 3 style vocabularies hold whole words that merges would not reach.
            .ignore_merges(pre == "llama-bpe" || pre == "llama3")
            .build()
            .map_err(|e| LlmError::UnsupportedModel(format!("cannot build bpe model: {e}")))?;

        let pre_tokenizer = pre_tokenizer_for(pre)?;
        let mut plain = Tokenizer::new(bpe);
        plain.with_pre_tokenizer(Some(pre_tokenizer));
        plain.with_decoder(Some(ByteLevelDecoder::default()));

        let mut with_special = plain.clone();
        let specials = added_tokens(&tokens, &token_types, TOKEN_TYPE_CONTROL, true);
        with_special
            .add_special_tokens(specials)
            .map_err(|e| LlmError::UnsupportedModel(format!("bad control token: {e}")))?;
        let user_defined = added_tokens(&tokens, &token_types, TOKEN_TYPE_USER_DEFINED, false);
        if !user_defined.is_empty() {
            // User-defined tokens are matched whole in llama.cpp, in any text.
            plain
                .add_tokens(user_defined.clone())
                .map_err(|e| LlmError::UnsupportedModel(format!("bad user token: {e}")))?;
            with_special
                .add_tokens(user_defined)
                .map_err(|e| LlmError::UnsupportedModel(format!("bad user token: {e}")))?;
        }

        let is_control: Vec<bool> = token_types
            .iter()
            .map(|t| *t == TOKEN_TYPE_CONTROL)
            .collect();
        let token_bytes = raw_token_bytes(&tokens, &is_control);

        Ok(Self {
            with_special,
            plain,
            token_bytes,
            is_control,
            vocab,
        })
    }

    /// Encodes untrusted text: control-token spellings stay plain text.
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        encode_with(&self.plain, text)
    }

    /// Encodes trusted text (prompt templates): `<|im_start|>` and friends become their ids.
    pub(crate) fn encode_with_special(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        encode_with(&self.with_special, text)
    }

    /// Decodes ids to text, dropping control tokens; invalid UTF-8 becomes U+FFFD.
    #[cfg(test)]
    pub(crate) fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for id in ids {
            if !self.is_control(*id) {
                bytes.extend_from_slice(self.bytes(*id));
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The raw bytes of one token (empty for an id outside the vocabulary).
    pub(crate) fn bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map_or(&[][..], Vec::as_slice)
    }

    pub(crate) fn is_control(&self, id: u32) -> bool {
        self.is_control.get(id as usize).copied().unwrap_or(false)
    }

    /// Id of a vocabulary entry spelled exactly `token` (byte-level alphabet, e.g. `Ċ`).
    pub(crate) fn token_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }
}

/// Vocabulary entries of one GGUF token type, as tokens to add to a `tokenizers` pipeline.
fn added_tokens(
    tokens: &[String],
    token_types: &[i32],
    token_type: i32,
    special: bool,
) -> Vec<AddedToken> {
    tokens
        .iter()
        .zip(token_types)
        .filter(|(_, t)| **t == token_type)
        .map(|(s, _)| AddedToken::from(s.clone(), special))
        .collect()
}

/// The raw bytes each token stands for: the byte-level alphabet undone, except for control
/// tokens, which hold their text.
fn raw_token_bytes(tokens: &[String], is_control: &[bool]) -> Vec<Vec<u8>> {
    let unicode_to_byte = byte_level_alphabet_inverse();
    tokens
        .iter()
        .zip(is_control)
        .map(|(s, control)| {
            if *control {
                s.as_bytes().to_vec()
            } else {
                let mut out = Vec::with_capacity(s.len());
                for c in s.chars() {
                    match unicode_to_byte.get(&c) {
                        Some(b) => out.push(*b),
                        // Not in the byte alphabet (user-defined text): keep it as is.
                        None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                out
            }
        })
        .collect()
}

fn encode_with(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, LlmError> {
    tokenizer
        .encode_fast(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| LlmError::Inference(format!("tokenization failed: {e}")))
}

/// Maps llama.cpp's pre-tokenizer names to the equivalent `tokenizers` pipeline.
fn pre_tokenizer_for(pre: &str) -> Result<PreTokenizerWrapper, LlmError> {
    let byte_level = |use_regex| ByteLevel::new(false, true, use_regex);
    let wrapper = match pre {
        // llama.cpp splits `\p{N}` singly, then applies the GPT-2 regex.
        "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level(true).into()]).into(),
        "default" | "gpt2" => byte_level(true).into(),
        "llama-bpe" | "llama3" | "qwen2" => {
            let pattern = if pre == "qwen2" {
                QWEN2_PATTERN
            } else {
                LLAMA3_PATTERN
            };
            let split = Split::new(
                SplitPattern::Regex(pattern.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| LlmError::UnsupportedModel(format!("bad pre-tokenizer regex: {e}")))?;
            Sequence::new(vec![split.into(), byte_level(false).into()]).into()
        }
        other => {
            return Err(LlmError::UnsupportedModel(format!(
                "pre-tokenizer `{other}` is not supported (known: smollm, gpt2, llama-bpe, qwen2): use a supported model"
            )));
        }
    };
    Ok(wrapper)
}

/// Inverse of GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the
/// rest to U+0100 onwards in byte order.
fn byte_level_alphabet_inverse() -> HashMap<char, u8> {
    let mut map = HashMap::with_capacity(256);
    let mut next_free = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next_free).unwrap_or(char::REPLACEMENT_CHARACTER);
            next_free += 1;
            c
        };
        map.insert(c, b);
    }
    map
}

fn md_string<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a String, LlmError> {
    md.get(key)
        .ok_or_else(|| missing_metadata(key))?
        .to_string()
        .map_err(|e| unsupported_metadata(key, &e))
}

fn md_array<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a Vec<Value>, LlmError> {
    md.get(key)
        .ok_or_else(|| missing_metadata(key))?
        .to_vec()
        .map_err(|e| unsupported_metadata(key, &e))
}

fn missing_metadata(key: &str) -> LlmError {
    LlmError::UnsupportedModel(format!(
        "gguf metadata lacks `{key}`: use a GGUF that embeds its tokenizer"
    ))
}

fn unsupported_metadata(key: &str, e: &candle_core::Error) -> LlmError {
    LlmError::UnsupportedModel(format!(
        "gguf metadata `{key}` has an unexpected type ({e}): re-export the GGUF"
    ))
}

/// Turns a stream of token bytes into valid UTF-8 pieces, holding back a trailing partial
/// character until its remaining bytes arrive.
#[derive(Default)]
pub(crate) struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Appends bytes and returns whatever complete text is now available.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, tail) = rest.split_at(e.valid_up_to());
                    // Safe to unwrap-free convert: from_utf8 vouched for this prefix.
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            rest = tail;
                            break;
                        }
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &tail[n..];
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// Flushes a dangling partial character as U+FFFD at the end of generation.
    pub(crate) fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tests::generator;

    #[test]
    fn tokenizer_round_trips() {
        let t = &generator().tokenizer;
        for text in [
            "The quick brown fox jumps over the lazy dog.",
            "Invoice 2024-03-31: total 1234567.89 EUR, 42 items",
            "Grüße aus Zürich — naïve café, 東京, emoji 🎉🧪, Ελληνικά",
            "  leading spaces\n\n\ttabs and\r\nnewlines  ",
        ] {
            let ids = t.encode(text).expect("encode");
            assert!(!ids.is_empty());
            assert_eq!(t.decode(&ids), text);
        }
        // Digits are split one per token.
        let ids = t.encode("2027").expect("encode");
        assert_eq!(ids.len(), 4);
        assert_eq!(
            ids,
            [
                t.token_id("2"),
                t.token_id("0"),
                t.token_id("2"),
                t.token_id("7")
            ]
            .map(Option::unwrap)
        );
    }

    #[test]
    fn special_and_common_tokens_have_the_right_ids() {
        let t = &generator().tokenizer;
        assert_eq!(t.encode_with_special("<|im_start|>").expect("encode"), [1]);
        assert_eq!(t.encode_with_special("<|im_end|>").expect("encode"), [2]);
        let ids = t
            .encode_with_special("<|im_start|>system\nhi<|im_end|>\n")
            .expect("encode");
        assert_eq!(ids.first(), Some(&1));
        assert!(ids.contains(&2));
        // Untrusted text cannot produce control tokens.
        let plain = t.encode("<|im_end|>").expect("encode");
        assert!(plain.len() > 1 && !plain.contains(&2));
        // `\n` is byte 0x0A, which the byte-level alphabet spells `Ċ`.
        let newline = t.token_id("Ċ").expect("vocab has a newline token");
        assert_eq!(t.encode("\n").expect("encode"), [newline]);
        let system = t.token_id("system").expect("vocab has `system`");
        assert_eq!(t.encode("system").expect("encode"), [system]);
        let the = t.token_id("The").expect("vocab has `The`");
        assert_eq!(t.encode("The").expect("encode"), [the]);
        let space_the = t.token_id("ĠThe").expect("vocab has ` The`");
        assert_eq!(t.encode(" The").expect("encode"), [space_the]);
        assert_eq!(generator().count_tokens("system"), 1);
    }

    #[test]
    fn utf8_stream_buffers_partial_characters() {
        let mut s = Utf8Stream::default();
        let bytes = "é🎉".as_bytes();
        assert_eq!(s.push(&bytes[..1]), "");
        assert_eq!(s.push(&bytes[1..3]), "é");
        assert_eq!(s.push(&bytes[3..5]), "");
        assert_eq!(s.push(&bytes[5..]), "🎉");
        assert_eq!(s.push(&[0xFF, b'a']), "\u{FFFD}a");
        assert_eq!(s.push(&[0xE2]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }
}
