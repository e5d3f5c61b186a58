//! Multi-head scaled-dot-product attention over token-major f32 rows, for both models'
//! forward passes: BERT's (every key visible, one sequence at a time, no padding) and the
//! LLM's prefill (causal after the cached prefix, grouped-query heads).
//!
//! A work item is one query head × up to [`BLOCK`] queries: its scores against the keys
//! that block may see (one f32 GEMM, `gemm`'s AVX2/AVX-512 kernels, straight from the
//! strided rows: no copy, no transposition), a softmax per row over the keys that row may
//! see, and the weighted sum of the values (a second GEMM, written into the output rows).
//! Scores live in a buffer of `BLOCK × keys` per worker, never `heads × queries × keys`.
//! Items are spread over candle's worker pool, as the int8 GEMM's are.

#[cfg(target_arch = "x86_64")]
mod avx512;

use candle_core::utils::barrier_pool;
use gemm::Parallelism;

use super::Kernel;
use super::math::softmax_in_place;

/// Queries per work item.
const BLOCK: usize = 64;

/// Rows of `len` tokens, row `i` starting at `data[i * stride]`; within a row, head `h`'s
/// `head_dim` values start at `h * head_dim`.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub stride: usize,
    pub len: usize,
}

impl<'a> Rows<'a> {
    /// All of `data` as whole rows of `stride` values.
    pub fn all(data: &'a [f32], stride: usize) -> Rows<'a> {
        let len = data.len() / stride.max(1);
        Rows { data, stride, len }
    }
}

/// The heads' shape: `heads` query heads share `kv_heads` key/value heads in groups of
/// `heads / kv_heads` consecutive heads (grouped-query attention; equal for BERT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attention {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// The output pointer shared by the workers, each writing its own cells.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: work items write disjoint cells (their head's columns of their block's rows).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not its field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

impl Attention {
    /// For each query `i` and head `h`: `out[i][h] = Σ_j softmax_j(q[i][h] · k[j][g] / √d) ·
    /// v[j][g]`, `g` the head's key/value head, over the keys `j` query `i` may see: all of
    /// them, or with `causal_start: Some(s)` (query `i` at position `s + i`, the keys at
    /// positions from 0) those up to `s + i`. Output rows are `out_stride` apart.
    ///
    /// # Panics
    /// When the rows are shorter than the shapes say, keys and values differ in count, or
    /// the heads do not divide into groups.
    pub fn forward(
        &self,
        q: Rows,
        k: Rows,
        v: Rows,
        causal_start: Option<usize>,
        out: &mut [f32],
        out_stride: usize,
    ) {
        let inputs = Inputs {
            q,
            k,
            v,
            causal_start,
        };
        self.forward_with(Kernel::detect(), inputs, out, out_stride);
    }

