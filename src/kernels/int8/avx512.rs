//! The AVX-512 VNNI kernels: `vpdpbusd` multiplies 64 unsigned activation bytes by 64
//! signed weight bytes and adds each four products into one of sixteen i32 lanes.

use std::arch::x86_64::*;

use super::{Activations, GROUP, Int8Matrix, PANEL};

/// The four weight vectors (64 rows × 4 columns) of group `group` of the panel at `w`.
///
/// # Safety
/// The CPU has AVX-512 F; the panel holds the group.
#[target_feature(enable = "avx512f")]
unsafe fn weights(w: *const i8, group: usize) -> [__m512i; 4] {
    // SAFETY: the group's 256 bytes lie inside the panel (caller's contract).
    unsafe {
        let wp = w.add(group * PANEL * GROUP) as *const __m512i;
        [
            _mm512_loadu_si512(wp),
            _mm512_loadu_si512(wp.add(1)),
            _mm512_loadu_si512(wp.add(2)),
            _mm512_loadu_si512(wp.add(3)),
        ]
    }
}

/// The rows of `panel`'s 16-row vector `j` below `rows`, as a store mask; `None` past the
/// last row.
fn row_mask(m: &Int8Matrix, panel: usize, j: usize) -> Option<(usize, __mmask16)> {
    let base = panel * PANEL + 16 * j;
    if base >= m.rows {
        return None;
    }
    let n = (m.rows - base).min(16);
    Some((base, if n == 16 { 0xffff } else { (1 << n) - 1 }))
}

/// `M` tokens from `t0` × one panel, one activation scale per token.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VNNI; `t0 + M ≤ tokens`; `out` points at `tokens × rows`
/// floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tile<const M: usize>(
    m: &Int8Matrix,
    acts: &Activations,
    panel: usize,
    t0: usize,
    out: *mut f32,
) {
    let width = m.groups * GROUP;
    let mut acc = [[_mm512_setzero_si512(); 4]; M];
    // SAFETY: the panel holds `groups` groups and token `t0 + i` `width` bytes (caller's
    // contract), so every load is inside the buffers.
    unsafe {
        let w = m.packed.as_ptr().add(panel * m.groups * PANEL * GROUP);
        let x = acts.quants.as_ptr().add(t0 * width);
        for group in 0..m.groups {
            let wv = weights(w, group);
            for (i, acc) in acc.iter_mut().enumerate() {
                let four = (x.add(i * width + group * GROUP) as *const i32).read_unaligned();
                let xv = _mm512_set1_epi32(four);
                for (a, w) in acc.iter_mut().zip(wv) {
                    *a = _mm512_dpbusd_epi32(*a, xv, w);
                }
            }
        }
    }
    for j in 0..4 {
        let Some((base, mask)) = row_mask(m, panel, j) else {
            break;
        };
        // SAFETY: the per-row values are padded to whole panels; the masked store writes
        // only rows below `rows` of tokens below `tokens`.
        unsafe {
            let sums = _mm512_loadu_si512(m.sums.as_ptr().add(base) as *const __m512i);
            let scales = _mm512_loadu_ps(m.scales.as_ptr().add(base));
            let bias = _mm512_loadu_ps(m.bias.as_ptr().add(base));
            for (i, acc) in acc.iter().enumerate() {
                let t = t0 + i;
                let zero = _mm512_set1_epi32(acts.zeros[t]);
                let centred = _mm512_sub_epi32(acc[j], _mm512_mullo_epi32(zero, sums));
                let scale = _mm512_mul_ps(_mm512_set1_ps(acts.scales[t]), scales);
                let y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(centred), scale, bias);
                _mm512_mask_storeu_ps(out.add(t * m.rows + base), mask, y);
            }
        }
    }
}

/// `M` tokens from `t0` × one panel, an activation scale per block: each block's integer
/// sums are scaled into float accumulators; the zero points' share comes out at the end.
///
/// # Safety
/// As [`tile`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn tile_blocked<const M: usize>(
    m: &Int8Matrix,
    acts: &Activations,
    panel: usize,
    t0: usize,
    out: *mut f32,
) {
    let width = m.groups * GROUP;
    let per_block = m.block / GROUP;
    let mut sum = [[_mm512_setzero_ps(); 4]; M];
    // SAFETY: as in `tile`; token `t0 + i` has `blocks` scales.
    unsafe {
        let w = m.packed.as_ptr().add(panel * m.groups * PANEL * GROUP);
        let x = acts.quants.as_ptr().add(t0 * width);
        for b in 0..m.blocks {
            let mut acc = [[_mm512_setzero_si512(); 4]; M];
            for group in b * per_block..(b + 1) * per_block {
                let wv = weights(w, group);
                for (i, acc) in acc.iter_mut().enumerate() {
                    let four = (x.add(i * width + group * GROUP) as *const i32).read_unaligned();
                    let xv = _mm512_set1_epi32(four);
                    for (a, w) in acc.iter_mut().zip(wv) {
                        *a = _mm512_dpbusd_epi32(*a, xv, w);
                    }
                }
            }
            for (i, (sum, acc)) in sum.iter_mut().zip(&acc).enumerate() {
                let scale = _mm512_set1_ps(*acts.scales.get_unchecked((t0 + i) * m.blocks + b));
                for (s, a) in sum.iter_mut().zip(acc) {
                    *s = _mm512_fmadd_ps(_mm512_cvtepi32_ps(*a), scale, *s);
                }
            }
        }
    }
    let padded_rows = m.scales.len();
    for j in 0..4 {
        let Some((base, mask)) = row_mask(m, panel, j) else {
            break;
        };
        // SAFETY: as in `tile`; the sums hold `blocks` padded rows.
        unsafe {
            let scales = _mm512_loadu_ps(m.scales.as_ptr().add(base));
            let bias = _mm512_loadu_ps(m.bias.as_ptr().add(base));
            for (i, sum) in sum.iter().enumerate() {
                let t = t0 + i;
                let mut correction = _mm512_setzero_ps();
                for b in 0..m.blocks {
                    let k = t * m.blocks + b;
                    let shift = acts.scales[k] * acts.zeros[k] as f32;
                    let sums = m.sums.as_ptr().add(b * padded_rows + base) as *const __m512i;
                    let sums = _mm512_cvtepi32_ps(_mm512_loadu_si512(sums));
                    correction = _mm512_fmadd_ps(_mm512_set1_ps(shift), sums, correction);
                }
                let y = _mm512_fmadd_ps(_mm512_sub_ps(sum[j], correction), scales, bias);
                _mm512_mask_storeu_ps(out.add(t * m.rows + base), mask, y);
            }
        }
    }
}
