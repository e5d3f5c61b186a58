//! Local text generation: loads a llama-architecture GGUF model (weights, tokenizer and chat
//! template all read from the file's own metadata), formats a chat, and decodes greedily on
//! the CPU with candle, streaming valid UTF-8 pieces to a callback. It is a pure function of
//! (model, messages, options): it knows nothing about tenants, storage or HTTP, keeps no
//! state between calls, logs no prompt or answer text, and must not be given anything it
//! should not show the model.

mod tokenizer;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};

use tokenizer::{GgufTokenizer, Utf8Stream};

/// Tokens fed per forward pass during prefill: bounds the attention scratch memory
/// (heads × chunk × context floats) on long prompts.
const PREFILL_CHUNK: usize = 512;
/// Mild repeat penalty over recently generated tokens: small models loop without it. The
/// prompt is left out on purpose so grounded answers may quote the excerpts.
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_LAST_N: usize = 64;

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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            stop_sequences: Vec::new(),
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
    /// From the call until the first new token was sampled (includes tokenising and prefill).
    pub time_to_first_token: Duration,
    /// Time spent running the prompt through the model.
    pub prefill: Duration,
    pub total: Duration,
    pub stop_reason: StopReason,
}

#[derive(thiserror::Error, Debug)]
pub enum LlmError {
    #[error("model file {} not found: run `models/fetch.sh` to download it", path.display())]
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

/// How weights are held in memory after loading. candle has SIMD kernels (runtime-detected
/// AVX2/VNNI) for Q4_0, Q8_0 and the K quants but runs Q4_1 and similar formats through scalar
/// code; and dense f32 weights go through a cache-blocked gemm that batches prompt tokens far
/// better than any quantised kernel. Measured on 2 cores with SmolLM2-135M Q4_1, ~600-token
/// prompt: `Fast` ~400 tok/s prefill / ~27 tok/s decode, `Q8_0` ~150 / ~50, `AsStored` ~25 / ~19.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// Exactly as stored in the file (smallest, slowest for Q4_1 and similar).
    AsStored,
    /// Everything dequantised to f32 (what `CANDLE_DEQUANTIZE_ALL=1` does).
    F32,
    /// Every quantised tensor requantised to Q8_0: half the decode latency of `Fast` (a
    /// quarter of the bytes read per token) but under half its prefill speed. Better for long
    /// answers to short prompts.
    Q8_0,
    /// Transformer layers dequantised to f32 (fast batched prefill through gemm); the
    /// output projection, which only ever sees one row, kept in a quantised format with a
    /// SIMD dot product (Q8_0 if the stored format has none), so decoding reads less memory.
    /// Best time to first token and best total time for retrieval prompts (long prompt,
    /// short answer).
    #[default]
    Fast,
}

/// Options for [`Generator::load_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    pub weights: WeightFormat,
}

