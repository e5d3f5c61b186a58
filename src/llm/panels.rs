//! Decode weights in panels, for CPUs with AVX-512 VNNI (issue 10): the blocks of
//! [`super::q4`] and [`super::q8`] rearranged so one pass multiplies a weight block by
//! several tokens' activations (the token just picked and a draft after it,
//! [`super::draft`]) while it sits in registers. A panel is 16 rows; per block of 32
//! columns it holds, for each group of four columns, the 16 rows' four bytes one after
//! another: one AVX-512 vector, which `vpdpbusd` multiplies by one token's four bytes
//! (broadcast), summing into 16 lanes, one per row. So a block costs eight `vpdpbusd` per
//! token and the unpacking once, where the row kernels sum a row across lanes and reduce
//! it at the end of every row.
//!
//! Each (row, token) is computed by the same sequence of operations whatever the number
//! of tokens in the pass, so a pass of several tokens gives, bit for bit, what passes of
//! one token give, and a draft checked in one pass decodes the very tokens one-token
//! decoding would. The portable reference here computes the same operations in the same
//! order (fused multiply-adds included), and the tests hold the vector kernel to it
//! exactly.

use candle_core::utils::barrier_pool;

use super::q4::Q41Matrix;
use super::q8::{BLOCK, Kernel, Q8Matrix, Q8Vector};

/// Rows per panel: the lanes of an AVX-512 vector of i32.
const LANES: usize = 16;
/// Columns per `vpdpbusd` lane.
const GROUP: usize = 4;
/// Groups per block.
const GROUPS: usize = BLOCK / GROUP;
/// Most tokens one kernel call holds in registers (one accumulator each, beside the
/// block's eight weight vectors); a larger pass runs in chunks of this many.
const MAX_TOKENS: usize = 9;
/// Panels per work item handed to a worker.
const PANELS_PER_ITEM: usize = 4;

/// How the weights of a block are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Q4_1: values 0..=15 with a scale and a minimum per block (`w = d·q + m`); a
    /// panel's block is 256 bytes, group `g`'s byte in the low nibble and group `g + 4`'s
    /// in the high one.
    Q4_1,
    /// Signed 8-bit values with a scale per block; a panel's block is 512 bytes.
    Q8,
}

/// A `rows` × `cols` decode weight in panels (rows padded to whole panels with zeros).
#[derive(Debug, Clone)]
pub(super) struct Panels {
    format: Format,
    rows: usize,
    cols: usize,
    blocks: usize,
    /// Per panel, per block: the packed bytes ([`Format`]).
    data: Vec<u8>,
    /// Per panel, per block, per row of the panel: the block's scale.
    scales: Vec<f32>,
    /// Per panel, per block, per row: the Q4_1 minimum (empty for Q8).
    mins: Vec<f32>,
    /// Per panel, per block, per row: 128 × the sum of the Q8 values (empty for Q4_1),
    /// to take out the offset that makes the activations unsigned.
    offsets: Vec<i32>,
}

impl Panels {
    fn empty(format: Format, rows: usize, cols: usize) -> Self {
        let (panels, blocks) = (rows.div_ceil(LANES), cols / BLOCK);
        let cells = panels * blocks * LANES;
        let bytes = match format {
            Format::Q4_1 => BLOCK / 2,
            Format::Q8 => BLOCK,
        };
        Self {
            format,
            rows,
            cols,
            blocks,
            data: vec![0; cells * bytes],
            scales: vec![0.0; cells],
            mins: if format == Format::Q4_1 {
                vec![0.0; cells]
            } else {
                Vec::new()
            },
            offsets: if format == Format::Q8 {
                vec![0; cells]
            } else {
                Vec::new()
            },
        }
    }

    /// Index of (row, block) among the per-row values, and the row's lane.
    fn cell(&self, row: usize, block: usize) -> usize {
        ((row / LANES) * self.blocks + block) * LANES + row % LANES
    }

