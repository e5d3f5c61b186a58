//! The AVX-512 f32 register tile of the attention's two products: `ROWS` rows of `a` times
//! a `depth × 16·V` slice of `b`, accumulated in 6 × V vector registers (24 of 32 at
//! V = 4), each step one load per vector of `b` and one broadcast per row of `a`.

use std::arch::x86_64::*;

/// Rows of `a` (and of the output) per tile.
pub(super) const ROWS: usize = 6;

/// A read-only matrix: row `i` starts at `ptr + i · stride`.
#[derive(Clone, Copy)]
pub(super) struct Strided {
    pub(super) ptr: *const f32,
    pub(super) stride: usize,
}

/// `c[r][0..16·V] = scale · Σ_k a[r][k] · b[k][0..16·V]` for the first `rows` (1..=ROWS)
/// rows; rows of `a` past `rows` are not read.
///
/// # Safety
/// The CPU has AVX-512 F; `a` holds `rows` rows of `depth` values, `b` `depth` rows of
/// `16·V` values, `c` `rows` rows of `16·V` values, `c_stride` apart.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tile<const V: usize>(
    a: Strided,
    b: Strided,
    depth: usize,
    c: *mut f32,
    c_stride: usize,
    rows: usize,
    scale: f32,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; ROWS];
    let mut row_ptrs = [a.ptr; ROWS];
    for (r, ptr) in row_ptrs.iter_mut().enumerate() {
        // Rows past the last repeat it: computed, never stored.
        *ptr = a.ptr.wrapping_add(r.min(rows - 1) * a.stride);
    }
    // SAFETY: every load is inside `a`'s rows (clamped above) and `b`'s rows, every store
    // inside `c`'s first `rows` rows (caller's contract).
    unsafe {
        for k in 0..depth {
            let bp = b.ptr.add(k * b.stride);
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, vector) in bv.iter_mut().enumerate() {
                *vector = _mm512_loadu_ps(bp.add(16 * v));
            }
            for (acc, ptr) in acc.iter_mut().zip(&row_ptrs) {
                let x = _mm512_set1_ps(*ptr.add(k));
                for (sum, vector) in acc.iter_mut().zip(&bv) {
                    *sum = _mm512_fmadd_ps(x, *vector, *sum);
                }
            }
        }
        let s = _mm512_set1_ps(scale);
        for (r, acc) in acc.iter().enumerate().take(rows) {
            for (v, sum) in acc.iter().enumerate() {
                _mm512_storeu_ps(c.add(r * c_stride + 16 * v), _mm512_mul_ps(*sum, s));
            }
        }
    }
}
