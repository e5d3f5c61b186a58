//! The llama transformer (and qwen2, the same block with query/key/value biases and the
//! other rotary layout), the project's own (issue 10): prefill runs the prompt through
//! batched products, on the project's own kernels and buffers under the default format
//! where the CPU has the int8 GEMM's fast kernel ([`super::prefill`]), else through
//! candle's tensors and matmuls (below), decoding one token runs the project's own loop
//! ([`super::decode`]) over 8-bit weights; both write one key/value cache
//! ([`KvCache`]) that the model does not own, so a prompt prefix's cache can be kept and
//! reused. candle's `quantized_llama` keeps its cache private, which is why it is not used.

use std::io::{Read, Seek};

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Device, Tensor};

use crate::kernels::Int8Matrix;

use super::linear::{Product, apply};
use super::panels::Panels;
use super::q4::Q41Matrix;
use super::q8::{Kernel, Q8Matrix, Q8Vector};
use super::{LlmError, WeightFormat};

/// Columns per activation scale in the int8 prefill products: as the decode path's 8-bit
/// blocks. One scale per token (as the embedding model's) changed 13 of 20 greedy answers.
const ACTIVATION_BLOCK: usize = 32;

/// Shapes and constants from the file's metadata.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    pub(super) n_head: usize,
    pub(super) n_kv_head: usize,
    pub(super) head_dim: usize,
    pub(super) embedding: usize,
    pub(super) feed_forward: usize,
    pub(super) vocab: usize,
    pub(super) eps: f32,
}

impl Dims {
    pub(super) fn kv_width(&self) -> usize {
        self.n_kv_head * self.head_dim
    }
}

/// Which dimensions of a head the rotary embedding turns together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RopeStyle {
    /// Pairs (2i, 2i + 1): llama as converted to GGUF (its query and key rows permuted).
    Interleaved,
    /// Pairs (i, i + head_dim / 2): qwen2 (llama.cpp's "neox" layout).
    Halves,
}

/// The transformer families this model runs: the same blocks, told apart by the GGUF's
/// `general.architecture`, which also prefixes their metadata keys (`llama.block_count`).
/// qwen2 adds biases to the query, key and value products, found by tensor name.
pub(super) fn rope_style(architecture: &str) -> Option<RopeStyle> {
    match architecture {
        "llama" => Some(RopeStyle::Interleaved),
        "qwen2" => Some(RopeStyle::Halves),
        _ => None,
    }
}

/// The query, key and value biases of a block (qwen2), stacked in the order of the stacked
/// q/k/v product's output: as a tensor for prefill and as values for decoding.
pub(super) struct QkvBias {
    pub(super) tensor: Tensor,
    pub(super) stacked: Vec<f32>,
}

/// One transformer block. The candle matmuls serve prefill (and decoding too when there
/// are no 8-bit copies, under the formats kept for comparison). The products that read
/// the same input are stacked, as for decoding: q/k/v in one matrix (rows q, then k, then
/// v) and gate/up in another, so a prefill packs its input once per pair and runs one
/// larger product instead of several small ones (issue 10).
pub(super) struct Layer {
    pub(super) attn_norm: Tensor,
    pub(super) attn_norm_v: Vec<f32>,
    pub(super) ffn_norm: Tensor,
    pub(super) ffn_norm_v: Vec<f32>,
    /// On the int8 GEMM under `Fast` on CPUs with its fast kernel, else candle's.
    pub(super) qkv: Product,
    pub(super) wo: Product,
    pub(super) gate_up: Product,
    pub(super) down: Product,
    pub(super) qkv_bias: Option<QkvBias>,
    pub(super) decode: Option<DecodeLayer>,
}

/// A block's weights for decoding, the products that read the same input stacked.
pub(super) struct DecodeLayer {
    pub(super) qkv: DecodeMatrix,
    pub(super) o: DecodeMatrix,
    pub(super) gate_up: DecodeMatrix,
    pub(super) down: DecodeMatrix,
}

/// A weight for decoding: the file's Q4_1 blocks when it stores Q4_1 (the same weights,
/// fewest bytes), else 8-bit blocks; in panels on CPUs with AVX-512 VNNI.
pub(super) enum DecodeMatrix {
    Q8(Q8Matrix),
    Q4_1(Q41Matrix),
    Panels(Panels),
}

