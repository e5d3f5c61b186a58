//! Sentence embeddings with a BERT-style model (default all-MiniLM-L6-v2) on candle.
//!
//! Masked mean pooling over the last hidden state, then L2 normalisation, so cosine
//! similarity is a dot product. Batches are length-sorted to waste little on padding.
//! Calls are CPU-heavy and synchronous: callers run them on a blocking thread, never on
//! the async runtime. Knows nothing about tenants or storage.

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

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dimension: usize,
}

impl Embedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
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
        let model = BertModel::load(builder, &config)
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
        let shape = (texts.len(), length);
        let input_ids = Tensor::from_vec(flatten(|e| e.get_ids()), shape, &self.device)?;
        let type_ids = Tensor::from_vec(flatten(|e| e.get_type_ids()), shape, &self.device)?;
        let mask = Tensor::from_vec(flatten(|e| e.get_attention_mask()), shape, &self.device)?;
        let hidden = self.model.forward(&input_ids, &type_ids, Some(&mask))?;
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

    #[test]
    fn missing_model_names_the_fetch_command() {
        let error = Embedder::load(Path::new("/nonexistent")).err().unwrap();
        assert!(error.to_string().contains("models/fetch.sh"));
    }
}