    /// [`Attention::forward`] with the products of `kernel`'s CPU: `Portable` runs them
    /// on `gemm` (tests compare the two).
    fn forward_with(&self, kernel: Kernel, inputs: Inputs, out: &mut [f32], out_stride: usize) {
        let Inputs {
            q,
            k,
            v,
            causal_start,
        } = inputs;
        let (queries, keys, d) = (q.len, k.len, self.head_dim);
        assert!(
            self.kv_heads > 0 && self.heads.is_multiple_of(self.kv_heads),
            "{self:?}"
        );
        assert_eq!(keys, v.len, "keys and values differ in count");
        assert!(queries == 0 || keys > 0, "queries with no keys");
        let q_width = self.heads * d;
        let kv_width = self.kv_heads * d;
        let fits = |rows: Rows, width: usize| {
            rows.len == 0
                || (rows.stride >= width && rows.data.len() >= (rows.len - 1) * rows.stride + width)
        };
        assert!(
            fits(q, q_width) && fits(k, kv_width) && fits(v, kv_width),
            "rows too short"
        );
        assert!(
            queries == 0
                || (out_stride >= q_width && out.len() >= (queries - 1) * out_stride + q_width),
            "output too short"
        );
        if queries == 0 {
            return;
        }
        let visible = |i: usize| causal_start.map_or(keys, |s| (s + i + 1).min(keys));
        let products = Products::for_shape(self, k, kernel);
        let blocks = queries.div_ceil(BLOCK);
        let group = self.heads / self.kv_heads;
        let out_ptr = Out(out.as_mut_ptr());
        barrier_pool().execute_chunked(self.heads * blocks, |items| {
            let mut scores = Vec::new();
            for item in items {
                let (head, block) = (item / blocks, item % blocks);
                let first = block * BLOCK;
                let m = BLOCK.min(queries - first);
                let n = visible(first + m - 1);
                let item = Item {
                    head,
                    kv_head: head / group,
                    first,
                    m,
                    n,
                    width: products.score_width(n),
                };
                scores.clear();
                scores.resize(m * item.width, 0.0);
                // SAFETY: `forward`'s checks above: the rows hold `first..first + m`
                // queries and `n ≤ keys` keys, the output `first + m` rows, the heads'
                // columns lie within the rows' widths; `scores` holds `m × width`.
                unsafe { products.scores(self, &item, q, k, &mut scores) };
                for (r, row) in scores.chunks_exact_mut(item.width).enumerate() {
                    let seen = visible(first + r);
                    softmax_in_place(&mut row[..seen]);
                    row[seen..].fill(0.0);
                }
                // SAFETY: as above; the item writes only its head's columns of its
                // block's output rows, which no other item writes.
                unsafe {
                    products.weighted_values(self, &item, &scores, v, out_ptr.get(), out_stride)
                };
            }
        });
    }
}

/// One call's queries, keys, values and causal start (see [`Attention::forward`]).
#[derive(Clone, Copy)]
struct Inputs<'a> {
    q: Rows<'a>,
    k: Rows<'a>,
    v: Rows<'a>,
    causal_start: Option<usize>,
}

/// One work item: query head `head` (reading key/value head `kv_head`), queries
/// `first..first + m`, which see at most the first `n` keys; score rows `width` apart.
struct Item {
    head: usize,
    kv_head: usize,
    first: usize,
    m: usize,
    n: usize,
    width: usize,
}

/// What computes the two products.
enum Products {
    /// The `gemm` crate (candle's), straight from the strided rows.
    Gemm,
    /// The AVX-512 tile, with the keys transposed (`[kv head][dim][key]`, `keys` rounded
    /// up to [`TILE_KEYS`] and zero-padded) so a tile reads 64 keys' values of one
    /// dimension as four vectors.
    #[cfg(target_arch = "x86_64")]
    Avx512 { keys_t: Vec<f32>, padded: usize },
}

/// Keys per AVX-512 score tile (four 16-lane vectors).
#[cfg(target_arch = "x86_64")]
const TILE_KEYS: usize = 64;

impl Products {
    /// The AVX-512 tile where the CPU has it and a head is 16, 32, 48 or 64 wide; else
    /// `gemm`.
    fn for_shape(shape: &Attention, k: Rows, kernel: Kernel) -> Products {
        let d = shape.head_dim;
        #[cfg(target_arch = "x86_64")]
        if kernel != Kernel::Portable && d.is_multiple_of(16) && (16..=64).contains(&d) {
            let padded = k.len.next_multiple_of(TILE_KEYS);
            let mut keys_t = vec![0f32; shape.kv_heads * d * padded];
            for (j, row) in k.data.chunks(k.stride).take(k.len).enumerate() {
                for (c, value) in row[..shape.kv_heads * d].iter().enumerate() {
                    keys_t[c * padded + j] = *value;
                }
            }
            return Products::Avx512 { keys_t, padded };
        }
        let _ = (d, k, kernel);
        Products::Gemm
    }

    /// Scores per row: the visible keys, rounded up to whole tiles for the AVX-512 tile.
    fn score_width(&self, n: usize) -> usize {
        match self {
            Products::Gemm => n,
            #[cfg(target_arch = "x86_64")]
            Products::Avx512 { .. } => n.next_multiple_of(TILE_KEYS),
        }
    }