impl DecodeMatrix {
    /// The tensors stacked into one matrix.
    fn stack(tensors: &[&QTensor]) -> Result<Self, LlmError> {
        let q41 = tensors
            .iter()
            .map(|t| Q41Matrix::from_qtensor(t))
            .collect::<Result<Option<Vec<_>>, _>>()?;
        let panels = Kernel::detect().runs_panels();
        if let Some(parts) = q41 {
            let matrix = Q41Matrix::stack(&parts);
            return Ok(if panels {
                Self::Panels(Panels::from_q4_1(&matrix))
            } else {
                Self::Q4_1(matrix)
            });
        }
        let parts = tensors
            .iter()
            .map(|t| Q8Matrix::from_qtensor(t))
            .collect::<Result<Vec<_>, _>>()?;
        let matrix = Q8Matrix::stack(&parts);
        Ok(if panels {
            Self::Panels(Panels::from_q8(&matrix))
        } else {
            Self::Q8(matrix)
        })
    }

    /// Rows (outputs) and columns (inputs).
    pub(super) fn shape(&self) -> (usize, usize) {
        match self {
            Self::Q8(m) => m.shape(),
            Self::Q4_1(m) => m.shape(),
            Self::Panels(m) => m.shape(),
        }
    }

    pub(super) fn matvec(&self, kernel: Kernel, x: &Q8Vector, out: &mut [f32]) {
        self.matvecs(kernel, std::slice::from_ref(x), out);
    }

    /// `out[j × rows + row] = self[row] · xs[j]`: the products of several vectors, each
    /// weight row read once for all of them.
    pub(super) fn matvecs(&self, kernel: Kernel, xs: &[Q8Vector], out: &mut [f32]) {
        match self {
            Self::Q8(m) => m.matvecs(kernel, xs, out),
            Self::Q4_1(m) => m.matvecs(kernel, xs, out),
            Self::Panels(m) => m.matvecs(kernel, xs, out),
        }
    }
}

pub(super) struct Model {
    pub(super) dims: Dims,
    /// Token embeddings, `vocab` × `embedding`, f32, row-major.
    pub(super) embeddings: Vec<f32>,
    pub(super) layers: Vec<Layer>,
    pub(super) norm_v: Vec<f32>,
    /// The output projection only ever sees one row (the last token's), so it is always
    /// a decode weight.
    pub(super) output: DecodeMatrix,
    /// Rotary tables, `positions` × `head_dim / 2`, as candle's llama computes them.
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
    pub(super) cos_v: Vec<f32>,
    pub(super) sin_v: Vec<f32>,
    /// Positions the rotary tables cover: the most a cache may hold.
    pub(super) positions: usize,
    pub(super) rope: RopeStyle,
    device: Device,
}

/// The key/value cache of one sequence, token-major (`[position][kv head][head_dim]`)
/// per layer, allocated up front for the whole generation.
#[derive(Debug, Clone)]
pub(super) struct KvCache {
    pub(super) len: usize,
    pub(super) keys: Vec<Vec<f32>>,
    pub(super) values: Vec<Vec<f32>>,
}

impl KvCache {
    pub(super) fn new(dims: &Dims, n_layers: usize, capacity: usize) -> Self {
        let size = capacity * dims.kv_width();
        Self {
            len: 0,
            keys: (0..n_layers).map(|_| Vec::with_capacity(size)).collect(),
            values: (0..n_layers).map(|_| Vec::with_capacity(size)).collect(),
        }
    }

    /// Forgets every position from `len` on (the rejected part of a draft).
    pub(super) fn truncate(&mut self, dims: &Dims, len: usize) {
        let size = len * dims.kv_width();
        for layer in self.keys.iter_mut().chain(self.values.iter_mut()) {
            layer.truncate(size);
        }
        self.len = self.len.min(len);
    }

