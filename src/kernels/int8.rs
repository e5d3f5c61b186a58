//! The int8 GEMM: `out = input · weightsᵀ + bias` for `tokens` rows of input at once.
//!
//! Weights are packed at load into panels of [`PANEL`] output rows: for each group of four
//! columns, the panel's 64 rows' four bytes one after another (256 bytes), which is four
//! AVX-512 vectors of sixteen rows. A register tile is [`TILE`] tokens × one panel: per
//! group of four columns, four weight loads, one broadcast of each token's four bytes and
//! 24 `vpdpbusd`. A work item is one panel × up to [`TOKENS_PER_ITEM`] tokens, so a worker
//! keeps a panel's weights in its L1/L2 cache while the tokens stream past.

use candle_core::utils::barrier_pool;

use super::math::lanes;

/// Output rows per packed panel (four 16-lane vectors).
const PANEL: usize = 64;
/// Columns per `vpdpbusd` lane: the unit the columns are padded to.
const GROUP: usize = 4;
/// Tokens per register tile: 6 × 4 accumulators + 4 weight vectors + 1 broadcast fit the
/// 32 vector registers.
const TILE: usize = 6;
/// Tokens per register tile when activations have a scale per block of columns: 3 × 4
/// integer and 3 × 4 float accumulators + 4 weight vectors + 2 broadcasts.
const TILE_BLOCKED: usize = 3;
/// Tokens per work item handed to a worker.
const TOKENS_PER_ITEM: usize = 8 * TILE;

/// Which implementation computes the products (all give the same integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 with VNNI (`vpdpbusd`).
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    /// Plain Rust: the reference, and the fallback on other CPUs.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs (checked at run time: the build targets AVX2).
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if super::has_avx512_vnni() {
            return Kernel::Avx512Vnni;
        }
        Kernel::Portable
    }
}

/// A weight matrix of `rows` outputs × `cols` inputs, quantised and packed for
/// [`Int8Matrix::forward`].
#[derive(Debug, Clone)]
pub struct Int8Matrix {
    rows: usize,
    cols: usize,
    /// Groups of [`GROUP`] columns (the last ones zero-padded to whole blocks).
    groups: usize,
    /// Columns per activation block (a scale and zero point each): a multiple of
    /// [`GROUP`]; the whole padded row for one scale per token.
    block: usize,
    blocks: usize,
    /// `panels × groups × PANEL × GROUP` quants; rows past `rows` are zero.
    packed: Vec<i8>,
    /// Per row (padded to whole panels): the scale and the bias (0 when there is none).
    scales: Vec<f32>,
    bias: Vec<f32>,
    /// Per block, per row (padded): the sum of the row's quants over the block, to take
    /// the activations' zero point out.
    sums: Vec<i32>,
}

/// Activations quantised per token and block: `q = round(x / scale) + zero`, in 0..=255.
struct Activations {
    /// `tokens × groups × GROUP`, padding columns 0.
    quants: Vec<u8>,
    /// `tokens × blocks`.
    scales: Vec<f32>,
    zeros: Vec<i32>,
}

impl Int8Matrix {
    /// Quantises a row-major `rows` × `cols` f32 matrix (one symmetric scale per row, the
    /// row's largest magnitude mapped to 127), with an optional bias of `rows` values; the
    /// activations it multiplies get one scale per token.
    ///
    /// # Panics
    /// When `weights` is not `rows × cols` long or `bias` not `rows` long (shapes come
    /// from a model file already checked by its loader).
    pub fn from_f32(rows: usize, cols: usize, weights: &[f32], bias: Option<&[f32]>) -> Self {
        Self::with_block(
            rows,
            cols,
            weights,
            bias,
            cols.div_ceil(GROUP).max(1) * GROUP,
        )
    }

    /// [`Int8Matrix::from_f32`], the activations with a scale per `block` columns (a
    /// multiple of 4): an outlier then costs only its block precision, which the LLM's
    /// activations need (one scale per token changed its greedy answers).
    pub fn from_f32_blocked(
        rows: usize,
        cols: usize,
        weights: &[f32],
        bias: Option<&[f32]>,
        block: usize,
    ) -> Self {
        assert!(block > 0 && block.is_multiple_of(GROUP), "block of {block}");
        Self::with_block(rows, cols, weights, bias, block)
    }

