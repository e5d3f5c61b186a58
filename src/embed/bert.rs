//! The BERT encoder on the project's own kernels: linear layers on the int8 GEMM
//! ([`crate::kernels::Int8Matrix`]), attention on [`crate::kernels::Attention`], layer
//! norms and GELU from [`crate::kernels`], all over f32 buffers allocated once per batch
//! and reused by the six layers (issue 10: candle's tensors around the products cost more
//! than the products). The batch's texts are stacked without padding: the linear layers
//! see only real tokens, attention runs per text over its own tokens. Same model and the
//! same pooling as candle's `BertModel` path (masked mean, L2 norm), vectors at cosine
//! ≥ 0.99 (the test in `embed`).

use candle_core::Result;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;

use crate::kernels::{Attention, Int8Matrix, Rows, gelu_erf_in_place, layer_norm_in_place};

/// A layer norm's weight and bias.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder, width: usize, eps: f64) -> Result<Norm> {
        Ok(Norm {
            weight: vb.get(width, "weight")?.to_vec1()?,
            bias: vb.get(width, "bias")?.to_vec1()?,
            eps: eps as f32,
        })
    }

    /// `rows ← norm(rows + residual)`, row by row.
    fn residual(&self, rows: &mut [f32], residual: &[f32]) {
        for (value, r) in rows.iter_mut().zip(residual) {
            *value += r;
        }
        for row in rows.chunks_exact_mut(self.weight.len()) {
            layer_norm_in_place(row, &self.weight, &self.bias, self.eps);
        }
    }
}

struct Layer {
    /// Query, key and value stacked (rows in that order): one product reads the input.
    qkv: Int8Matrix,
    attention_out: Int8Matrix,
    attention_norm: Norm,
    intermediate: Int8Matrix,
    output: Int8Matrix,
    output_norm: Norm,
}

pub(super) struct Int8Bert {
    /// Rows of `hidden` values: the word, position and token-type embedding tables.
    words: Vec<f32>,
    positions: Vec<f32>,
    token_types: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    inner: usize,
    attention: Attention,
}

/// One text of a batch: its token ids and token type ids (no padding).
pub(super) struct Sequence<'a> {
    pub(super) ids: &'a [u32],
    pub(super) type_ids: &'a [u32],
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
        let embedding = |name: &str, rows: usize| -> Result<Vec<f32>> {
            embeddings
                .pp(name)
                .get((rows, hidden), "weight")?
                .flatten_all()?
                .to_vec1()
        };
        let words = embedding("word_embeddings", config.vocab_size)?;
        let positions = embedding("position_embeddings", config.max_position_embeddings)?;
        let token_types = embedding("token_type_embeddings", config.type_vocab_size)?;
        let embedding_norm = Norm::load(embeddings.pp("LayerNorm"), hidden, eps)?;
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
                    attention_norm: Norm::load(
                        attention.pp("output").pp("LayerNorm"),
                        hidden,
                        eps,
                    )?,
                    intermediate: linear(&vb.pp("intermediate"), &["dense"], hidden, inner)?,
                    output: linear(&vb.pp("output"), &["dense"], inner, hidden)?,
                    output_norm: Norm::load(vb.pp("output").pp("LayerNorm"), hidden, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            words,
            positions,
            token_types,
            embedding_norm,
            layers,
            hidden,
            inner,
            attention: Attention {
                heads: config.num_attention_heads,
                kv_heads: config.num_attention_heads,
                head_dim: hidden / config.num_attention_heads,
            },
        })
    }

    /// Each text's sentence vector: the mean of its last hidden states, L2-normalised.
    pub(super) fn embed(&self, batch: &[Sequence]) -> Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        let mut starts = Vec::with_capacity(batch.len() + 1);
        starts.push(0);
        for sequence in batch {
            let length = sequence.ids.len();
            if length == 0 || length > self.positions.len() / h {
                candle_core::bail!("a text of {length} tokens");
            }
            starts.push(starts[starts.len() - 1] + length);
        }
        let tokens = starts[batch.len()];
        let mut x = self.embeddings(batch, tokens)?;
        // Scratch, reused by every layer.
        let mut qkv = vec![0f32; tokens * 3 * h];
        let mut context = vec![0f32; tokens * h];
        let mut y = vec![0f32; tokens * h];
        let mut inner = vec![0f32; tokens * self.inner];
        for layer in &self.layers {
            layer.qkv.forward(&x, tokens, &mut qkv);
            for window in starts.windows(2) {
                let (first, n) = (window[0], window[1] - window[0]);
                let fused = &qkv[first * 3 * h..window[1] * 3 * h];
                let rows = |offset: usize| Rows {
                    data: &fused[offset..],
                    stride: 3 * h,
                    len: n,
                };
                let out = &mut context[first * h..window[1] * h];
                self.attention
                    .forward(rows(0), rows(h), rows(2 * h), None, out, h);
            }
            layer.attention_out.forward(&context, tokens, &mut y);
            layer.attention_norm.residual(&mut y, &x);
            std::mem::swap(&mut x, &mut y);
            layer.intermediate.forward(&x, tokens, &mut inner);
            gelu_erf_in_place(&mut inner);
            layer.output.forward(&inner, tokens, &mut y);
            layer.output_norm.residual(&mut y, &x);
            std::mem::swap(&mut x, &mut y);
        }
        Ok(starts
            .windows(2)
            .map(|window| mean_unit(&x[window[0] * h..window[1] * h], h))
            .collect())
    }

    /// Word + position + token type embeddings, layer-normalised: `tokens × hidden`.
    fn embeddings(&self, batch: &[Sequence], tokens: usize) -> Result<Vec<f32>> {
        let h = self.hidden;
        let row = |table: &[f32], index: u32| -> Result<std::ops::Range<usize>> {
            let start = index as usize * h;
            if start + h > table.len() {
                candle_core::bail!("token {index} is outside the embedding table");
            }
            Ok(start..start + h)
        };
        let mut x = Vec::with_capacity(tokens * h);
        for sequence in batch {
            for (position, (&id, &kind)) in sequence.ids.iter().zip(sequence.type_ids).enumerate() {
                let (word, kind) = (row(&self.words, id)?, row(&self.token_types, kind)?);
                let position = row(&self.positions, position as u32)?;
                let (word, kind) = (&self.words[word], &self.token_types[kind]);
                x.extend(
                    word.iter()
                        .zip(kind)
                        .zip(&self.positions[position])
                        .map(|((w, k), p)| w + k + p),
                );
            }
        }
        let norm = &self.embedding_norm;
        for row in x.chunks_exact_mut(h) {
            layer_norm_in_place(row, &norm.weight, &norm.bias, norm.eps);
        }
        Ok(x)
    }
}

/// The mean of `rows` (of `width` values each), scaled to unit length.
fn mean_unit(rows: &[f32], width: usize) -> Vec<f32> {
    let count = (rows.len() / width).max(1) as f32;
    let mut mean = vec![0f32; width];
    for row in rows.chunks_exact(width) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    for m in &mut mean {
        *m /= count;
    }
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    for m in &mut mean {
        *m /= norm;
    }
    mean
}