    /// A copy with room for `capacity` positions in all.
    pub(super) fn with_capacity(&self, dims: &Dims, capacity: usize) -> Self {
        let size = capacity * dims.kv_width();
        let copy = |layers: &[Vec<f32>]| {
            layers
                .iter()
                .map(|l| {
                    let mut v = Vec::with_capacity(size.max(l.len()));
                    v.extend_from_slice(l);
                    v
                })
                .collect()
        };
        Self {
            len: self.len,
            keys: copy(&self.keys),
            values: copy(&self.values),
        }
    }
}

fn md_usize(content: &Content, key: &str) -> Result<usize, LlmError> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_u32().ok())
        .map(|v| v as usize)
        .ok_or_else(|| LlmError::UnsupportedModel(format!("gguf lacks `{key}`")))
}

fn vector(t: &QTensor, device: &Device) -> Result<(Tensor, Vec<f32>), LlmError> {
    let t = t.dequantize(device)?;
    let v = t.to_vec1::<f32>()?;
    Ok((t, v))
}

/// Reads tensors by name from a GGUF's data.
struct Tensors<'a, R> {
    content: &'a Content,
    reader: &'a mut R,
    device: &'a Device,
}

impl<R: Read + Seek> Tensors<'_, R> {
    fn get(&mut self, name: &str) -> Result<QTensor, LlmError> {
        Ok(self.content.tensor(self.reader, name, self.device)?)
    }

    fn layer(&mut self, i: usize, format: WeightFormat) -> Result<Layer, LlmError> {
        let names = ["attn_q", "attn_k", "attn_v", "attn_output"]
            .into_iter()
            .chain(["ffn_gate", "ffn_up", "ffn_down"])
            .map(|n| format!("blk.{i}.{n}.weight"));
        let stored = names
            .map(|name| self.get(&name))
            .collect::<Result<Vec<_>, _>>()?;
        let [q, k, v, o, gate, up, down] = <[QTensor; 7]>::try_from(stored)
            .map_err(|_| LlmError::UnsupportedModel("incomplete block".into()))?;
        let decode = match format {
            WeightFormat::Fast | WeightFormat::FastF32 | WeightFormat::Q8_0 => Some(DecodeLayer {
                qkv: DecodeMatrix::stack(&[&q, &k, &v])?,
                o: DecodeMatrix::stack(&[&o])?,
                gate_up: DecodeMatrix::stack(&[&gate, &up])?,
                down: DecodeMatrix::stack(&[&down])?,
            }),
            WeightFormat::F32 | WeightFormat::AsStored => None,
        };
        // Prefill: int8 or dense f32 under `Fast` (the tensors come as stored, for decoding).
        let prefill = |parts: &[&QTensor]| prefill_matrix(parts, format, self.device);
        let (qkv, wo) = (prefill(&[&q, &k, &v])?, prefill(&[&o])?);
        let (gate_up, down) = (prefill(&[&gate, &up])?, prefill(&[&down])?);
        let (attn_norm, attn_norm_v) = vector(
            &self.get(&format!("blk.{i}.attn_norm.weight"))?,
            self.device,
        )?;
        let (ffn_norm, ffn_norm_v) =
            vector(&self.get(&format!("blk.{i}.ffn_norm.weight"))?, self.device)?;
        let qkv_bias = self.qkv_bias(i)?;
        Ok(Layer {
            attn_norm,
            attn_norm_v,
            ffn_norm,
            ffn_norm_v,
            qkv,
            wo,
            gate_up,
            down,
            qkv_bias,
            decode,
        })
    }

    /// A block's query/key/value biases, when the file has them (all three or none).
    fn qkv_bias(&mut self, i: usize) -> Result<Option<QkvBias>, LlmError> {
        let name = |n: &str| format!("blk.{i}.attn_{n}.bias");
        if !self.content.tensor_infos.contains_key(&name("q")) {
            return Ok(None);
        }
        let mut stacked = Vec::new();
        for part in ["q", "k", "v"] {
            stacked.extend(vector(&self.get(&name(part))?, self.device)?.1);
        }
        let tensor = Tensor::from_slice(&stacked, stacked.len(), self.device)?;
        Ok(Some(QkvBias { tensor, stacked }))
    }
}

