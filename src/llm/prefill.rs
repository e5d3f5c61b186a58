//! Prefill on the project's own kernels (issue 10), under the default format on CPUs
//! with the int8 GEMM's fast kernel: the prompt's tokens go through every block as plain
//! `tokens × width` f32 buffers, allocated once per call and reused by every block, with
//! the products on [`crate::kernels::Int8Matrix`] and attention on
//! [`crate::kernels::Attention`] (causal after the cached prefix, query heads grouped over
//! their key/value head), reading the keys and values straight from the cache it appends
//! to. Norms and the rotary embedding are decoding's, row by row. Elsewhere
//! [`Model::prefill`] runs candle's products.

use crate::kernels::{Attention, Int8Matrix, Rows, silu_mul};

use super::LlmError;
use super::decode::{add, norm_rows};
use super::linear::Int8Products;
use super::model::{KvCache, Model};
use super::q8::Q8Vector;

/// A prefill's buffers, `tokens` rows each.
struct Buffers {
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    attention: Vec<f32>,
    projected: Vec<f32>,
    gate_up: Vec<f32>,
    activated: Vec<f32>,
}

impl Model {
    /// The blocks' int8 products, when every block has them.
    pub(super) fn int8_layers(&self) -> Option<Vec<Int8Products<'_>>> {
        self.layers
            .iter()
            .map(|layer| {
                Some(Int8Products {
                    qkv: layer.qkv.int8()?,
                    wo: layer.wo.int8()?,
                    gate_up: layer.gate_up.int8()?,
                    down: layer.down.int8()?,
                })
            })
            .collect()
    }

    /// [`Model::prefill`] on the int8 products `layers` (one per block).
    pub(super) fn prefill_int8(
        &self,
        layers: &[Int8Products],
        cache: &mut KvCache,
        tokens: &[u32],
    ) -> Result<Vec<f32>, LlmError> {
        let d = self.dims;
        let (e, t, ff) = (d.embedding, tokens.len(), d.feed_forward);
        let (q_width, kv_width) = (d.n_head * d.head_dim, d.kv_width());
        let width = q_width + 2 * kv_width;
        let start = cache.len;
        let mut b = Buffers {
            x: Vec::with_capacity(t * e),
            h: vec![0.0; t * e],
            qkv: vec![0.0; t * width],
            attention: vec![0.0; t * q_width],
            projected: vec![0.0; t * e],
            gate_up: vec![0.0; t * 2 * ff],
            activated: vec![0.0; t * ff],
        };
        for &token in tokens {
            let row = token as usize * e;
            let embedding = self.embeddings.get(row..row + e).ok_or_else(|| {
                LlmError::Inference(format!("token {token} is outside the vocabulary"))
            })?;
            b.x.extend_from_slice(embedding);
        }
        let attention = Attention {
            heads: d.n_head,
            kv_heads: d.n_kv_head,
            head_dim: d.head_dim,
        };
        for (i, (layer, products)) in self.layers.iter().zip(layers).enumerate() {
            norm_rows(&b.x, &layer.attn_norm_v, d.eps, &mut b.h);
            products.qkv.forward(&b.h, t, &mut b.qkv);
            for (r, row) in b.qkv.chunks_exact_mut(width).enumerate() {
                if let Some(bias) = &layer.qkv_bias {
                    add(row, &bias.stacked);
                }
                let (q, kv) = row.split_at_mut(q_width);
                self.rotate(q, start + r);
                self.rotate(&mut kv[..kv_width], start + r);
                cache.keys[i].extend_from_slice(&kv[..kv_width]);
                cache.values[i].extend_from_slice(&kv[kv_width..]);
            }
            attention.forward(
                Rows {
                    data: &b.qkv,
                    stride: width,
                    len: t,
                },
                Rows::all(&cache.keys[i], kv_width),
                Rows::all(&cache.values[i], kv_width),
                Some(start),
                &mut b.attention,
                q_width,
            );
            residual(products.wo, &b.attention, t, &mut b.projected, &mut b.x);
            norm_rows(&b.x, &layer.ffn_norm_v, d.eps, &mut b.h);
            products.gate_up.forward(&b.h, t, &mut b.gate_up);
            for (pair, out) in b
                .gate_up
                .chunks_exact(2 * ff)
                .zip(b.activated.chunks_exact_mut(ff))
            {
                let (gate, up) = pair.split_at(ff);
                out.copy_from_slice(gate);
                silu_mul(out, up);
            }
            residual(products.down, &b.activated, t, &mut b.projected, &mut b.x);
        }
        cache.len += t;
        let mut logits = vec![0f32; d.vocab];
        let (mut h, mut xq) = (Vec::new(), Q8Vector::default());
        self.logits(&b.x[(t - 1) * e..], &mut h, &mut xq, &mut logits);
        Ok(logits)
    }
}

/// `x += input · wᵀ`, through `scratch`.
fn residual(w: &Int8Matrix, input: &[f32], tokens: usize, scratch: &mut [f32], x: &mut [f32]) {
    w.forward(input, tokens, scratch);
    add(x, scratch);
}