    /// `scores[r][j] = q[first + r][head] · k[j][kv_head] / √d` for `j < n` (and the
    /// padding's zero keys up to `width` for the tile).
    ///
    /// # Safety
    /// `q` holds the item's queries, `k` its keys, `scores` `m × width` values.
    unsafe fn scores(&self, shape: &Attention, item: &Item, q: Rows, k: Rows, scores: &mut [f32]) {
        let d = shape.head_dim;
        let scale = 1.0 / (d as f32).sqrt();
        let q_ptr = q
            .data
            .as_ptr()
            .wrapping_add(item.first * q.stride + item.head * d);
        match self {
            // SAFETY: the caller's contract.
            Products::Gemm => unsafe {
                gemm::gemm(
                    item.m,
                    item.n,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    item.width as isize,
                    false,
                    q_ptr,
                    1,
                    q.stride as isize,
                    k.data.as_ptr().add(item.kv_head * d),
                    k.stride as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            },
            #[cfg(target_arch = "x86_64")]
            Products::Avx512 { keys_t, padded } => {
                let keys = keys_t[item.kv_head * d * padded..].as_ptr();
                for r in (0..item.m).step_by(avx512::ROWS) {
                    let rows = (item.m - r).min(avx512::ROWS);
                    let a = avx512::Strided {
                        ptr: q_ptr.wrapping_add(r * q.stride),
                        stride: q.stride,
                    };
                    for c in (0..item.width).step_by(TILE_KEYS) {
                        let b = avx512::Strided {
                            ptr: keys.wrapping_add(c),
                            stride: *padded,
                        };
                        let out = scores[r * item.width + c..].as_mut_ptr();
                        // SAFETY: the tile reads `rows` queries and `d` rows of 64
                        // transposed keys inside the padded buffer (`c + 64 ≤ width ≤
                        // padded`), and writes `rows × 64` scores inside `scores`; the
                        // CPU has AVX-512 F (`Kernel::detect`).
                        unsafe { avx512::tile::<4>(a, b, d, out, item.width, rows, scale) };
                    }
                }
            }
        }
    }

    /// `out[first + r][head] = Σ_j weights[r][j] · v[j][kv_head]` over `j < n`.
    ///
    /// # Safety
    /// `v` holds the item's keys' values, `out` the item's rows, `out_stride` apart.
    unsafe fn weighted_values(
        &self,
        shape: &Attention,
        item: &Item,
        weights: &[f32],
        v: Rows,
        out: *mut f32,
        out_stride: usize,
    ) {
        let d = shape.head_dim;
        let v_ptr = v.data.as_ptr().wrapping_add(item.kv_head * d);
        let out = out.wrapping_add(item.first * out_stride + item.head * d);
        match self {
            // SAFETY: the caller's contract.
            Products::Gemm => unsafe {
                gemm::gemm(
                    item.m,
                    d,
                    item.n,
                    out,
                    1,
                    out_stride as isize,
                    false,
                    weights.as_ptr(),
                    1,
                    item.width as isize,
                    v_ptr,
                    1,
                    v.stride as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            },
            #[cfg(target_arch = "x86_64")]
            Products::Avx512 { .. } => {
                let b = avx512::Strided {
                    ptr: v_ptr,
                    stride: v.stride,
                };
                for r in (0..item.m).step_by(avx512::ROWS) {
                    let rows = (item.m - r).min(avx512::ROWS);
                    let a = avx512::Strided {
                        ptr: weights[r * item.width..].as_ptr(),
                        stride: item.width,
                    };
                    let c = out.wrapping_add(r * out_stride);
                    // SAFETY: the tile reads `rows` weight rows of `n` values and `n`
                    // value rows of `d`, and writes `rows × d` outputs of this head; the
                    // CPU has AVX-512 F.
                    unsafe {
                        match d / 16 {
                            1 => avx512::tile::<1>(a, b, item.n, c, out_stride, rows, 1.0),
                            2 => avx512::tile::<2>(a, b, item.n, c, out_stride, rows, 1.0),
                            3 => avx512::tile::<3>(a, b, item.n, c, out_stride, rows, 1.0),
                            _ => avx512::tile::<4>(a, b, item.n, c, out_stride, rows, 1.0),
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::pseudo_random;

    /// The definition, in f64, one query and head at a time.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        shape: Attention,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        queries: usize,
        keys: usize,
        causal_start: Option<usize>,
    ) -> Vec<f32> {
        let d = shape.head_dim;
        let (qw, kw) = (shape.heads * d, shape.kv_heads * d);
        let group = shape.heads / shape.kv_heads;
        let mut out = vec![0f32; queries * qw];
        for i in 0..queries {
            let seen = causal_start.map_or(keys, |s| (s + i + 1).min(keys));
            for h in 0..shape.heads {
                let g = h / group;
                let dot = |j: usize| {
                    (0..d)
                        .map(|x| {
                            f64::from(q[i * qw + h * d + x]) * f64::from(k[j * kw + g * d + x])
                        })
                        .sum::<f64>()
                        / (d as f64).sqrt()
                };
                let s: Vec<f64> = (0..seen).map(dot).collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for x in 0..d {
                    let y: f64 = (0..seen)
                        .map(|j| e[j] / total * f64::from(v[j * kw + g * d + x]))
                        .sum();
                    out[i * qw + h * d + x] = y as f32;
                }
            }
        }
        out
    }

    fn check(shape: Attention, queries: usize, keys: usize, causal_start: Option<usize>) {
        let d = shape.head_dim;
        let (qw, kw) = (shape.heads * d, shape.kv_heads * d);
        // Scaled up so the softmax is far from uniform.
        let q: Vec<f32> = pseudo_random(queries * qw, 1)
            .iter()
            .map(|x| 3.0 * x)
            .collect();
        let k = pseudo_random(keys * kw, 2);
        let v = pseudo_random(keys * kw, 3);
        let want = reference(shape, &q, &k, &v, queries, keys, causal_start);
        let mut got = vec![f32::NAN; queries * qw];
        let (q_rows, k_rows, v_rows) = (
            Rows {
                data: &q,
                stride: qw,
                len: queries,
            },
            Rows {
                data: &k,
                stride: kw,
                len: keys,
            },
            Rows {
                data: &v,
                stride: kw,
                len: keys,
            },
        );
        for kernel in [Kernel::Portable, Kernel::detect()] {
            got.fill(f32::NAN);
            let inputs = Inputs {
                q: q_rows,
                k: k_rows,
                v: v_rows,
                causal_start,
            };
            shape.forward_with(kernel, inputs, &mut got, qw);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 2e-5,
                    "{kernel:?} {shape:?} cell {i}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn bert_shaped_attention_sees_every_key() {
        let shape = Attention {
            heads: 12,
            kv_heads: 12,
            head_dim: 32,
        };
        for length in [1, 7, 32, 33, 215] {
            check(shape, length, length, None);
        }
    }

    #[test]
    fn grouped_causal_attention_sees_the_prefix_and_the_earlier_queries() {
        let shape = Attention {
            heads: 9,
            kv_heads: 3,
            head_dim: 64,
        };
        check(shape, 70, 70, Some(0));
        // After a cached prefix of 25 positions.
        check(shape, 40, 65, Some(25));
        // One query (a decode step) sees every key.
        check(shape, 1, 12, Some(11));
    }

    #[test]
    fn strided_rows_read_their_own_columns() {
        // q, k and v as the thirds of one fused row, as a qkv product gives them.
        let shape = Attention {
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
        };
        let (qw, kw) = (64, 32);
        let width = qw + 2 * kw;
        let tokens = 37;
        let fused = pseudo_random(tokens * width, 9);
        let part = |offset: usize, w: usize| -> Vec<f32> {
            (0..tokens)
                .flat_map(|t| fused[t * width + offset..t * width + offset + w].to_vec())
                .collect()
        };
        let (q, k, v) = (part(0, qw), part(qw, kw), part(qw + kw, kw));
        let want = reference(shape, &q, &k, &v, tokens, tokens, Some(0));
        let mut got = vec![0f32; tokens * width];
        shape.forward(
            Rows {
                data: &fused,
                stride: width,
                len: tokens,
            },
            Rows {
                data: &fused[qw..],
                stride: width,
                len: tokens,
            },
            Rows {
                data: &fused[qw + kw..],
                stride: width,
                len: tokens,
            },
            Some(0),
            &mut got,
            width,
        );
        for t in 0..tokens {
            for x in 0..qw {
                assert!((got[t * width + x] - want[t * qw + x]).abs() < 2e-5);
            }
            // Columns past the heads' are left alone.
            assert!(
                got[t * width + qw..(t + 1) * width]
                    .iter()
                    .all(|&y| y == 0.0)
            );
        }
    }
}