/// The tensors stacked by rows into one product for prefill: int8 on the project's GEMM
/// under `Fast` where it is fast, dense f32 under `FastF32` (and for float files), else
/// the file's blocks as they are (what `AsStored` measures). The stored blocks are stacked
/// first (each row is whole blocks) and dequantised once, so loading copies no f32 matrix
/// twice.
fn prefill_matrix(
    parts: &[&QTensor],
    format: WeightFormat,
    device: &Device,
) -> Result<Product, LlmError> {
    let dtype = parts[0].dtype();
    let columns = parts[0].shape().dims2()?.1;
    if !columns.is_multiple_of(dtype.block_size()) {
        return Err(LlmError::UnsupportedModel(format!(
            "rows of {columns} values do not hold whole {dtype:?} blocks"
        )));
    }
    let mut rows = 0;
    let mut data = Vec::new();
    for part in parts {
        let (r, c) = part.shape().dims2()?;
        if c != columns || part.dtype() != dtype {
            return Err(LlmError::UnsupportedModel(
                "stacked weights differ in width or format".into(),
            ));
        }
        rows += r;
        data.extend_from_slice(&part.data()?);
    }
    let stacked = qtensor_from_ggml(dtype, &data, vec![rows, columns], device)?;
    Ok(match format {
        WeightFormat::Fast if crate::kernels::int8_preferred() => {
            let dense = stacked.dequantize(device)?;
            let (rows, cols) = dense.dims2()?;
            let values = dense.flatten_all()?.to_vec1::<f32>()?;
            Product::Int8(Int8Matrix::from_f32_blocked(
                rows,
                cols,
                &values,
                None,
                ACTIVATION_BLOCK,
            ))
        }
        WeightFormat::Fast | WeightFormat::FastF32 => {
            Product::Candle(QMatMul::Tensor(stacked.dequantize(device)?))
        }
        // Float files become dense tensors here too (candle's rule).
        WeightFormat::F32 | WeightFormat::Q8_0 | WeightFormat::AsStored => {
            Product::Candle(QMatMul::from_qtensor(stacked)?)
        }
    })
}