/// How to render a chat for the model.
#[derive(Debug, Clone)]
enum ChatTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n`, with the template's own default system
    /// message (if it has one) when the chat does not start with a system message.
    ChatMl { default_system: Option<String> },
}

/// A loaded model, ready to generate. Cheap to share: `generate` takes `&self` and each call
/// works on its own clone of the weights handle (tensors are reference-counted), so calls from
/// several threads run independently with separate KV caches.
pub struct Generator {
    weights: ModelWeights,
    device: Device,
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
    /// Loads a llama-architecture GGUF with the fastest in-memory weight layout.
    pub fn load(gguf_path: &Path) -> Result<Generator, LlmError> {
        Self::load_with(gguf_path, LoadOptions::default())
    }

    /// Loads a llama-architecture GGUF, choosing how weights are held in memory.
    pub fn load_with(gguf_path: &Path, options: LoadOptions) -> Result<Generator, LlmError> {
        let corrupt = |reason: String| LlmError::ModelCorrupt {
            path: gguf_path.to_path_buf(),
            reason,
        };
        let file = match File::open(gguf_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LlmError::ModelMissing {
                    path: gguf_path.to_path_buf(),
                });
            }
            Err(e) => return Err(corrupt(format!("cannot open: {e}"))),
        };
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader)
            .map_err(|e| corrupt(format!("not a readable gguf file: {e}")))?;
        let file_len = reader
            .seek(SeekFrom::End(0))
            .map_err(|e| corrupt(format!("cannot read: {e}")))?;
        check_tensor_bounds(&content, file_len).map_err(corrupt)?;

        let md = &content.metadata;
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .map_or("", String::as_str);
        if arch != "llama" {
            return Err(LlmError::UnsupportedModel(format!(
                "architecture `{arch}` is not supported (only `llama`): use a llama-architecture GGUF"
            )));
        }

        let tokenizer = GgufTokenizer::from_metadata(md)?;
        let template = chat_template(md)?;
        let special = |text: &str| {
            tokenizer.token_id(text).ok_or_else(|| {
                LlmError::UnsupportedModel(format!(
                    "chat template uses `{text}` but the vocabulary lacks it"
                ))
            })
        };
        let im_start = special("<|im_start|>")?;
        let im_end = special("<|im_end|>")?;
        let eos = md_u32(md, "tokenizer.ggml.eos_token_id").unwrap_or(im_end);
        let add_bos = md
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        let bos = if add_bos {
            md_u32(md, "tokenizer.ggml.bos_token_id")
        } else {
            None
        };
        // The rotary tables in candle's llama stop at MAX_SEQ_LEN whatever the file says.
        let context_length = md_u32(md, "llama.context_length")
            .map_or(MAX_SEQ_LEN, |n| (n as usize).min(MAX_SEQ_LEN));

        let device = Device::Cpu;
        let started = Instant::now();
        let (content, mut converting) =
            ConvertingReader::new(content, reader, options.weights, device.clone());
        let weights = ModelWeights::from_gguf(content, &mut converting, &device)
            .map_err(|e| corrupt(format!("cannot load weights: {e}")))?;
        tracing::info!(
            path = %gguf_path.display(),
            weights = ?options.weights,
            context_length,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded language model"
        );

        Ok(Generator {
            weights,
            device,
            tokenizer,
            template,
            im_start,
            im_end,
            bos,
            eos,
            context_length,
        })
    }

    /// Tokens `text` occupies when placed in a message (no chat framing).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text).map_or(0, |ids| ids.len())
    }

    /// The usable context window in tokens (prompt plus generated tokens).
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Tokens the chat occupies once formatted, including the assistant header.
    pub fn count_prompt_tokens(&self, messages: &[ChatMessage]) -> Result<usize, LlmError> {
        Ok(self.prompt_ids(messages)?.len())
    }

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
            time_to_first_token: Duration::ZERO,
            prefill: Duration::ZERO,
            total: Duration::ZERO,
            stop_reason: StopReason::MaxTokens,
        };
        if options.max_new_tokens == 0 {
            generation.total = started.elapsed();
            return Ok(generation);
        }

        // A private copy: shares the weight tensors, owns its KV cache.
        let mut model = self.weights.clone();
        let prefill_started = Instant::now();
        let mut logits = None;
        for (i, chunk) in prompt.chunks(PREFILL_CHUNK).enumerate() {
            let input = Tensor::new(chunk, &self.device)?.unsqueeze(0)?;
            logits = Some(model.forward(&input, i * PREFILL_CHUNK)?);
        }
        let mut logits = logits.ok_or_else(|| LlmError::Inference("empty prompt".to_string()))?;
        generation.prefill = prefill_started.elapsed();

        let mut stops = StopMatcher::new(&options.stop_sequences);
        let mut utf8 = Utf8Stream::default();
        let mut recent: Vec<u32> = Vec::with_capacity(REPEAT_LAST_N);
        let mut position = prompt_tokens;
        let stop_reason = loop {
            let next = self.pick(&logits, &recent)?;
            if generation.generated_tokens == 0 {
                generation.time_to_first_token = started.elapsed();
            }
            if next == self.eos || next == self.im_end || self.tokenizer.is_control(next) {
                break StopReason::EndOfSequence;
            }
            generation.generated_tokens += 1;
            if recent.len() == REPEAT_LAST_N {
                recent.remove(0);
            }
            recent.push(next);

            let piece = utf8.push(self.tokenizer.bytes(next));
            match stops.push(&piece) {
                Step::Emit(text) => {
                    if !text.is_empty() {
                        generation.text.push_str(&text);
                        if !on_token(&text) {
                            break StopReason::Cancelled;
                        }
                    }
                }
                Step::Stop(text) => {
                    if !text.is_empty() {
                        generation.text.push_str(&text);
                        // Stopping anyway: the callback's answer changes nothing.
                        on_token(&text);
                    }
                    break StopReason::StopSequence;
                }
            }
            if generation.generated_tokens >= options.max_new_tokens {
                break StopReason::MaxTokens;
            }
            if position >= self.context_length {
                break StopReason::ContextFull;
            }
            let input = Tensor::new(&[next], &self.device)?.unsqueeze(0)?;
            logits = model.forward(&input, position)?;
            position += 1;
        };

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

    /// Greedy choice after the repeat penalty; ties go to the lowest id, so it is deterministic.
    fn pick(&self, logits: &Tensor, recent: &[u32]) -> Result<u32, LlmError> {
        let mut logits = logits.squeeze(0)?.to_vec1::<f32>()?;
        let mut seen = recent.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for id in seen {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = if *l >= 0.0 {
                    *l / REPEAT_PENALTY
                } else {
                    *l * REPEAT_PENALTY
                };
            }
        }
        let mut best: Option<(usize, f32)> = None;
        for (i, l) in logits.iter().enumerate() {
            if l.is_nan() {
                continue;
            }
            if best.is_none_or(|(_, b)| *l > b) {
                best = Some((i, *l));
            }
        }
        let (id, _) = best.ok_or_else(|| LlmError::Inference("model produced no logits".into()))?;
        u32::try_from(id).map_err(|_| LlmError::Inference("token id out of range".into()))
    }

    /// The chat rendered as token ids. Message text is encoded as plain text, so a document
    /// that spells `<|im_end|>` cannot forge a turn boundary.
    fn prompt_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, LlmError> {
        let ChatTemplate::ChatMl { default_system } = &self.template;
        let newline = self.tokenizer.encode("\n")?;
        let mut ids = Vec::new();
        ids.extend(self.bos);
        let mut turn = |role: &str, content: &str| -> Result<(), LlmError> {
            ids.push(self.im_start);
            ids.extend(self.tokenizer.encode(&format!("{role}\n{content}"))?);
            ids.push(self.im_end);
            ids.extend_from_slice(&newline);
            Ok(())
        };
        if let Some(system) = default_system
            && messages.first().is_none_or(|m| m.role != Role::System)
        {
            turn("system", system)?;
        }
        for m in messages {
            turn(m.role.as_str(), &m.content)?;
        }
        // Trusted template text: control tokens are parsed.
        ids.extend(
            self.tokenizer
                .encode_with_special("<|im_start|>assistant\n")?,
        );
        Ok(ids)
    }
}

/// Recognises the chat template; only ChatML is supported for now.
fn chat_template(md: &HashMap<String, Value>) -> Result<ChatTemplate, LlmError> {
    let Some(template) = md
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok())
    else {
        return Err(LlmError::UnsupportedModel(
            "gguf has no chat template: use an instruct model that embeds one".to_string(),
        ));
    };
    if !template.contains("<|im_start|>") {
        return Err(LlmError::UnsupportedModel(
            "chat template is not ChatML (`<|im_start|>`), the only format supported so far: use a ChatML model".to_string(),
        ));
    }
    // A literal default system turn, as in SmolLM2's template; the Jinja source may hold
    // either a real newline or the escape `\n`.
    let default_system = ["<|im_start|>system\n", "<|im_start|>system\\n"]
        .iter()
        .find_map(|head| {
            let start = template.find(head)? + head.len();
            let len = template[start..].find("<|im_end|>")?;
            let text = &template[start..start + len];
            // Skip template expressions such as `' + message['content'] + '`.
            (!text.contains(['{', '}', '\'', '+'])).then(|| text.replace("\\n", "\n"))
        });
    Ok(ChatTemplate::ChatMl { default_system })
}

fn md_u32(md: &HashMap<String, Value>, key: &str) -> Option<u32> {
    md.get(key).and_then(|v| v.to_u32().ok())
}

/// Every tensor must lie inside the file: a truncated download is reported as such before
/// any weight is read.
fn check_tensor_bounds(content: &Content, file_len: u64) -> Result<(), String> {
    for (name, info) in &content.tensor_infos {
        let size = tensor_size(info)
            .ok_or_else(|| format!("tensor {name} has an impossible shape for its type"))?;
        let end = content
            .tensor_data_offset
            .checked_add(info.offset)
            .and_then(|start| start.checked_add(size));
        if end.is_none_or(|end| end > file_len) {
            return Err(format!(
                "tensor {name} ends past the end of the file ({file_len} bytes): the file is truncated"
            ));
        }
    }
    Ok(())
}

fn tensor_size(info: &TensorInfo) -> Option<u64> {
    let elems = info.shape.elem_count();
    let block = info.ggml_dtype.block_size();
    if !elems.is_multiple_of(block) {
        return None;
    }
    u64::try_from(elems / block * info.ggml_dtype.type_size()).ok()
}

/// Quantisations with a SIMD dot product in candle on x86; others run scalar code.
fn has_fast_vec_dot(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::Q4_0
            | GgmlDType::Q8_0
            | GgmlDType::Q2K
            | GgmlDType::Q3K
            | GgmlDType::Q4K
            | GgmlDType::Q5K
            | GgmlDType::Q6K
    )
}

fn is_float(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// In-memory format for one tensor under `format`.
fn target_dtype(format: WeightFormat, name: &str, stored: GgmlDType, dims: &[usize]) -> GgmlDType {
    // Norm weights and other vectors are tiny and already float; the embedding is dequantised
    // by candle at load whatever its format.
    if is_float(stored) || dims.len() < 2 || name == "token_embd.weight" {
        return stored;
    }
    let q8_ok = dims
        .last()
        .is_some_and(|k| k.is_multiple_of(GgmlDType::Q8_0.block_size()));
    let to_q8 = if q8_ok {
        GgmlDType::Q8_0
    } else {
        GgmlDType::F32
    };
    match format {
        WeightFormat::AsStored => stored,
        WeightFormat::F32 => GgmlDType::F32,
        WeightFormat::Q8_0 if stored == GgmlDType::Q8_0 => stored,
        WeightFormat::Q8_0 => to_q8,
        WeightFormat::Fast if name == "output.weight" => {
            if has_fast_vec_dot(stored) {
                stored
            } else {
                to_q8
            }
        }
        WeightFormat::Fast => GgmlDType::F32,
    }
}

/// A virtual GGUF tensor-data section with every tensor already converted to its in-memory
/// format. candle's `from_gguf` reads each tensor exactly once, so tensors are converted one at
/// a time on demand: peak memory stays at the converted model plus one tensor.
struct ConvertingReader<R> {
    source: R,
    source_offset: u64,
    /// (virtual start, virtual length, original info, target dtype), sorted by start.
    entries: Vec<(u64, u64, TensorInfo, GgmlDType)>,
    total: u64,
    pos: u64,
    cached: Option<(usize, Vec<u8>)>,
    device: Device,
}

impl<R: Read + Seek> ConvertingReader<R> {
    /// Returns the content to hand to `from_gguf` (same metadata, tensors at virtual offsets
    /// in their target format) and the reader that serves them.
    fn new(content: Content, source: R, format: WeightFormat, device: Device) -> (Content, Self) {
        let Content {
            magic,
            metadata,
            tensor_infos,
            tensor_data_offset,
        } = content;
        let mut infos: Vec<(String, TensorInfo)> = tensor_infos.into_iter().collect();
        // A tied output projection is stored once as the embedding; giving it its own entry lets
        // the two take different formats (embedding rows are gathered, never multiplied).
        if !infos.iter().any(|(n, _)| n == "output.weight")
            && let Some((_, embd)) = infos.iter().find(|(n, _)| n == "token_embd.weight")
        {
            let output = TensorInfo {
                ggml_dtype: embd.ggml_dtype,
                shape: embd.shape.clone(),
                offset: embd.offset,
            };
            infos.push(("output.weight".to_string(), output));
        }
        infos.sort_by_key(|(_, info)| info.offset);

        let mut virtual_infos = HashMap::with_capacity(infos.len());
        let mut entries = Vec::with_capacity(infos.len());
        let mut total = 0u64;
        for (name, info) in infos {
            let dims = info.shape.dims().to_vec();
            let target = target_dtype(format, &name, info.ggml_dtype, &dims);
            let elems = info.shape.elem_count() as u64;
            let len = elems / target.block_size() as u64 * target.type_size() as u64;
            virtual_infos.insert(
                name,
                TensorInfo {
                    ggml_dtype: target,
                    shape: info.shape.clone(),
                    offset: total,
                },
            );
            entries.push((total, len, info, target));
            total += len;
        }
        let content = Content {
            magic,
            metadata,
            tensor_infos: virtual_infos,
            tensor_data_offset: 0,
        };
        let reader = Self {
            source,
            source_offset: tensor_data_offset,
            entries,
            total,
            pos: 0,
            cached: None,
            device,
        };
        (content, reader)
    }

    fn convert(&mut self, index: usize) -> candle_core::Result<Vec<u8>> {
        let (_, _, info, target) = &self.entries[index];
        let target = *target;
        let stored = info.read(&mut self.source, self.source_offset, &self.device)?;
        if stored.dtype() == target {
            return Ok(stored.data()?.into_owned());
        }
        let dense = stored.dequantize(&self.device)?;
        drop(stored);
        match target {
            GgmlDType::F32 => {
                let values = dense.flatten_all()?.to_vec1::<f32>()?;
                Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            other => Ok(QTensor::quantize(&dense, other)?.data()?.into_owned()),
        }
    }
}

impl<R: Read + Seek> Read for ConvertingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.pos >= self.total {
            return Ok(0);
        }
        let index = self
            .entries
            .partition_point(|(start, _, _, _)| *start <= self.pos)
            .saturating_sub(1);
        let Some(&(start, len, _, _)) = self.entries.get(index) else {
            return Ok(0);
        };
        if self.pos >= start + len {
            return Ok(0);
        }
        if self.cached.as_ref().is_none_or(|(i, _)| *i != index) {
            // Drop the previous tensor first so two converted tensors are never held at once.
            self.cached = None;
            let bytes = self.convert(index).map_err(std::io::Error::other)?;
            if bytes.len() as u64 != len {
                return Err(std::io::Error::other(format!(
                    "converted tensor has {} bytes, expected {len}",
                    bytes.len()
                )));
            }
            self.cached = Some((index, bytes));
        }
        let Some((_, bytes)) = &self.cached else {
            return Ok(0);
        };
        // Bounded by `len`, which came from a usize byte count.
        let from = (self.pos - start) as usize;
        let n = buf.len().min(bytes.len() - from);
        buf[..n].copy_from_slice(&bytes[from..from + n]);
        self.pos += n as u64;
        if from + n == bytes.len() {
            // Each tensor is read once: free it as soon as it has been handed over.
            self.cached = None;
        }
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for ConvertingReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.total.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| std::io::Error::other("seek out of range"))?;
        Ok(self.pos)
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

// `generate` is shared across request threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Generator>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn model_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    }

    fn generator() -> &'static Generator {
        static GENERATOR: OnceLock<Generator> = OnceLock::new();
        GENERATOR.get_or_init(|| Generator::load(&model_path()).expect("load the test model"))
    }

    fn grounded_chat() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new(Role::System, "Answer only from the excerpt."),
            ChatMessage::new(
                Role::User,
                "Excerpt: The agreement terminates on 31 March 2027.\nQuestion: When does the agreement terminate?",
            ),
        ]
    }

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
    fn prompt_is_chatml() {
        let g = generator();
        let ids = g.prompt_ids(&grounded_chat()).expect("prompt");
        let text = g.tokenizer.decode(&ids);
        assert!(text.starts_with("system\nAnswer only"));
        assert_eq!(ids.first(), Some(&g.im_start));
        assert_eq!(ids.iter().filter(|id| **id == g.im_start).count(), 3);
        // Without a system message the template's default one is used.
        let ids = g
            .prompt_ids(&[ChatMessage::new(Role::User, "hi")])
            .expect("prompt");
        assert!(g.tokenizer.decode(&ids).contains("SmolLM"));
    }

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

    #[test]
    fn utf8_stream_buffers_partial_characters() {
        let mut s = tokenizer::Utf8Stream::default();
        let bytes = "é🎉".as_bytes();
        assert_eq!(s.push(&bytes[..1]), "");
        assert_eq!(s.push(&bytes[1..3]), "é");
        assert_eq!(s.push(&bytes[3..5]), "");
        assert_eq!(s.push(&bytes[5..]), "🎉");
        assert_eq!(s.push(&[0xFF, b'a']), "\u{FFFD}a");
        assert_eq!(s.push(&[0xE2]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
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