    /// The same weights as `m`, in panels.
    pub(super) fn from_q4_1(m: &Q41Matrix) -> Self {
        let (rows, cols) = m.shape();
        let mut panels = Self::empty(Format::Q4_1, rows, cols);
        for row in 0..rows {
            for block in 0..panels.blocks {
                let cell = panels.cell(row, block);
                let (scale, min, values) = m.block(row, block);
                panels.scales[cell] = scale;
                panels.mins[cell] = min;
                let base = (cell - row % LANES) * BLOCK / 2;
                for (c, q) in values.iter().enumerate() {
                    let (group, byte) = (c / GROUP, c % GROUP);
                    let at = base + (group % 4) * LANES * GROUP + (row % LANES) * GROUP + byte;
                    panels.data[at] |= if group < 4 { *q } else { *q << 4 };
                }
            }
        }
        panels
    }

    /// The same weights as `m`, in panels.
    pub(super) fn from_q8(m: &Q8Matrix) -> Self {
        let (rows, cols) = m.shape();
        let mut panels = Self::empty(Format::Q8, rows, cols);
        for row in 0..rows {
            for block in 0..panels.blocks {
                let cell = panels.cell(row, block);
                let (scale, values) = m.block(row, block);
                panels.scales[cell] = scale;
                panels.offsets[cell] = 128 * values.iter().map(|q| i32::from(*q)).sum::<i32>();
                let base = (cell - row % LANES) * BLOCK;
                for (c, q) in values.iter().enumerate() {
                    let (group, byte) = (c / GROUP, c % GROUP);
                    panels.data[base + group * LANES * GROUP + (row % LANES) * GROUP + byte] =
                        *q as u8;
                }
            }
        }
        panels
    }

    /// Rows (outputs) and columns (inputs).
    pub(super) fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// `out[j × rows + row] = self[row] · xs[j]`, the panels split across the worker pool,
    /// each panel's blocks read once for up to [`MAX_TOKENS`] tokens. `kernel` other than
    /// AVX-512 VNNI runs the portable reference.
    pub(super) fn matvecs(&self, kernel: Kernel, xs: &[Q8Vector], out: &mut [f32]) {
        assert!(
            xs.iter().all(|x| x.quants.len() == self.cols),
            "activation length"
        );
        assert_eq!(out.len(), self.rows * xs.len(), "output length");
        let panels = self.rows.div_ceil(LANES);
        let out_ptr = out.as_mut_ptr() as usize;
        barrier_pool().execute_chunked(panels.div_ceil(PANELS_PER_ITEM), |items| {
            for panel in items.start * PANELS_PER_ITEM..(items.end * PANELS_PER_ITEM).min(panels) {
                for (chunk, tokens) in xs.chunks(MAX_TOKENS).enumerate() {
                    let out = out_ptr as *mut f32;
                    // SAFETY: a work item writes its own panels' rows of each token's
                    // output, which outlives the call (execute_chunked returns once every
                    // worker is done); the kernel's features were checked when it was
                    // chosen, and the activations' lengths above.
                    unsafe {
                        let out = out.add(chunk * MAX_TOKENS * self.rows);
                        match kernel {
                            #[cfg(target_arch = "x86_64")]
                            Kernel::Avx512Vnni => avx512::panel(self, panel, tokens, out),
                            _ => self.panel_portable(panel, tokens, out),
                        }
                    }
                }
            }
        });
    }

    /// The rows of `panel` that exist (the last panel may be partly padding).
    fn lanes_of(&self, panel: usize) -> usize {
        (self.rows - panel * LANES).min(LANES)
    }

    /// The reference: per row and token, block by block, the integer dot product, then
    /// `acc = fma(dot, d·dx, acc)` and for Q4_1 `acc = fma(m, dx·Σqx, acc)`.
    ///
    /// # Safety
    /// `out` holds `tokens.len() × rows` floats.
    unsafe fn panel_portable(&self, panel: usize, tokens: &[Q8Vector], out: *mut f32) {
        for lane in 0..self.lanes_of(panel) {
            let row = panel * LANES + lane;
            for (j, x) in tokens.iter().enumerate() {
                let mut acc = 0f32;
                for block in 0..self.blocks {
                    let cell = self.cell(row, block);
                    let xq = &x.quants[block * BLOCK..(block + 1) * BLOCK];
                    let dot: i32 = (0..BLOCK)
                        .map(|c| i32::from(self.value(cell, lane, c)) * i32::from(xq[c]))
                        .sum();
                    acc = (dot as f32).mul_add(self.scales[cell] * x.scales[block], acc);
                    if self.format == Format::Q4_1 {
                        acc = self.mins[cell].mul_add(x.sums[block], acc);
                    }
                }
                // SAFETY: (j, row) lies inside `out` (caller's contract).
                unsafe { *out.add(j * self.rows + row) = acc };
            }
        }
    }

