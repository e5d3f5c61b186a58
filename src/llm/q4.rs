//! Decode weights kept in the file's own Q4_1 format (blocks of 32 four-bit values with a
//! scale and a minimum: w = d·q + m), so decoding reads ~0.75 bytes a weight (scales
//! widened to f32) and uses exactly the weights the file holds. The activation is the
//! same 8-bit vector as for [`super::q8`]: Σ w·x = d·dx·Σ q·qx + m·dx·Σ qx. The kernels
//! are [`Kernel`]'s.

use candle_core::quantized::{GgmlDType, QTensor};

use super::LlmError;
use super::q8::{BLOCK, Kernel, Q8Vector, f16_to_f32};

/// A `rows` × `cols` matrix in Q4_1 blocks, row-major.
#[derive(Debug, Clone)]
pub(super) struct Q41Matrix {
    rows: usize,
    cols: usize,
    /// One per block, row by row (the file's half-precision values widened: the AVX2
    /// kernel measured 28% slower widening them itself).
    scales: Vec<f32>,
    mins: Vec<f32>,
    /// 16 bytes a block: byte j holds value j (low nibble) and value j + 16 (high).
    nibbles: Vec<u8>,
}

impl Q41Matrix {
    /// From a 2-D Q4_1 GGUF tensor, `None` for any other format.
    pub(super) fn from_qtensor(tensor: &QTensor) -> Result<Option<Self>, LlmError> {
        if tensor.dtype() != GgmlDType::Q4_1 {
            return Ok(None);
        }
        let (rows, cols) = tensor.shape().dims2()?;
        let data = tensor.data()?;
        // A Q4_1 block: f16 scale, f16 minimum, 16 bytes of nibbles.
        let block_bytes = 4 + BLOCK / 2;
        let blocks = rows * cols / BLOCK;
        if !cols.is_multiple_of(BLOCK) || data.len() != blocks * block_bytes {
            return Err(LlmError::Inference("Q4_1 tensor has the wrong size".into()));
        }
        let mut matrix = Self {
            rows,
            cols,
            scales: Vec::with_capacity(blocks),
            mins: Vec::with_capacity(blocks),
            nibbles: Vec::with_capacity(blocks * BLOCK / 2),
        };
        for block in data.chunks_exact(block_bytes) {
            matrix
                .scales
                .push(f16_to_f32(u16::from_le_bytes([block[0], block[1]])));
            matrix
                .mins
                .push(f16_to_f32(u16::from_le_bytes([block[2], block[3]])));
            matrix.nibbles.extend_from_slice(&block[4..]);
        }
        Ok(Some(matrix))
    }

    /// Stacks matrices of the same width.
    pub(super) fn stack(parts: &[Q41Matrix]) -> Self {
        let cols = parts.first().map_or(0, |p| p.cols);
        Self {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols,
            scales: super::q8::stacked(parts, |p| &p.scales),
            mins: super::q8::stacked(parts, |p| &p.mins),
            nibbles: super::q8::stacked(parts, |p| &p.nibbles),
        }
    }

    /// Rows (outputs) and columns (inputs).
    pub(super) fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Block `block` of `row`: its scale, its minimum and its 32 values (0..=15).
    pub(super) fn block(&self, row: usize, block: usize) -> (f32, f32, [u8; BLOCK]) {
        let at = row * self.cols / BLOCK + block;
        let bytes = &self.nibbles[at * BLOCK / 2..(at + 1) * BLOCK / 2];
        let mut values = [0u8; BLOCK];
        for (j, byte) in bytes.iter().enumerate() {
            values[j] = byte & 0x0f;
            values[j + BLOCK / 2] = byte >> 4;
        }
        (self.scales[at], self.mins[at], values)
    }

    /// `out[j × rows + row] = self[row] · xs[j]`, each weight row read once.
    pub(super) fn matvecs(&self, kernel: Kernel, xs: &[Q8Vector], out: &mut [f32]) {
        assert!(
            xs.iter().all(|x| x.quants.len() == self.cols),
            "activation length"
        );
        assert_eq!(out.len(), self.rows * xs.len(), "output length");
        super::q8::for_each_row_of(out, xs.len(), |row, j| self.dot_row(kernel, row, &xs[j]));
    }