    fn with_block(
        rows: usize,
        cols: usize,
        weights: &[f32],
        bias: Option<&[f32]>,
        block: usize,
    ) -> Self {
        assert_eq!(weights.len(), rows * cols, "weights of {rows}x{cols}");
        let blocks = cols.div_ceil(block).max(1);
        let groups = blocks * block / GROUP;
        let padded_rows = rows.div_ceil(PANEL) * PANEL;
        let mut quants = vec![0i8; rows * cols];
        let mut scales = vec![0f32; padded_rows];
        let mut sums = vec![0i32; blocks * padded_rows];
        for (row, values) in weights.chunks_exact(cols.max(1)).enumerate() {
            let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / 127.0;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let q = &mut quants[row * cols..(row + 1) * cols];
            for (q, v) in q.iter_mut().zip(values) {
                *q = (v * inverse).round_ties_even().clamp(-127.0, 127.0) as i8;
            }
            scales[row] = scale;
            for (b, part) in q.chunks(block).enumerate() {
                sums[b * padded_rows + row] = part.iter().map(|&q| i32::from(q)).sum();
            }
        }
        let mut packed = Vec::with_capacity(padded_rows * groups * GROUP);
        for panel in 0..padded_rows / PANEL {
            for group in 0..groups {
                for r in 0..PANEL {
                    let row = panel * PANEL + r;
                    for j in 0..GROUP {
                        let col = group * GROUP + j;
                        let inside = row < rows && col < cols;
                        packed.push(if inside { quants[row * cols + col] } else { 0 });
                    }
                }
            }
        }
        let mut padded_bias = vec![0f32; padded_rows];
        if let Some(bias) = bias {
            assert_eq!(bias.len(), rows, "bias of {rows}");
            padded_bias[..rows].copy_from_slice(bias);
        }
        Self {
            rows,
            cols,
            groups,
            block,
            blocks,
            packed,
            scales,
            bias: padded_bias,
            sums,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held (the packed quants and the per-row values).
    pub fn bytes(&self) -> usize {
        self.packed.len() + 4 * (2 * self.scales.len() + self.sums.len())
    }

    /// `out[t][r] = Σ_c input[t][c] · w[r][c] + bias[r]` for `tokens` row-major input rows
    /// of `cols` values, with the fastest kernel this CPU has.
    pub fn forward(&self, input: &[f32], tokens: usize, out: &mut [f32]) {
        self.forward_with(Kernel::detect(), input, tokens, out);
    }

    /// [`Int8Matrix::forward`] with a given kernel (tests compare them).
    ///
    /// # Panics
    /// When the lengths do not match the shapes, or the CPU lacks the kernel's features.
    pub fn forward_with(&self, kernel: Kernel, input: &[f32], tokens: usize, out: &mut [f32]) {
        assert_eq!(input.len(), tokens * self.cols, "input of {tokens} tokens");
        assert_eq!(out.len(), tokens * self.rows, "output of {tokens} tokens");
        assert!(
            kernel == Kernel::Portable || kernel == Kernel::detect(),
            "{kernel:?}"
        );
        let acts = self.quantize(input, tokens);
        let panels = self.rows.div_ceil(PANEL);
        let blocks = tokens.div_ceil(TOKENS_PER_ITEM);
        let out_ptr = out.as_mut_ptr() as usize;
        barrier_pool().execute_chunked(panels * blocks, |items| {
            for item in items {
                let (panel, block) = (item / blocks, item % blocks);
                let start = block * TOKENS_PER_ITEM;
                let end = (start + TOKENS_PER_ITEM).min(tokens);
                let tile = if self.blocks == 1 { TILE } else { TILE_BLOCKED };
                let mut t = start;
                while t < end {
                    let count = (end - t).min(tile);
                    // SAFETY: work items write disjoint cells of `out` (their panel's
                    // rows of their tokens), which outlives the call: execute_chunked
                    // returns once every worker is done. The kernel is this CPU's
                    // (asserted above), and `tile` reads inside the packed panel and the
                    // quantised tokens.
                    unsafe { self.tile(kernel, &acts, panel, t, count, out_ptr as *mut f32) };
                    t += count;
                }
            }
        });
    }

    /// Quantises every token of `input`, the tokens split over the worker pool.
    fn quantize(&self, input: &[f32], tokens: usize) -> Activations {
        let width = self.groups * GROUP;
        let mut acts = Activations {
            quants: vec![0u8; tokens * width],
            scales: vec![0f32; tokens * self.blocks],
            zeros: vec![0i32; tokens * self.blocks],
        };
        let cols = self.cols.max(1);
        let pointers = (
            acts.quants.as_mut_ptr() as usize,
            acts.scales.as_mut_ptr() as usize,
            acts.zeros.as_mut_ptr() as usize,
        );
        barrier_pool().execute_chunked(tokens, |range| {
            for t in range {
                // SAFETY: each token's cells are written by the one work item holding
                // it; the buffers outlive the call (execute_chunked waits for all).
                let (quants, scales, zeros) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(
                            (pointers.0 as *mut u8).add(t * width),
                            width,
                        ),
                        std::slice::from_raw_parts_mut(
                            (pointers.1 as *mut f32).add(t * self.blocks),
                            self.blocks,
                        ),
                        std::slice::from_raw_parts_mut(
                            (pointers.2 as *mut i32).add(t * self.blocks),
                            self.blocks,
                        ),
                    )
                };
                let row = &input[t * cols..(t + 1) * cols];
                for (b, part) in row.chunks(self.block).enumerate() {
                    let quants = &mut quants[b * self.block..(b + 1) * self.block];
                    (scales[b], zeros[b]) = quantize_values(part, quants);
                }
            }
        });
        acts
    }

