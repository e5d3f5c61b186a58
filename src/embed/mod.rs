//! Sentence embeddings with a BERT-style model (default all-MiniLM-L6-v2) on candle.
//!
//! Masked mean pooling over the last hidden state, then L2 normalisation, so cosine
//! similarity is a dot product. Batches are length-sorted (the f32 path pads each batch
//! to its longest text; the int8 path stacks the texts without padding).
//! Calls are CPU-heavy and synchronous: callers run them on a blocking thread, never on
//! the async runtime. Knows nothing about tenants or storage.
//!
//! The linear layers run on the project's int8 GEMM ([`bert`]) where the CPU has its fast
//! kernel, else (or with `BULKHEAD_KERNELS=f32`) on candle's f32 `BertModel`: the same
//! model, vectors of the same text at cosine ≥ 0.99 between the two (issue 10).

mod bert;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Longest input the model was trained on (sentence-transformers' max_seq_length).
const MAX_TOKENS: usize = 256;
const BATCH_SIZE: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model file {path} is missing: run `models/fetch.sh` (or pass --models-dir)")]
    ModelMissing { path: PathBuf },
    #[error(
        "embedding model file {path} is unreadable or corrupt ({detail}): run `models/fetch.sh` to fetch it again"
    )]
    ModelCorrupt { path: PathBuf, detail: String },
    #[error("embedding failed: {0}")]
    Inference(String),
}

impl From<candle_core::Error> for EmbedError {
    fn from(error: candle_core::Error) -> Self {
        EmbedError::Inference(error.to_string())
    }
}

/// What runs the encoder's linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linear {
    /// candle's f32 matmuls (`candle_transformers`' `BertModel`).
    F32,
    /// The project's int8 GEMM ([`crate::kernels::Int8Matrix`]).
    Int8,
}

impl Linear {
    /// Int8 where the CPU has the fast kernel and `BULKHEAD_KERNELS` does not say `f32`.
    pub fn preferred() -> Linear {
        if crate::kernels::int8_preferred() {
            Linear::Int8
        } else {
            Linear::F32
        }
    }
}

enum Encoder {
    F32(Box<BertModel>),
    Int8(bert::Int8Bert),
}

pub struct Embedder {
    model: Encoder,
    tokenizer: Tokenizer,
    device: Device,
    dimension: usize,
}