    fn dot_row(&self, kernel: Kernel, row: usize, x: &Q8Vector) -> f32 {
        let blocks = self.cols / BLOCK;
        let b = row * blocks..(row + 1) * blocks;
        let nibbles = &self.nibbles[row * self.cols / 2..(row + 1) * self.cols / 2];
        let (scales, mins) = (&self.scales[b.clone()], &self.mins[b]);
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::Avx512Vnni` is only handed out when the CPU has its features;
            // every slice holds `blocks` blocks.
            Kernel::Avx512Vnni => unsafe { avx512::dot(scales, mins, nibbles, x) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX2, FMA and F16C.
            Kernel::Avx2 => unsafe { avx2::dot(scales, mins, nibbles, x) },
            Kernel::Portable => dot_portable(scales, mins, nibbles, x),
        }
    }
}

fn dot_portable(scales: &[f32], mins: &[f32], nibbles: &[u8], x: &Q8Vector) -> f32 {
    let mut sum = 0f32;
    for (b, (d, m)) in scales.iter().zip(mins).enumerate() {
        let q = &nibbles[b * BLOCK / 2..(b + 1) * BLOCK / 2];
        let xq = &x.quants[b * BLOCK..(b + 1) * BLOCK];
        let mut dot = 0i32;
        for (j, byte) in q.iter().enumerate() {
            dot += i32::from(byte & 0x0f) * i32::from(xq[j]);
            dot += i32::from(byte >> 4) * i32::from(xq[j + BLOCK / 2]);
        }
        sum += d * x.scales[b] * dot as f32 + m * x.sums[b];
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, Q8Vector};

    /// # Safety
    /// The CPU must have AVX2 and FMA; `nibbles` and `x` hold `scales.len()` blocks.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot(scales: &[f32], mins: &[f32], nibbles: &[u8], x: &Q8Vector) -> f32 {
        let low = _mm256_set1_epi8(0x0f);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut min_sum = 0f32;
        for (b, (d, m)) in scales.iter().zip(mins).enumerate() {
            // SAFETY: block `b` lies inside both slices (caller's contract).
            let (packed, xv) = unsafe {
                (
                    _mm_loadu_si128(nibbles.as_ptr().add(b * BLOCK / 2) as *const __m128i),
                    _mm256_loadu_si256(x.quants.as_ptr().add(b * BLOCK) as *const __m256i),
                )
            };
            // Values 0..16 from the low nibbles, 16..32 from the high ones.
            let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
            let q = _mm256_and_si256(both, low);
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), ones));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * x.scales[b]), sums, acc);
            min_sum += m * x.sums[b];
        }
        let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let single = _mm_add_ss(quarter, _mm_shuffle_ps(quarter, quarter, 1));
        _mm_cvtss_f32(single) + min_sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{BLOCK, Q8Vector};

    /// Four blocks per step: their 64 bytes of nibbles in one register, the low nibbles
    /// (each block's values 0..16) multiplied with the activation's first halves and the
    /// high ones with its second halves by `vpdpbusd` (unsigned nibble × signed byte, four
    /// products summed into each i32), so each 128-bit lane sums one block.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F/BW/VL/VNNI, AVX2 and FMA; `nibbles` and `x` hold
    /// `scales.len()` blocks, `mins` as many values.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    pub(super) unsafe fn dot(scales: &[f32], mins: &[f32], nibbles: &[u8], x: &Q8Vector) -> f32 {
        let blocks = scales.len();
        let low = _mm512_set1_epi8(0x0f);
        // Lane group k (four f32) takes block k's scale.
        let spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        let mut acc = _mm512_setzero_ps();
        let mut min_acc = _mm_setzero_ps();
        let mut b = 0;
        while b + 4 <= blocks {
            // SAFETY: blocks b..b + 4 lie inside every slice (caller's contract).
            let (packed, x01, x23, d, m, dx, sums) = unsafe {
                (
                    _mm512_loadu_si512(nibbles.as_ptr().add(b * BLOCK / 2) as *const _),
                    _mm512_loadu_si512(x.quants.as_ptr().add(b * BLOCK) as *const _),
                    _mm512_loadu_si512(x.quants.as_ptr().add((b + 2) * BLOCK) as *const _),
                    _mm_loadu_ps(scales.as_ptr().add(b)),
                    _mm_loadu_ps(mins.as_ptr().add(b)),
                    _mm_loadu_ps(x.scales.as_ptr().add(b)),
                    _mm_loadu_ps(x.sums.as_ptr().add(b)),
                )
            };
            // 128-bit lanes of x01: block b's first half, its second, b + 1's first, ...
            let x_first = _mm512_shuffle_i64x2(x01, x23, 0b10_00_10_00);
            let x_second = _mm512_shuffle_i64x2(x01, x23, 0b11_01_11_01);
            let q_first = _mm512_and_si512(packed, low);
            let q_second = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low);
            let dot = _mm512_dpbusd_epi32(
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), q_first, x_first),
                q_second,
                x_second,
            );
            let scale = _mm_mul_ps(d, dx);
            let scale = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(scale));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc);
            min_acc = _mm_fmadd_ps(m, sums, min_acc);
            b += 4;
        }
        let mut total =
            _mm512_reduce_add_ps(acc) + _mm512_reduce_add_ps(_mm512_zextps128_ps512(min_acc));
        let low = _mm256_set1_epi8(0x0f);
        while b < blocks {
            // SAFETY: block b lies inside every slice.
            let (packed, xv) = unsafe {
                (
                    _mm_loadu_si128(nibbles.as_ptr().add(b * BLOCK / 2) as *const __m128i),
                    _mm256_loadu_si256(x.quants.as_ptr().add(b * BLOCK) as *const __m256i),
                )
            };
            let q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low);
            let dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, xv);
            let dot = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(dot));
            total += scales[b] * x.scales[b] * dot as f32 + mins[b] * x.sums[b];
            b += 1;
        }
        total
    }
}

#[cfg(test)]
impl Q41Matrix {
    /// `values` (`rows × cols`) quantised to Q4_1 by candle, as a file would hold them.
    pub(super) fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Self {
        let device = candle_core::Device::Cpu;
        let w = candle_core::Tensor::from_slice(values, (rows, cols), &device).unwrap();
        let stored = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        Self::from_qtensor(&stored).unwrap().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn matches_the_dequantised_product() {
        // 18 blocks a row (four groups of four and a tail of two for the AVX-512 kernel),
        // 48 (no tail) and 5.
        for (rows, cols) in [(40, 576), (8, 1536), (8, 160)] {
            matches_the_dequantised_product_at(rows, cols);
        }
    }

    fn matches_the_dequantised_product_at(rows: usize, cols: usize) {
        let device = Device::Cpu;
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.3)
            .collect();
        let w = Tensor::from_vec(values, (rows, cols), &device).unwrap();
        let stored = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let exact = stored
            .dequantize(&device)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let matrix = Q41Matrix::from_qtensor(&stored).unwrap().unwrap();
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 31 % 97) as f32 / 48.0) - 1.0)
            .collect();
        let mut xq = Q8Vector::default();
        xq.quantize(&x);
        let stacked = Q41Matrix::stack(&[matrix.clone(), matrix.clone()]);
        let blocks = cols / BLOCK;
        for kernel in Kernel::available() {
            let mut out = vec![0f32; 2 * rows];
            stacked.matvecs(kernel, std::slice::from_ref(&xq), &mut out);
            for (row, want) in exact.iter().enumerate() {
                let want: f32 = want.iter().zip(&x).map(|(a, b)| a * b).sum();
                let portable = dot_portable(
                    &matrix.scales[row * blocks..(row + 1) * blocks],
                    &matrix.mins[row * blocks..(row + 1) * blocks],
                    &matrix.nibbles[row * cols / 2..(row + 1) * cols / 2],
                    &xq,
                );
                assert!(
                    (out[row] - portable).abs() < 1e-3,
                    "{kernel:?}: {} vs {portable}",
                    out[row]
                );
                assert_eq!(out[row], out[rows + row]);
                // Only the activation is rounded (8 bits over a few hundred terms).
                assert!(
                    (out[row] - want).abs() < 0.05,
                    "{kernel:?} row {row}: {} vs {want}",
                    out[row]
                );
            }
        }
    }
}