    /// Computes `count` (≤ the mode's tile) tokens from `t0` × one panel into `out`.
    ///
    /// # Safety
    /// `out` points at `tokens × rows` floats; the kernel runs on this CPU.
    unsafe fn tile(
        &self,
        kernel: Kernel,
        acts: &Activations,
        panel: usize,
        t0: usize,
        count: usize,
        out: *mut f32,
    ) {
        match kernel {
            // SAFETY: as the caller's contract (const tile sizes match `count`).
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => unsafe {
                match (self.blocks, count) {
                    (1, 6) => avx512::tile::<6>(self, acts, panel, t0, out),
                    (1, 5) => avx512::tile::<5>(self, acts, panel, t0, out),
                    (1, 4) => avx512::tile::<4>(self, acts, panel, t0, out),
                    (1, 3) => avx512::tile::<3>(self, acts, panel, t0, out),
                    (1, 2) => avx512::tile::<2>(self, acts, panel, t0, out),
                    (1, _) => avx512::tile::<1>(self, acts, panel, t0, out),
                    (_, 3) => avx512::tile_blocked::<3>(self, acts, panel, t0, out),
                    (_, 2) => avx512::tile_blocked::<2>(self, acts, panel, t0, out),
                    _ => avx512::tile_blocked::<1>(self, acts, panel, t0, out),
                }
            },
            // SAFETY: as the caller's contract.
            Kernel::Portable => unsafe { self.tile_portable(acts, panel, t0, count, out) },
        }
    }

    /// # Safety
    /// As [`Int8Matrix::tile`].
    unsafe fn tile_portable(
        &self,
        acts: &Activations,
        panel: usize,
        t0: usize,
        count: usize,
        out: *mut f32,
    ) {
        let width = self.groups * GROUP;
        let weights = &self.packed[panel * self.groups * PANEL * GROUP..];
        for t in t0..t0 + count {
            let x = &acts.quants[t * width..(t + 1) * width];
            for r in 0..PANEL.min(self.rows - panel * PANEL) {
                let row = panel * PANEL + r;
                let mut accumulated = 0f32;
                let mut integer = 0i32;
                for (b, x) in x.chunks_exact(self.block).enumerate() {
                    let mut acc = 0i32;
                    for (g, x) in x.chunks_exact(GROUP).enumerate() {
                        let group = b * self.block / GROUP + g;
                        let w = &weights[(group * PANEL + r) * GROUP..][..GROUP];
                        for (a, b) in x.iter().zip(w) {
                            acc += i32::from(*a) * i32::from(*b);
                        }
                    }
                    let scale = acts.scales[t * self.blocks + b];
                    accumulated = (acc as f32).mul_add(scale, accumulated);
                    integer = acc;
                }
                let value = if self.blocks == 1 {
                    self.finish(integer, acts, t, row)
                } else {
                    self.finish_blocked(accumulated, acts, t, row)
                };
                // SAFETY: `t < tokens` and `row < rows` (caller's contract).
                unsafe { *out.add(t * self.rows + row) = value };
            }
        }
    }

    /// The float result of one row accumulated whole (one block), as the vector kernel
    /// computes it.
    fn finish(&self, acc: i32, acts: &Activations, t: usize, row: usize) -> f32 {
        let centred = acc - acts.zeros[t] * self.sums[row];
        let scale = acts.scales[t] * self.scales[row];
        (centred as f32).mul_add(scale, self.bias[row])
    }

