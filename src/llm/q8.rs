//! Weights for decoding one token at a time: each row quantised to 8 bits in blocks of 32
//! with one f32 scale per block (ggml's Q8_0 with a wider scale), multiplied by an
//! activation vector quantised the same way. A token then reads ~1.06 bytes per weight
//! instead of 4 (f32), which is what bounds decoding speed on a few cores. The dot product
//! has an AVX2 kernel chosen at run time and a portable one; the rows of a product are
//! split across candle's own worker pool (the one its quantised matmuls use), so there is
//! one set of threads.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::utils::barrier_pool;

use super::LlmError;

/// Weights per block (and per scale).
pub(super) const BLOCK: usize = 32;
/// Rows per work item handed to a worker: a few KB of weights, so a hand-off is rare.
const ROWS_PER_ITEM: usize = 16;

/// A `rows` × `cols` matrix (cols a multiple of [`BLOCK`]), row-major.
#[derive(Debug, Clone)]
pub(super) struct Q8Matrix {
    rows: usize,
    cols: usize,
    /// `rows * cols / BLOCK` scales, row by row.
    scales: Vec<f32>,
    quants: Vec<i8>,
}

/// An activation vector quantised for [`Q8Matrix::matvec`]; reused between tokens.
#[derive(Debug, Clone, Default)]
pub(super) struct Q8Vector {
    pub(super) scales: Vec<f32>,
    pub(super) quants: Vec<i8>,
    /// Per block, scale × the sum of its quants (for formats with a minimum, as Q4_1).
    pub(super) sums: Vec<f32>,
}

/// Quantises `values` (a multiple of [`BLOCK`] long) into `scales` and `quants`, the way
/// ggml quantises Q8_0: scale = max |x| / 127, q = round(x / scale).
fn quantize_into(values: &[f32], scales: &mut Vec<f32>, quants: &mut Vec<i8>) {
    scales.clear();
    quants.clear();
    for block in values.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        scales.push(scale);
        // In [-127, 127]: the AVX2 kernel relies on it (no -128).
        quants.extend(block.iter().map(|v| (v * inverse).round() as i8));
    }
}

impl Q8Vector {
    pub(super) fn quantize(&mut self, values: &[f32]) {
        quantize_into(values, &mut self.scales, &mut self.quants);
        self.sums.clear();
        for (scale, block) in self.scales.iter().zip(self.quants.chunks_exact(BLOCK)) {
            let sum: i32 = block.iter().map(|q| i32::from(*q)).sum();
            self.sums.push(scale * sum as f32);
        }
    }
}

impl Q8Matrix {
    /// Quantises a row-major f32 matrix.
    pub(super) fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<Self, LlmError> {
        if !cols.is_multiple_of(BLOCK) || values.len() != rows * cols {
            return Err(LlmError::UnsupportedModel(format!(
                "a {rows}x{cols} weight cannot be held in 8-bit blocks of {BLOCK}"
            )));
        }
        let mut scales = Vec::with_capacity(rows * cols / BLOCK);
        let mut quants = Vec::with_capacity(rows * cols);
        let mut row_scales = Vec::with_capacity(cols / BLOCK);
        let mut row_quants = Vec::with_capacity(cols);
        for row in values.chunks_exact(cols) {
            quantize_into(row, &mut row_scales, &mut row_quants);
            scales.extend_from_slice(&row_scales);
            quants.extend_from_slice(&row_quants);
        }
        Ok(Self {
            rows,
            cols,
            scales,
            quants,
        })
    }

    /// From a 2-D GGUF tensor: Q8_0 blocks are taken as they are (f16 scale widened, so
    /// exactly the same weights); any other format is dequantised and quantised.
    pub(super) fn from_qtensor(tensor: &QTensor) -> Result<Self, LlmError> {
        let (rows, cols) = tensor.shape().dims2()?;
        if tensor.dtype() != GgmlDType::Q8_0 {
            let dense = tensor.dequantize(&candle_core::Device::Cpu)?;
            let values = dense.flatten_all()?.to_vec1::<f32>()?;
            return Self::from_f32(rows, cols, &values);
        }
        // A Q8_0 block: f16 scale (little-endian), then 32 signed bytes.
        let data = tensor.data()?;
        let block_bytes = 2 + BLOCK;
        if data.len() != rows * cols / BLOCK * block_bytes {
            return Err(LlmError::Inference("Q8_0 tensor has the wrong size".into()));
        }
        let mut scales = Vec::with_capacity(rows * cols / BLOCK);
        let mut quants = Vec::with_capacity(rows * cols);
        for block in data.chunks_exact(block_bytes) {
            let bits = u16::from_le_bytes([block[0], block[1]]);
            scales.push(f16_to_f32(bits));
            quants.extend(block[2..].iter().map(|b| *b as i8));
        }
        Ok(Self {
            rows,
            cols,
            scales,
            quants,
        })
    }

