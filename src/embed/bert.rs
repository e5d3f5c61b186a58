//! The BERT encoder with its linear layers on the project's int8 GEMM
//! ([`crate::kernels::Int8Matrix`]), the rest (embeddings, layer norms, attention, GELU)
//! on candle exactly as `candle_transformers::models::bert::BertModel` computes it, so
//! the two give the same hidden states up to the 8-bit roundings (issue 10: the linear
//! layers are ~90% of the work; int8 VNNI does them about three times faster than f32).

use candle_core::{D, DType, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Module, VarBuilder};
use candle_transformers::models::bert::Config;

use crate::kernels::Int8Matrix;

struct Layer {
    /// Query, key and value stacked (rows in that order): one product reads the input.
    qkv: Int8Matrix,
    attention_out: Int8Matrix,
    attention_norm: LayerNorm,
    intermediate: Int8Matrix,
    output: Int8Matrix,
    output_norm: LayerNorm,
}

pub(super) struct Int8Bert {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
}

/// A linear layer's weight (`out × in`) and bias, stacked by rows when several.
fn linear(vb: &VarBuilder, names: &[&str], inputs: usize, outputs: usize) -> Result<Int8Matrix> {
    let (mut weights, mut bias) = (Vec::new(), Vec::new());
    for name in names {
        let vb = vb.pp(name);
        let weight = vb.get((outputs, inputs), "weight")?;
        weights.extend(weight.flatten_all()?.to_vec1::<f32>()?);
        bias.extend(vb.get(outputs, "bias")?.to_vec1::<f32>()?);
    }
    let rows = outputs * names.len();
    Ok(Int8Matrix::from_f32(rows, inputs, &weights, Some(&bias)))
}

/// `x · wᵀ + b` over the last dimension of `x`.
fn apply(matrix: &Int8Matrix, x: &Tensor) -> Result<Tensor> {
    let mut shape = x.dims().to_vec();
    let tokens = x.elem_count() / matrix.cols();
    let input = x.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; tokens * matrix.rows()];
    matrix.forward(&input, tokens, &mut out);
    if let Some(last) = shape.last_mut() {
        *last = matrix.rows();
    }
    Tensor::from_vec(out, shape, x.device())
}

impl Int8Bert {
    pub(super) fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let hidden = config.hidden_size;
        let inner = config.intermediate_size;
        let eps = config.layer_norm_eps;
        let embeddings = vb.pp("embeddings");
        let embedding = |name: &str, rows: usize| -> Result<Embedding> {
            let table = embeddings.pp(name).get((rows, hidden), "weight")?;
            Ok(Embedding::new(table, hidden))
        };
        let words = embedding("word_embeddings", config.vocab_size)?;
        let positions = embedding("position_embeddings", config.max_position_embeddings)?;
        let token_types = embedding("token_type_embeddings", config.type_vocab_size)?;
        let embedding_norm = candle_nn::layer_norm(hidden, eps, embeddings.pp("LayerNorm"))?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp(format!("encoder.layer.{i}"));
                let attention = vb.pp("attention");
                Ok(Layer {
                    qkv: linear(
                        &attention.pp("self"),
                        &["query", "key", "value"],
                        hidden,
                        hidden,
                    )?,
                    attention_out: linear(&attention.pp("output"), &["dense"], hidden, hidden)?,
                    attention_norm: candle_nn::layer_norm(
                        hidden,
                        eps,
                        attention.pp("output").pp("LayerNorm"),
                    )?,
                    intermediate: linear(&vb.pp("intermediate"), &["dense"], hidden, inner)?,
                    output: linear(&vb.pp("output"), &["dense"], inner, hidden)?,
                    output_norm: candle_nn::layer_norm(
                        hidden,
                        eps,
                        vb.pp("output").pp("LayerNorm"),
                    )?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            words,
            positions,
            token_types,
            embedding_norm,
            layers,
            heads: config.num_attention_heads,
        })
    }

    /// The last hidden state, `batch × length × hidden`, as `BertModel::forward`.
    pub(super) fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, length) = ids.dims2()?;
        let position_ids = Tensor::arange(0u32, length as u32, ids.device())?;
        let x = (self.words.forward(ids)? + self.token_types.forward(type_ids)?)?
            .broadcast_add(&self.positions.forward(&position_ids)?)?;
        let mut x = self.embedding_norm.forward(&x)?;
        // 0 where a key may be attended to, the lowest f32 at padding (as BertModel).
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(1)?.unsqueeze(1)?;
        let mask = ((mask.ones_like()? - &mask)? * f64::from(f32::MIN))?;
        for layer in &self.layers {
            let attention = self.attention(layer, &x, &mask)?;
            x = layer
                .attention_norm
                .forward(&(apply(&layer.attention_out, &attention)? + &x)?)?;
            let inner = apply(&layer.intermediate, &x)?.gelu_erf()?;
            x = layer
                .output_norm
                .forward(&(apply(&layer.output, &inner)? + &x)?)?;
        }
        Ok(x)
    }

    /// Multi-head self-attention of `x` (`batch × length × hidden`), heads concatenated.
    fn attention(&self, layer: &Layer, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, length, hidden) = x.dims3()?;
        let head = hidden / self.heads;
        let qkv = apply(&layer.qkv, x)?;
        let heads = |i: usize| -> Result<Tensor> {
            qkv.narrow(D::Minus1, i * hidden, hidden)?
                .reshape((batch, length, self.heads, head))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
        let scores = (q.matmul(&k.t()?)? / (head as f64).sqrt())?.broadcast_add(mask)?;
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        weights
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .flatten_from(D::Minus2)
    }
}