    /// The float result of one row from its blocks' scaled sums, as the vector kernel
    /// computes it: the zero points' share taken out, then the row's scale.
    fn finish_blocked(&self, accumulated: f32, acts: &Activations, t: usize, row: usize) -> f32 {
        let padded_rows = self.scales.len();
        let mut correction = 0f32;
        for b in 0..self.blocks {
            let i = t * self.blocks + b;
            let shift = acts.scales[i] * acts.zeros[i] as f32;
            correction = shift.mul_add(self.sums[b * padded_rows + row] as f32, correction);
        }
        (accumulated - correction).mul_add(self.scales[row], self.bias[row])
    }
}

/// Values into `quants` (`round(x / scale) + zero`, in 0..=255): their scale and zero
/// point.
fn quantize_values(row: &[f32], quants: &mut [u8]) -> (f32, i32) {
    // The range always holds 0, so zero (padding, masked positions) is exact.
    let (low, high) = (lanes(row, 0.0, f32::min), lanes(row, 0.0, f32::max));
    let scale = (high - low) / 255.0;
    let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    let zero = (-low * inverse).round_ties_even().clamp(0.0, 255.0);
    for (q, &v) in quants.iter_mut().zip(row) {
        // `max` then `min` is `clamp` for every number and maps NaN to 0 as `as u8` did,
        // so the value is in 0..=255 and the conversion needs no saturation: the loop
        // vectorises (a saturating `as u8` went element by element, 8% of a prefill).
        #[allow(
            clippy::manual_clamp,
            reason = "clamp keeps NaN, which the conversion needs gone"
        )]
        let clamped = (v * inverse + zero).round_ties_even().max(0.0).min(255.0);
        // SAFETY: `clamped` is a whole number in 0..=255, never NaN (`max` returns the
        // other operand when one is NaN).
        *q = unsafe { clamped.to_int_unchecked::<i32>() } as u8;
    }
    (scale, zero as i32)
}

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kernels::pseudo_random as random;

    fn reference(w: &[f32], bias: &[f32], x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        x.chunks_exact(cols)
            .flat_map(|x| {
                (0..rows).map(move |r| {
                    let dot: f64 = w[r * cols..(r + 1) * cols]
                        .iter()
                        .zip(x)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum();
                    dot as f32 + bias[r]
                })
            })
            .collect()
    }

    /// The fast kernel computes exactly the portable kernel's numbers, and both are close
    /// to the f32 product, for odd shapes (partial panels, columns not a multiple of 4,
    /// every tile size) and skewed inputs (all positive, as after a GELU).
    #[test]
    fn kernels_agree_exactly_and_match_the_f32_product() {
        let shapes = [(67, 70, 13), (130, 384, 1), (64, 576, 50), (5, 3, 7)];
        for ((rows, cols, tokens), block) in
            shapes.into_iter().flat_map(|s| [(s, None), (s, Some(32))])
        {
            let w = random(rows * cols, rows as u64);
            let bias = random(rows, 7);
            let mut x = random(tokens * cols, cols as u64);
            for v in x.iter_mut().skip(1).step_by(3) {
                *v = v.abs() * 3.0;
            }
            let matrix = match block {
                None => Int8Matrix::from_f32(rows, cols, &w, Some(&bias)),
                Some(block) => Int8Matrix::from_f32_blocked(rows, cols, &w, Some(&bias), block),
            };
            let mut portable = vec![0f32; tokens * rows];
            matrix.forward_with(Kernel::Portable, &x, tokens, &mut portable);
            let mut fast = vec![0f32; tokens * rows];
            matrix.forward(&x, tokens, &mut fast);
            assert_eq!(fast, portable, "{rows}x{cols}, {tokens} tokens, {block:?}");
            let exact = reference(&w, &bias, &x, rows, cols);
            let (mut error, mut norm) = (0f64, 0f64);
            for (got, want) in portable.iter().zip(&exact) {
                error += f64::from(got - want).powi(2);
                norm += f64::from(*want).powi(2);
            }
            // Two 8-bit roundings: about 1% of the product's magnitude.
            let relative = (error / norm).sqrt();
            assert!(
                relative < 0.02,
                "{rows}x{cols}, {block:?}: relative error {relative}"
            );
        }
    }

    #[test]
    fn zero_inputs_give_the_bias() {
        let (rows, cols) = (20, 8);
        let matrix = Int8Matrix::from_f32(rows, cols, &random(rows * cols, 1), None);
        let mut out = vec![1f32; 2 * rows];
        matrix.forward(&vec![0f32; 2 * cols], 2, &mut out);
        assert!(out.iter().all(|v| *v == 0.0), "{out:?}");
    }
}