impl Model {
    /// Builds the model from a GGUF whose tensors `reader` serves in their in-memory
    /// formats (see [`super::weights`]).
    pub(super) fn from_gguf<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        format: WeightFormat,
        positions: usize,
    ) -> Result<Model, LlmError> {
        let device = Device::Cpu;
        let architecture = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .map_or("", String::as_str);
        let rope = rope_style(architecture).ok_or_else(|| {
            LlmError::UnsupportedModel(format!(
                "architecture `{architecture}` is not supported (only `llama` and `qwen2`)"
            ))
        })?;
        let key = |name: &str| format!("{architecture}.{name}");
        if md_usize(content, &key("expert_count")).is_ok_and(|n| n > 1) {
            return Err(LlmError::UnsupportedModel(
                "mixture-of-experts models are not supported".into(),
            ));
        }
        let n_head = md_usize(content, &key("attention.head_count"))?;
        let embedding = md_usize(content, &key("embedding_length"))?;
        let head_dim = embedding / n_head.max(1);
        // qwen2 files leave the rotary dimension out: it is the whole head.
        let rope_dim = md_usize(content, &key("rope.dimension_count")).unwrap_or(head_dim);
        if rope_dim != head_dim || head_dim % 2 != 0 {
            return Err(LlmError::UnsupportedModel(format!(
                "rotary dimension {rope_dim} differs from the head size {head_dim}"
            )));
        }
        let md_f32 = |key: &str| content.metadata.get(key).and_then(|v| v.to_f32().ok());
        let eps = md_f32(&key("attention.layer_norm_rms_epsilon"))
            .ok_or_else(|| LlmError::UnsupportedModel("gguf lacks the norm epsilon".into()))?;
        let freq_base = md_f32(&key("rope.freq_base")).unwrap_or(10_000.0);
        let mut tensors = Tensors {
            content,
            reader,
            device: &device,
        };
        let embeddings = tensors.get("token_embd.weight")?.dequantize(&device)?;
        let (vocab, _) = embeddings.dims2()?;
        let embeddings = embeddings.flatten_all()?.to_vec1::<f32>()?;
        let output = DecodeMatrix::stack(&[&tensors.get("output.weight")?])?;
        let (_, norm_v) = vector(&tensors.get("output_norm.weight")?, &device)?;
        let n_layers = md_usize(content, &key("block_count"))?;
        let layers = (0..n_layers)
            .map(|i| tensors.layer(i, format))
            .collect::<Result<Vec<_>, _>>()?;
        let dims = Dims {
            n_head,
            n_kv_head: md_usize(content, &key("attention.head_count_kv"))?,
            head_dim,
            embedding,
            feed_forward: md_usize(content, &key("feed_forward_length"))?,
            vocab,
            eps,
        };
        let (cos_v, sin_v) = rotary_tables(head_dim, freq_base, positions);
        let half = head_dim / 2;
        Ok(Model {
            dims,
            embeddings,
            layers,
            norm_v,
            output,
            cos: Tensor::from_slice(&cos_v, (positions, half), &device)?,
            sin: Tensor::from_slice(&sin_v, (positions, half), &device)?,
            cos_v,
            sin_v,
            positions,
            rope,
            device,
        })
    }

    /// Runs `tokens` through the model after the `cache.len` tokens its cache holds,
    /// appending theirs, and returns the last token's logits.
    pub(super) fn prefill(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
    ) -> Result<Vec<f32>, LlmError> {
        if tokens.is_empty() || cache.len + tokens.len() > self.positions {
            return Err(LlmError::Inference(format!(
                "{} tokens after {} do not fit {} positions",
                tokens.len(),
                cache.len,
                self.positions
            )));
        }
        if let Some(layers) = self.int8_layers() {
            return self.prefill_int8(&layers, cache, tokens);
        }
        let e = self.dims.embedding;
        let mut rows = Vec::with_capacity(tokens.len() * e);
        for &token in tokens {
            let start = token as usize * e;
            let row = self.embeddings.get(start..start + e).ok_or_else(|| {
                LlmError::Inference(format!("token {token} is outside the vocabulary"))
            })?;
            rows.extend_from_slice(row);
        }
        let mut x = Tensor::from_vec(rows, (tokens.len(), e), &self.device)?;
        // The same for every layer: built once.
        let mask = self.causal_mask(tokens.len(), cache.len)?;
        let ff = self.dims.feed_forward;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.dims.eps)?;
            let attn = self.prefill_attention(layer, i, &h, &mask, cache)?;
            x = (x + attn)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.dims.eps)?;
            let gate_up = apply(&layer.gate_up, &h)?;
            let gate = candle_nn::ops::silu(&gate_up.narrow(1, 0, ff)?)?;
            let act = (gate * gate_up.narrow(1, ff, ff)?)?;
            let mlp = apply(&layer.down, &act)?;
            x = (x + mlp)?;
        }
        cache.len += tokens.len();
        let last = x.get(tokens.len() - 1)?.to_vec1::<f32>()?;
        let mut logits = vec![0f32; self.dims.vocab];
        let (mut h, mut xq) = (Vec::new(), Q8Vector::default());
        self.logits(&last, &mut h, &mut xq, &mut logits);
        Ok(logits)
    }

    /// Attention of a prompt chunk `h` (`t` × embedding) over the cache and itself.
    fn prefill_attention(
        &self,
        layer: &Layer,
        index: usize,
        h: &Tensor,
        mask: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor, LlmError> {
        let Dims {
            n_head,
            n_kv_head,
            head_dim,
            ..
        } = self.dims;
        let (t, _) = h.dims2()?;
        let start = cache.len;
        let total = start + t;
        let rep = n_head / n_kv_head;
        let cos = self.cos.narrow(0, start, t)?;
        let sin = self.sin.narrow(0, start, t)?;
        let qkv = apply(&layer.qkv, h)?;
        let qkv = match &layer.qkv_bias {
            Some(bias) => qkv.broadcast_add(&bias.tensor)?,
            None => qkv,
        };
        let (q_width, kv_width) = (n_head * head_dim, self.dims.kv_width());
        let heads = |offset: usize, n: usize| -> Result<Tensor, LlmError> {
            let y = qkv
                .narrow(1, offset, n * head_dim)?
                .reshape((1, t, n, head_dim))?
                .transpose(1, 2)?;
            Ok(y.contiguous()?)
        };
        let rope = |x: &Tensor| match self.rope {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(x, &cos, &sin),
            RopeStyle::Halves => candle_nn::rotary_emb::rope(x, &cos, &sin),
        };
        let q = rope(&heads(0, n_head)?)?;
        let k = rope(&heads(q_width, n_kv_head)?)?;
        // Into the cache, token-major.
        let k_rows = k
            .squeeze(0)?
            .transpose(0, 1)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let v_rows = qkv
            .narrow(1, q_width + kv_width, kv_width)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        cache.keys[index].extend_from_slice(&k_rows);
        cache.values[index].extend_from_slice(&v_rows);
        let all = |rows: &[f32]| -> Result<Tensor, LlmError> {
            let y = Tensor::from_slice(rows, (total, n_kv_head, head_dim), &self.device)?;
            Ok(y.transpose(0, 1)?.contiguous()?)
        };
        let keys = all(&cache.keys[index])?;
        let values = all(&cache.values[index])?;
        // The query heads that share a key/value head, stacked: one matmul per kv head.
        let q = (q.reshape((n_kv_head, rep * t, head_dim))? / (head_dim as f64).sqrt())?;
        let scores = q.matmul(&keys.t()?)?.reshape((n_kv_head, rep, t, total))?;
        let scores = scores.broadcast_add(mask)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = weights
            .reshape((n_kv_head, rep * t, total))?
            .matmul(&values)?
            .reshape((n_head, t, head_dim))?
            .transpose(0, 1)?
            .reshape((t, n_head * head_dim))?;
        apply(&layer.wo, &y)
    }

    /// `t` × `start + t`: 0 where query `i` (position `start + i`) may see the key, -inf after.
    fn causal_mask(&self, t: usize, start: usize) -> Result<Tensor, LlmError> {
        let total = start + t;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..total).map(move |j| {
                    if j > start + i {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        Ok(Tensor::from_vec(mask, (t, total), &self.device)?)
    }
}

/// cos and sin of position × frequency, computed in f32 exactly as candle's llama does.
fn rotary_tables(head_dim: usize, freq_base: f32, positions: usize) -> (Vec<f32>, Vec<f32>) {
    let theta: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1f32 / freq_base.powf(i as f32 / head_dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(positions * theta.len());
    let mut sin = Vec::with_capacity(positions * theta.len());
    for p in 0..positions {
        for t in &theta {
            let angle = p as f32 * t;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;

    /// Random weights `rows` × `columns` in `dtype` (a deterministic pseudo-random fill).
    fn random_weights(rows: usize, columns: usize, seed: u32, dtype: GgmlDType) -> QTensor {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        let values: Vec<f32> = (0..rows * columns)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        let dense = Tensor::from_vec(values, (rows, columns), &Device::Cpu).unwrap();
        QTensor::quantize(&dense, dtype).unwrap()
    }

    /// A stacked prefill product is the separate products side by side, for dense and
    /// for quantized (as stored) weights, on random weights and inputs.
    #[test]
    fn stacked_prefill_products_match_the_separate_ones() {
        let columns = 64;
        let input = {
            let values: Vec<f32> = (0..5 * columns)
                .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
                .collect();
            Tensor::from_vec(values, (5, columns), &Device::Cpu).unwrap()
        };
        for (format, dtype) in [
            (WeightFormat::Fast, GgmlDType::Q4_1),
            (WeightFormat::FastF32, GgmlDType::Q4_1),
            (WeightFormat::AsStored, GgmlDType::Q4_1),
            (WeightFormat::F32, GgmlDType::F32),
        ] {
            let parts = [
                random_weights(32, columns, 1, dtype),
                random_weights(64, columns, 2, dtype),
                random_weights(32, columns, 3, dtype),
            ];
            let product = |parts: &[&QTensor]| {
                let product = prefill_matrix(parts, format, &Device::Cpu).unwrap();
                apply(&product, &input).unwrap()
            };
            let stacked = product(&parts.iter().collect::<Vec<_>>());
            let separate: Vec<Tensor> = parts.iter().map(|part| product(&[part])).collect();
            let expected = Tensor::cat(&separate, 1).unwrap();
            let worst = (stacked - expected)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(worst <= 1e-4, "{format:?}: {worst}");
        }
    }
}
