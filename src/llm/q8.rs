//! Weights for decoding one token at a time: each row quantised to 8 bits in blocks of 32
//! with one f32 scale per block (ggml's Q8_0 with a wider scale), multiplied by an
//! activation vector quantised the same way. A token then reads ~1.06 bytes per weight
//! instead of 4 (f32), which is what bounds decoding speed on a few cores. The dot products
//! (here and in [`super::q4`]) have kernels chosen at run time ([`Kernel`]): AVX-512 VNNI
//! (one instruction multiplies and sums 64 byte pairs), AVX2, and a portable one that the
//! others are tested against; the rows of a product are split across candle's own worker
//! pool (the one its quantised matmuls use), so there is one set of threads.

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

    /// Rows (outputs) and columns (inputs).
    pub(super) fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Block `block` of `row`: its scale and its 32 values.
    pub(super) fn block(&self, row: usize, block: usize) -> (f32, &[i8]) {
        let at = row * self.cols / BLOCK + block;
        (self.scales[at], &self.quants[at * BLOCK..(at + 1) * BLOCK])
    }

    /// `out[j × rows + row] = self[row] · xs[j]` for the vectors `xs`, each weight row
    /// read once for all of them.
    pub(super) fn matvecs(&self, kernel: Kernel, xs: &[Q8Vector], out: &mut [f32]) {
        assert!(
            xs.iter().all(|x| x.quants.len() == self.cols),
            "activation length"
        );
        assert_eq!(out.len(), self.rows * xs.len(), "output length");
        for_each_row_of(out, xs.len(), |row, j| self.dot_row(kernel, row, &xs[j]));
    }

    fn dot_row(&self, kernel: Kernel, row: usize, x: &Q8Vector) -> f32 {
        let blocks = self.cols / BLOCK;
        let scales = &self.scales[row * blocks..(row + 1) * blocks];
        let quants = &self.quants[row * self.cols..(row + 1) * self.cols];
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::Avx512Vnni` is only handed out when the CPU has its features;
            // the slices hold `blocks` blocks each (checked lengths above).
            Kernel::Avx512Vnni => unsafe { avx512::dot(scales, quants, &x.scales, &x.quants) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX2 and FMA.
            Kernel::Avx2 => unsafe { avx2::dot(scales, quants, &x.scales, &x.quants) },
            Kernel::Portable => dot_portable(scales, quants, &x.scales, &x.quants),
        }
    }
}

/// IEEE half precision to single (exact for every value, subnormals included), by moving
/// the bits: the portable kernels widen a scale per block with it.
pub(super) fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match exponent {
        // Zero and subnormals: mantissa × 2^-24, exact in f32.
        0 => return sign_of(sign) * mantissa as f32 * (1.0 / 16_777_216.0),
        31 => 0x7f80_0000 | (mantissa << 13),
        _ => ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(sign | magnitude)
}

fn sign_of(sign_bit: u32) -> f32 {
    if sign_bit == 0 { 1.0 } else { -1.0 }
}

/// Names the decode kernel to use instead of the fastest (see [`Kernel::detect`]).
const KERNEL_ENV: &str = "BULKHEAD_DECODE_KERNEL";

/// A dot-product kernel. [`Kernel::detect`] picks the fastest the CPU has (checked at run
/// time, so a baseline x86-64 build uses AVX-512 where it exists); the others stay callable
/// so tests compare them on the same data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kernel {
    /// AVX-512 F/BW/VL with VNNI (`vpdpbusd`), and F16C for the 4-bit blocks' scales.
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    /// AVX2, FMA and F16C (x86-64-v3).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs (`std` caches the CPU's features: a few loads).
    /// `BULKHEAD_DECODE_KERNEL` (`avx512`, `avx2` or `portable`) picks a slower one, to
    /// compare answers or speed with the kernel a CPU without AVX-512 runs; a kernel this
    /// CPU lacks is refused with a warning, and the fastest runs.
    pub(super) fn detect() -> Kernel {
        static CHOSEN: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let available = Kernel::available();
            let wanted = std::env::var(KERNEL_ENV).ok();
            let named = wanted.as_deref().and_then(|name| {
                available
                    .iter()
                    .copied()
                    .find(|kernel| kernel.name() == name.trim())
            });
            if let (Some(name), None) = (&wanted, named) {
                tracing::warn!(
                    "{KERNEL_ENV}={name} is not a kernel this CPU runs ({:?}); using the fastest",
                    available.iter().map(|k| k.name()).collect::<Vec<_>>()
                );
            }
            named.unwrap_or(available[0])
        })
    }

    /// Whether decode weights are best held in [`super::panels`] for this kernel (only
    /// AVX-512 VNNI has a panel kernel; the others compute panels by the reference).
    pub(super) fn runs_panels(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self == Kernel::Avx512Vnni {
            return true;
        }
        false
    }

    fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => "avx512",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }

    /// Every kernel this CPU runs, fastest first; [`Kernel::Portable`] is always last.
    pub(super) fn available() -> Vec<Kernel> {
        let mut kernels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            if avx2 && crate::kernels::has_avx512_vnni() {
                kernels.push(Kernel::Avx512Vnni);
            }
            if avx2 {
                kernels.push(Kernel::Avx2);
            }
        }
        kernels.push(Kernel::Portable);
        kernels
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::BLOCK;

    /// Two blocks per step: `vpdpbusd` multiplies unsigned by signed bytes and sums each
    /// four into an i32, so the weights go in as |w| and the activation takes w's sign.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F/BW/VL/VNNI, AVX2 and FMA; `w` and `x` hold
    /// `w_scales.len()` blocks each, and `x_scales` as many scales; no activation quant is
    /// -128.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    pub(super) unsafe fn dot(w_scales: &[f32], w: &[i8], x_scales: &[f32], x: &[i8]) -> f32 {
        let blocks = w_scales.len();
        // Lanes 0..8 take the first block's scale, 8..16 the second's.
        let spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let mut acc = _mm512_setzero_ps();
        let mut b = 0;
        while b + 2 <= blocks {
            // SAFETY: blocks b and b + 1 lie inside every slice (caller's contract).
            let (wv, xv, scale) = unsafe {
                (
                    _mm512_loadu_si512(w.as_ptr().add(b * BLOCK) as *const _),
                    _mm512_loadu_si512(x.as_ptr().add(b * BLOCK) as *const _),
                    _mm_mul_ps(
                        _mm_castpd_ps(_mm_load_sd(w_scales.as_ptr().add(b) as *const f64)),
                        _mm_castpd_ps(_mm_load_sd(x_scales.as_ptr().add(b) as *const f64)),
                    ),
                )
            };
            let negative = _mm512_movepi8_mask(wv);
            let signed_x = _mm512_mask_sub_epi8(xv, negative, _mm512_setzero_si512(), xv);
            let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(wv), signed_x);
            let scale = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(scale));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc);
            b += 2;
        }
        let mut total = _mm512_reduce_add_ps(acc);
        if b < blocks {
            // SAFETY: block b lies inside every slice.
            let (wv, xv) = unsafe {
                (
                    _mm256_loadu_si256(w.as_ptr().add(b * BLOCK) as *const __m256i),
                    _mm256_loadu_si256(x.as_ptr().add(b * BLOCK) as *const __m256i),
                )
            };
            let sums = _mm256_dpbusd_epi32(
                _mm256_setzero_si256(),
                _mm256_abs_epi8(wv),
                _mm256_sign_epi8(xv, wv),
            );
            let block = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(sums));
            total += block as f32 * (w_scales[b] * x_scales[b]);
        }
        total
    }
}

/// One field of stacked matrices, the parts' values one after another.
pub(super) fn stacked<P, T: Copy>(parts: &[P], field: impl Fn(&P) -> &Vec<T>) -> Vec<T> {
    parts
        .iter()
        .flat_map(|p| field(p).iter().copied())
        .collect()
}

/// `out[j × rows + row] = dot(row, j)` for every row of a `rows`-row matrix and each of
/// `n` vectors (`out` holds `n × rows`), the rows split across the worker pool in runs of
/// `ROWS_PER_ITEM`, so a worker reads a weight row once for all the vectors.
pub(super) fn for_each_row_of(out: &mut [f32], n: usize, dot: impl Fn(usize, usize) -> f32 + Sync) {
    let rows = out.len() / n.max(1);
    let out_ptr = out.as_mut_ptr() as usize;
    barrier_pool().execute_chunked(rows.div_ceil(ROWS_PER_ITEM), |range| {
        let start = range.start * ROWS_PER_ITEM;
        let end = (range.end * ROWS_PER_ITEM).min(rows);
        for row in start..end {
            for j in 0..n {
                // SAFETY: work items cover disjoint row ranges, so each cell (j, row) of
                // `out` is written by one of them; `out` outlives the call
                // (execute_chunked returns only once every worker is done).
                unsafe { *(out_ptr as *mut f32).add(j * rows + row) = dot(row, j) };
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QMatMul;
    use candle_core::{Device, Module, Tensor};

    use crate::kernels::pseudo_random as random;

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
        // 18 blocks a row (the model's width) and 19 (an odd count: the AVX-512 kernel's
        // single-block tail).
        for (rows, cols) in [(67, 576), (9, 608)] {
            let w = random(rows * cols, 1);
            let x = random(cols, 2);
            let mut matrix = Q8Matrix::from_f32(rows, cols, &w).unwrap();
            // A weight of -128 (possible in a file's Q8_0 blocks, never made by `from_f32`).
            matrix.quants[5] = -128;
            let mut xq = Q8Vector::default();
            xq.quantize(&x);
            for kernel in Kernel::available() {
                let mut out = vec![0f32; rows];
                matrix.matvecs(kernel, std::slice::from_ref(&xq), &mut out);
                for (row, got) in out.iter().enumerate() {
                    let mut weights = w[row * cols..(row + 1) * cols].to_vec();
                    if row == 0 {
                        weights[5] = -128.0 * matrix.scales[0];
                    }
                    let exact: f32 = weights.iter().zip(&x).map(|(a, b)| a * b).sum();
                    let portable = dot_portable(
                        &matrix.scales[row * cols / BLOCK..(row + 1) * cols / BLOCK],
                        &matrix.quants[row * cols..(row + 1) * cols],
                        &xq.scales,
                        &xq.quants,
                    );
                    assert!(
                        (got - portable).abs() < 1e-3,
                        "{kernel:?} row {row}: {got} vs {portable}"
                    );
                    // Two 8-bit roundings of values in [-1, 1] over ~600 terms: ~0.05
                    // standard deviation.
                    assert!(
                        (got - exact).abs() < 0.25,
                        "{kernel:?} row {row}: {got} vs {exact}"
                    );
                }
            }
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
        ours.matvecs(Kernel::detect(), std::slice::from_ref(&xq), &mut out);
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
        stacked.matvecs(Kernel::detect(), std::slice::from_ref(&xq), &mut twice);
        assert_eq!(&twice[..rows], &out[..]);
        assert_eq!(&twice[rows..], &out[..]);
    }
}
