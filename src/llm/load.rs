//! Loading a model: the GGUF is checked (readable, a supported architecture — llama or
//! qwen2 —, every tensor inside the file) before its tokenizer, chat template and weights
//! are built from it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};

use super::chat::chat_template;
use super::model::{Model, rope_style};
use super::tokenizer::GgufTokenizer;
use super::weights::ConvertingReader;
use super::{Generator, LlmError, LoadOptions};

/// The longest context used, whatever the file allows (candle's llama used the same).
const MAX_CONTEXT: usize = 4096;

impl Generator {
    /// Loads a llama- or qwen2-architecture GGUF, choosing how weights are held in memory.
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
        if rope_style(arch).is_none() {
            return Err(LlmError::UnsupportedModel(format!(
                "architecture `{arch}` is not supported (only `llama` and `qwen2`): use a GGUF of one of those"
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
        // Rotary tables (and so the longest cache) cover at most MAX_CONTEXT positions.
        let context_length = md_u32(md, &format!("{arch}.context_length"))
            .map_or(MAX_CONTEXT, |n| (n as usize).min(MAX_CONTEXT));

        let started = Instant::now();
        let (content, mut converting) =
            ConvertingReader::new(content, reader, options.weights, Device::Cpu);
        let model = Model::from_gguf(&content, &mut converting, options.weights, context_length)
            .map_err(|e| match e {
                LlmError::UnsupportedModel(_) => e,
                other => corrupt(format!("cannot load weights: {other}")),
            })?;
        tracing::info!(
            path = %gguf_path.display(),
            weights = ?options.weights,
            context_length,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded language model"
        );

        Ok(Generator {
            model,
            prefixes: std::sync::Mutex::new(Vec::new()),
            tokenizer,
            template,
            im_start,
            im_end,
            bos,
            eos,
            context_length,
        })
    }
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