impl Embedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`, its
    /// linear layers on the [`Linear::preferred`] kernels.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        Self::load_with(dir, Linear::preferred())
    }

    /// [`Embedder::load`] with the linear layers on `linear` (benches and tests compare).
    pub fn load_with(dir: &Path, linear: Linear) -> Result<Embedder, EmbedError> {
        let path_of = |name: &str| {
            let path = dir.join(name);
            if path.exists() {
                Ok(path)
            } else {
                Err(EmbedError::ModelMissing { path })
            }
        };
        let (config_path, weights_path, tokenizer_path) = (
            path_of("config.json")?,
            path_of("model.safetensors")?,
            path_of("tokenizer.json")?,
        );
        let corrupt = |path: &Path, detail: String| EmbedError::ModelCorrupt {
            path: path.to_path_buf(),
            detail,
        };
        let config: Config = std::fs::read_to_string(&config_path)
            .map_err(|error| error.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|error| error.to_string()))
            .map_err(|detail| corrupt(&config_path, detail))?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|error| corrupt(&tokenizer_path, error.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|error| corrupt(&tokenizer_path, error.to_string()))?;
        let device = Device::Cpu;
        let weights = std::fs::read(&weights_path)
            .map_err(|error| corrupt(&weights_path, error.to_string()))?;
        let builder = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|error| corrupt(&weights_path, error.to_string()))?;
        let model = match linear {
            Linear::F32 => BertModel::load(builder, &config).map(|m| Encoder::F32(Box::new(m))),
            Linear::Int8 => bert::Int8Bert::load(builder, &config).map(Encoder::Int8),
        }
        .map_err(|error| corrupt(&weights_path, error.to_string()))?;
        Ok(Embedder {
            model,
            tokenizer,
            device,
            dimension: config.hidden_size,
        })
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The tokenizer, for sizing chunks in this model's tokens.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Embeds one text (a question).
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed(&[text])?.pop().unwrap_or_default())
    }

    /// Embeds texts, returning unit vectors in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&index| texts[index].len());
        let mut vectors = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH_SIZE) {
            let inputs: Vec<&str> = batch.iter().map(|&index| texts[index]).collect();
            for (index, vector) in batch.iter().zip(self.embed_batch(&inputs)?) {
                vectors[*index] = vector;
            }
        }
        Ok(vectors)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|error| EmbedError::Inference(error.to_string()))?;
        let length = encodings.first().map_or(0, |encoding| encoding.len());
        let flatten = |field: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings
                .iter()
                .flat_map(|encoding| field(encoding).iter().copied())
                .collect()
        };
        let model = match &self.model {
            Encoder::F32(model) => model,
            Encoder::Int8(model) => {
                // No padding: each text's real tokens (the mask's ones lead each row).
                let sequences: Vec<bert::Sequence> = encodings
                    .iter()
                    .map(|encoding| {
                        let real = encoding
                            .get_attention_mask()
                            .iter()
                            .filter(|&&m| m == 1)
                            .count();
                        bert::Sequence {
                            ids: &encoding.get_ids()[..real],
                            type_ids: &encoding.get_type_ids()[..real],
                        }
                    })
                    .collect();
                return Ok(model.embed(&sequences)?);
            }
        };
        let shape = (texts.len(), length);
        let input_ids = Tensor::from_vec(flatten(|e| e.get_ids()), shape, &self.device)?;
        let type_ids = Tensor::from_vec(flatten(|e| e.get_type_ids()), shape, &self.device)?;
        let mask = Tensor::from_vec(flatten(|e| e.get_attention_mask()), shape, &self.device)?;
        let hidden = model.forward(&input_ids, &type_ids, Some(&mask))?;
        // Masked mean pooling: padding positions must not dilute the average.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let normalised = mean.broadcast_div(&norms)?;
        Ok(normalised.to_vec2::<f32>()?)
    }
}

/// Cosine similarity of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_sentences_embed_closer_than_unrelated_ones() {
        let embedder = Embedder::load(&crate::config::default_models_dir().join("minilm"))
            .expect("run models/fetch.sh");
        let texts = [
            "This Agreement shall terminate on December 31, 2025.",
            "When does the agreement end?",
            "The recipe needs two cups of flour and an egg.",
        ];
        let vectors = embedder.embed(&texts).unwrap();
        assert_eq!(vectors[0].len(), 384);
        let norm: f32 = dot(&vectors[0], &vectors[0]);
        assert!((norm - 1.0).abs() < 1e-4);
        assert!(dot(&vectors[0], &vectors[1]) > dot(&vectors[2], &vectors[1]) + 0.2);
        // Batched and single embedding agree (padding is masked out).
        let single = embedder.embed_one(texts[1]).unwrap();
        assert!(dot(&single, &vectors[1]) > 0.999);
    }

    /// Issue 10: vectors stored by the f32 path stay comparable with the int8 path's (same
    /// model): real contract text in chunks of ~200 words and short questions, embedded
    /// in batches both ways, agree at cosine ≥ 0.99 each, and rank the same chunk first.
    #[test]
    fn int8_vectors_match_the_f32_vectors_of_the_same_text() {
        let dir = crate::config::default_models_dir().join("minilm");
        let f32_path = Embedder::load_with(&dir, Linear::F32).expect("run models/fetch.sh");
        let int8_path = Embedder::load_with(&dir, Linear::Int8).unwrap();
        let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/contracts");
        let mut texts = Vec::new();
        for entry in std::fs::read_dir(contracts).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let words: Vec<&str> = text.split_whitespace().collect();
            texts.extend(words.chunks(200).take(6).map(|chunk| chunk.join(" ")));
        }
        texts.push("When does the agreement terminate?".into());
        texts.push("Which state's law governs this contract?".into());
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert!(texts.len() > 30);
        let old = f32_path.embed(&texts).unwrap();
        let new = int8_path.embed(&texts).unwrap();
        let worst = old
            .iter()
            .zip(&new)
            .map(|(a, b)| dot(a, b))
            .fold(1f32, f32::min);
        assert!(worst >= 0.99, "worst cosine {worst}");
        let best = |vectors: &[Vec<f32>], query: &[f32]| {
            (0..texts.len() - 2)
                .max_by(|&a, &b| dot(&vectors[a], query).total_cmp(&dot(&vectors[b], query)))
        };
        for question in [texts.len() - 2, texts.len() - 1] {
            assert_eq!(best(&old, &old[question]), best(&new, &new[question]));
        }
    }

    #[test]
    fn missing_model_names_the_fetch_command() {
        let error = Embedder::load(Path::new("/nonexistent")).err().unwrap();
        assert!(error.to_string().contains("models/fetch.sh"));
    }
}
