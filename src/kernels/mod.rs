//! Compute kernels of the project's own, for the products candle's f32 matmul is slow at
//! on these CPUs (issue 10): a batched int8 GEMM ([`Int8Matrix`]) for the linear layers of
//! the embedding model and of the LLM's prefill, and the element-wise functions around
//! them ([`math`]: vectorisable `exp`, softmax, GELU, SwiGLU).
//!
//! Dynamic quantisation in ONNX Runtime's style: weights symmetric int8 with one scale per
//! output row, quantised once at load; activations asymmetric uint8 with one scale and
//! zero point per token, quantised per call. A whole row is accumulated in i32 with no
//! float work until the end, so every kernel computes exactly the same integers.
//!
//! The kernel is chosen at run time ([`Kernel::detect`]): AVX-512 VNNI
//! (`vpdpbusd`, 64 multiply-adds an instruction) where the CPU has it, else the portable
//! one (used by tests as the reference, and on CPUs without VNNI callers keep their f32
//! path instead: see [`int8_preferred`]). Work is split over candle's own worker pool, so
//! there is one set of threads. Knows nothing about models, tenants or storage.

mod attention;
mod int8;
mod math;

pub use attention::{Attention, Rows};
pub use int8::{Int8Matrix, Kernel};
pub use math::{
    erf, exp, exp_in_place, gelu_erf_in_place, layer_norm_in_place, silu_mul, softmax_in_place,
};

/// The environment variable that turns the int8 kernels off (`BULKHEAD_KERNELS=f32`): the
/// embedding model and the LLM's prefill then run candle's f32 matmuls as before, which
/// keeps the old path measurable in the benches.
pub const KERNELS_ENV: &str = "BULKHEAD_KERNELS";

/// Whether this CPU has AVX-512 F, BW, VL and VNNI (`vpdpbusd`), checked at run time (the
/// build targets AVX2): what the int8 GEMM's fast kernel and decoding's 8-bit dot products
/// both need.
pub fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether models should run their linear layers through [`Int8Matrix`]: when the CPU has
/// the fast kernel (on others the portable kernel is slower than candle's f32 matmul) and
/// `BULKHEAD_KERNELS` does not ask for `f32`.
pub fn int8_preferred() -> bool {
    let disabled = std::env::var(KERNELS_ENV).is_ok_and(|value| value.eq_ignore_ascii_case("f32"));
    !disabled && Kernel::detect() != Kernel::Portable
}

/// `n` deterministic values in [-1, 1) from `seed` (a small LCG, no extra dependency): the
/// random matrices of the kernels' tests and benches.
#[doc(hidden)]
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
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