    /// Weight `c` of the block at `cell` (of row `lane` of its panel).
    fn value(&self, cell: usize, lane: usize, c: usize) -> i16 {
        let (group, byte) = (c / GROUP, c % GROUP);
        let panel_cell = cell - lane;
        match self.format {
            Format::Q4_1 => {
                let at = panel_cell * BLOCK / 2 + (group % 4) * LANES * GROUP + lane * GROUP + byte;
                let packed = self.data[at];
                i16::from(if group < 4 {
                    packed & 0x0f
                } else {
                    packed >> 4
                })
            }
            Format::Q8 => {
                let at = panel_cell * BLOCK + group * LANES * GROUP + lane * GROUP + byte;
                i16::from(self.data[at] as i8)
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{BLOCK, Format, GROUP, GROUPS, LANES, MAX_TOKENS, Panels, Q8Vector};

    /// One panel × `tokens` (at most [`MAX_TOKENS`]) into `out`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL/VNNI; `out` holds `tokens.len() × rows` floats and
    /// every activation `cols` values.
    pub(super) unsafe fn panel(m: &Panels, panel: usize, tokens: &[Q8Vector], out: *mut f32) {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            match tokens.len() {
                1 => run::<1>(m, panel, tokens, out),
                2 => run::<2>(m, panel, tokens, out),
                3 => run::<3>(m, panel, tokens, out),
                4 => run::<4>(m, panel, tokens, out),
                5 => run::<5>(m, panel, tokens, out),
                6 => run::<6>(m, panel, tokens, out),
                7 => run::<7>(m, panel, tokens, out),
                8 => run::<8>(m, panel, tokens, out),
                _ => run::<MAX_TOKENS>(m, panel, tokens, out),
            }
        }
    }

    /// Four bytes of `bytes` from `at`, as one i32 in every lane.
    ///
    /// # Safety
    /// `at + 4 <= bytes.len()`.
    #[inline(always)]
    unsafe fn broadcast<T>(bytes: &[T], at: usize) -> __m512i {
        // SAFETY: the caller's contract; an unaligned read of four bytes.
        unsafe { _mm512_set1_epi32((bytes.as_ptr().add(at) as *const i32).read_unaligned()) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn run<const N: usize>(m: &Panels, panel: usize, tokens: &[Q8Vector], out: *mut f32) {
        debug_assert_eq!(tokens.len(), N);
        let low = _mm512_set1_epi8(0x0f);
        let mut acc = [_mm512_setzero_ps(); N];
        // Q8 activations made unsigned for `vpdpbusd`: q + 128 (their sign bit flipped).
        let flip = _mm512_set1_epi8(-128);
        for block in 0..m.blocks {
            let cell = (panel * m.blocks + block) * LANES;
            // SAFETY: the panel's block lies inside `data`, its per-row values inside
            // `scales`, `mins` and `offsets` (built for whole panels).
            let (w, scales) = unsafe {
                let mut w = [_mm512_setzero_si512(); GROUPS];
                match m.format {
                    Format::Q4_1 => {
                        let base = m.data.as_ptr().add(cell * BLOCK / 2);
                        for half in 0..GROUPS / 2 {
                            let packed = _mm512_loadu_si512(base.add(half * 64) as *const _);
                            w[half] = _mm512_and_si512(packed, low);
                            w[half + 4] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low);
                        }
                    }
                    Format::Q8 => {
                        let base = m.data.as_ptr().add(cell * BLOCK);
                        for (group, w) in w.iter_mut().enumerate() {
                            *w = _mm512_loadu_si512(base.add(group * 64) as *const _);
                        }
                    }
                }
                (w, _mm512_loadu_ps(m.scales.as_ptr().add(cell)))
            };
            for (j, x) in tokens.iter().enumerate() {
                let mut dot = _mm512_setzero_si512();
                let at = block * BLOCK;
                match m.format {
                    Format::Q4_1 => {
                        for (group, w) in w.iter().enumerate() {
                            // SAFETY: the activation holds `cols` values (caller's contract).
                            let xv = unsafe { broadcast(&x.quants, at + group * GROUP) };
                            dot = _mm512_dpbusd_epi32(dot, *w, xv);
                        }
                    }
                    Format::Q8 => {
                        for (group, w) in w.iter().enumerate() {
                            // SAFETY: as above.
                            let xv = unsafe { broadcast(&x.quants, at + group * GROUP) };
                            dot = _mm512_dpbusd_epi32(dot, _mm512_xor_si512(xv, flip), *w);
                        }
                        // SAFETY: the block's per-row offsets lie inside `offsets`.
                        let offsets =
                            unsafe { _mm512_loadu_si512(m.offsets.as_ptr().add(cell) as *const _) };
                        dot = _mm512_sub_epi32(dot, offsets);
                    }
                }
                let scale = _mm512_mul_ps(scales, _mm512_set1_ps(x.scales[block]));
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[j]);
                if m.format == Format::Q4_1 {
                    // SAFETY: as for the scales.
                    let mins = unsafe { _mm512_loadu_ps(m.mins.as_ptr().add(cell)) };
                    acc[j] = _mm512_fmadd_ps(mins, _mm512_set1_ps(x.sums[block]), acc[j]);
                }
            }
        }
        let lanes = m.lanes_of(panel);
        let mask = if lanes == LANES {
            u16::MAX
        } else {
            (1u16 << lanes) - 1
        };
        for (j, acc) in acc.iter().enumerate() {
            // SAFETY: the panel's existing rows of token j lie inside `out` (caller's
            // contract); the mask leaves the padding rows unwritten.
            unsafe { _mm512_mask_storeu_ps(out.add(j * m.rows + panel * LANES), mask, *acc) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::pseudo_random as random;

    fn vectors(n: usize, cols: usize, seed: u64) -> Vec<Q8Vector> {
        (0..n)
            .map(|j| {
                let mut x = Q8Vector::default();
                x.quantize(&random(cols, seed + j as u64));
                x
            })
            .collect()
    }

    /// Panels compute what the row kernels compute (up to the order of float sums), and a
    /// pass of many tokens is bit for bit passes of one.
    #[test]
    fn panels_match_rows_and_a_pass_is_its_tokens() {
        let (rows, cols) = (37, 96);
        let weights = random(rows * cols, 7);
        let q8 = Q8Matrix::from_f32(rows, cols, &weights).unwrap();
        let q41 = Q41Matrix::from_f32(rows, cols, &weights);
        for (panels, reference) in [
            (
                Panels::from_q8(&q8),
                super::super::model::DecodeMatrix::Q8(q8.clone()),
            ),
            (
                Panels::from_q4_1(&q41),
                super::super::model::DecodeMatrix::Q4_1(q41.clone()),
            ),
        ] {
            let xs = vectors(11, cols, 3);
            for kernel in Kernel::available() {
                let mut all = vec![0f32; xs.len() * rows];
                panels.matvecs(kernel, &xs, &mut all);
                for (j, x) in xs.iter().enumerate() {
                    let mut one = vec![0f32; rows];
                    panels.matvecs(kernel, std::slice::from_ref(x), &mut one);
                    assert_eq!(one, all[j * rows..(j + 1) * rows], "{kernel:?} token {j}");
                    let mut portable = vec![0f32; rows];
                    panels.matvecs(Kernel::Portable, std::slice::from_ref(x), &mut portable);
                    assert_eq!(one, portable, "{kernel:?} against the reference");
                    let mut row_kernel = vec![0f32; rows];
                    reference.matvecs(Kernel::Portable, std::slice::from_ref(x), &mut row_kernel);
                    for (a, b) in one.iter().zip(&row_kernel) {
                        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
                    }
                }
            }
        }
    }
}