    /// Stacks matrices of the same width: one product then computes all of them.
    pub(super) fn stack(parts: &[Q8Matrix]) -> Self {
        let cols = parts.first().map_or(0, |p| p.cols);
        debug_assert!(parts.iter().all(|p| p.cols == cols));
        Self {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols,
            scales: stacked(parts, |p| &p.scales),
            quants: stacked(parts, |p| &p.quants),
        }
    }

    /// `out = self · x`, rows split across the worker pool.
    pub(super) fn matvec(&self, x: &Q8Vector, out: &mut [f32]) {
        assert_eq!(x.quants.len(), self.cols, "activation length");
        assert_eq!(out.len(), self.rows, "output length");
        let kernel = Kernel::detect();
        for_each_row(out, |row| self.dot_row(kernel, row, x));
    }

    fn dot_row(&self, kernel: Kernel, row: usize, x: &Q8Vector) -> f32 {
        let blocks = self.cols / BLOCK;
        let scales = &self.scales[row * blocks..(row + 1) * blocks];
        let quants = &self.quants[row * self.cols..(row + 1) * self.cols];
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::Avx2` is only chosen when the CPU has AVX2 and FMA; the slices
            // hold `blocks` blocks each (checked lengths above).
            Kernel::Avx2 => unsafe { avx2::dot(scales, quants, &x.scales, &x.quants) },
            Kernel::Portable => dot_portable(scales, quants, &x.scales, &x.quants),
        }
    }
}

/// IEEE half precision to single (exact for every value, subnormals included).
pub(super) fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f32::from(bits & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(exponent - 15),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

/// Whether the AVX2 kernels may run (checked at run time: a baseline build has them too).
pub(super) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl Kernel {
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            return Kernel::Avx2;
        }
        Kernel::Portable
    }
}

fn dot_portable(w_scales: &[f32], w: &[i8], x_scales: &[f32], x: &[i8]) -> f32 {
    let mut sum = 0f32;
    for (b, (ws, xs)) in w_scales.iter().zip(x_scales).enumerate() {
        let range = b * BLOCK..(b + 1) * BLOCK;
        let block: i32 = w[range.clone()]
            .iter()
            .zip(&x[range])
            .map(|(a, b)| i32::from(*a) * i32::from(*b))
            .sum();
        sum += block as f32 * (ws * xs);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::BLOCK;

    /// # Safety
    /// The CPU must have AVX2 and FMA; `w` and `x` hold `w_scales.len()` blocks each, and
    /// `x_scales` as many scales; no quant is -128.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot(w_scales: &[f32], w: &[i8], x_scales: &[f32], x: &[i8]) -> f32 {
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for (b, (ws, xs)) in w_scales.iter().zip(x_scales).enumerate() {
            // SAFETY: block `b` lies inside both slices (caller's contract).
            let (wv, xv) = unsafe {
                (
                    _mm256_loadu_si256(w.as_ptr().add(b * BLOCK) as *const __m256i),
                    _mm256_loadu_si256(x.as_ptr().add(b * BLOCK) as *const __m256i),
                )
            };
            // |w| (unsigned) times x with w's sign: pairs summed to i16 without overflow
            // (2 × 127 × 127 < 32768), then to i32.
            let products = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(ws * xs), sums, acc);
        }
        let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let single = _mm_add_ss(quarter, _mm_shuffle_ps(quarter, quarter, 1));
        _mm_cvtss_f32(single)
    }
}

/// One field of stacked matrices, the parts' values one after another.
pub(super) fn stacked<P, T: Copy>(parts: &[P], field: impl Fn(&P) -> &Vec<T>) -> Vec<T> {
    parts
        .iter()
        .flat_map(|p| field(p).iter().copied())
        .collect()
}

/// `out[row] = dot(row)` for every row, the rows split across the worker pool in runs of
/// `ROWS_PER_ITEM`.
pub(super) fn for_each_row(out: &mut [f32], dot: impl Fn(usize) -> f32 + Sync) {
    let rows = out.len();
    let out_ptr = out.as_mut_ptr() as usize;
    barrier_pool().execute_chunked(rows.div_ceil(ROWS_PER_ITEM), |range| {
        let start = range.start * ROWS_PER_ITEM;
        let end = (range.end * ROWS_PER_ITEM).min(rows);
        // SAFETY: work items cover disjoint row ranges of `out`, which outlives the call
        // (execute_chunked returns only once every worker is done).
        let out = unsafe {
            std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(start), end - start)
        };
        for (o, row) in out.iter_mut().zip(start..end) {
            *o = dot(row);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QMatMul;
    use candle_core::{Device, Module, Tensor};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        // A small LCG: deterministic, no extra dependency.
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn half_precision_scales_convert_exactly() {
        for bits in [0u16, 1, 0x3c00, 0xbc00, 0x3555, 0x7bff, 0x0400, 0x83ff] {
            let value = f16_to_f32(bits);
            let back = QTensor::quantize(
                &Tensor::from_vec(vec![value; BLOCK], (1, BLOCK), &Device::Cpu).unwrap(),
                GgmlDType::F16,
            )
            .unwrap();
            let data = back.data().unwrap();
            assert_eq!(
                u16::from_le_bytes([data[0], data[1]]),
                bits,
                "{bits:#x} -> {value}"
            );
        }
    }

    #[test]
    fn kernels_agree_with_each_other_and_with_f32() {
        let (rows, cols) = (67, 576);
        let w = random(rows * cols, 1);
        let x = random(cols, 2);
        let matrix = Q8Matrix::from_f32(rows, cols, &w).unwrap();
        let mut xq = Q8Vector::default();
        xq.quantize(&x);
        let mut out = vec![0f32; rows];
        matrix.matvec(&xq, &mut out);
        for (row, got) in out.iter().enumerate() {
            let exact: f32 = w[row * cols..(row + 1) * cols]
                .iter()
                .zip(&x)
                .map(|(a, b)| a * b)
                .sum();
            let portable = dot_portable(
                &matrix.scales[row * cols / BLOCK..(row + 1) * cols / BLOCK],
                &matrix.quants[row * cols..(row + 1) * cols],
                &xq.scales,
                &xq.quants,
            );
            assert!(
                (got - portable).abs() < 1e-3,
                "row {row}: {got} vs {portable}"
            );
            // Two 8-bit roundings of values in [-1, 1] over 576 terms: ~0.05 standard
            // deviation.
            assert!((got - exact).abs() < 0.25, "row {row}: {got} vs {exact}");
        }
    }

    #[test]
    fn matches_candles_q8_0_reference() {
        let (rows, cols) = (96, 1536);
        let device = Device::Cpu;
        let w = Tensor::from_vec(random(rows * cols, 3), (rows, cols), &device).unwrap();
        let x = random(cols, 4);
        let reference = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let ours = Q8Matrix::from_qtensor(&reference).unwrap();
        let exact: Vec<f32> = reference
            .dequantize(&device)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
            .iter()
            .map(|row| row.iter().zip(&x).map(|(a, b)| a * b).sum())
            .collect();
        let expected = QMatMul::from_qtensor(reference)
            .unwrap()
            .forward(&Tensor::from_slice(&x, (1, cols), &device).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut xq = Q8Vector::default();
        xq.quantize(&x);
        let mut out = vec![0f32; rows];
        ours.matvec(&xq, &mut out);
        // Same weights; candle quantises the activation in blocks of 256 (Q8K, on CPUs
        // with its repacked kernels) or 32 with an f16 scale, ours in blocks of 32 with an
        // f32 scale: ours is at least as close to the exact product.
        let squared = |values: &[f32]| -> f32 {
            values
                .iter()
                .zip(&exact)
                .map(|(a, b)| (a - b) * (a - b))
                .sum()
        };
        assert!(squared(&out) <= 1.5 * squared(&expected) + 1e-3);
        for (got, want) in out.iter().zip(&exact) {
            assert!((got - want).abs() < 0.4, "{got} vs {want}");
        }
        let stacked = Q8Matrix::stack(&[ours.clone(), ours]);
        assert_eq!(stacked.rows, 2 * rows);
        let mut twice = vec![0f32; 2 * rows];
        stacked.matvec(&xq, &mut twice);
        assert_eq!(&twice[..rows], &out[..]);
        assert_eq!(&twice[rows..], &out[..]);
    }
}
