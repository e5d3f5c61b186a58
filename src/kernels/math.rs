//! Element-wise functions of the models' forward passes over f32 slices: `exp`, softmax,
//! layer normalisation, BERT's exact-erf GELU and SwiGLU's `silu(gate) · up`.
//!
//! libm's `expf` and `erff` are scalar calls; these are branch-free polynomials (a select
//! at most) that the compiler vectorises for the build's target (AVX2 in the default
//! build, SSE2 in the baseline one), with no `mul_add` (a libm call where the target has
//! no FMA). Accuracy, checked by the tests: `exp` within 2e-7 relative of f64's, `erf`
//! within 2e-7 absolute (Abramowitz and Stegun 7.1.26), so GELU differs from candle's
//! `gelu_erf` by less than 1e-6.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n · LN2_HI` is exact for the `n` that occur (Cephes).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding then subtracting 1.5 · 2²³ rounds an f32 of magnitude < 2²² to an integer, and
/// the sum's low mantissa bits hold that integer (no `round`, which SSE2 lacks).
const ROUNDER: f32 = 12_582_912.0;
/// Below this `exp` is 0 (the smallest normal f32 is e^-87.34).
const EXP_MIN: f32 = -87.3;
/// Above this `exp` would overflow 2^127 · 2.
const EXP_MAX: f32 = 88.3;

/// e^x; 0 below -87.3 (so −∞, a masked score, gives 0), clamped at e^88.3.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let clamped = x.clamp(EXP_MIN, EXP_MAX);
    let shifted = clamped * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // The integer n sits in the low bits of `shifted`'s mantissa, offset by 2²².
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let scale = f32::from_bits((n_int + 127).wrapping_shl(23) as u32);
    if x < EXP_MIN { 0.0 } else { y * scale }
}

/// erf(x) by Abramowitz and Stegun 7.1.26 (absolute error ≤ 1.5e-7 in exact arithmetic).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4f32;
    p = p * t - 1.453_152_1;
    p = p * t + 1.421_413_8;
    p = p * t - 0.284_496_74;
    p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

/// Every element replaced by its exponential.
pub fn exp_in_place(x: &mut [f32]) {
    for value in x {
        *value = exp(*value);
    }
}

/// The softmax of `row` in place (−∞ entries become 0). An empty row stays empty.
pub fn softmax_in_place(row: &mut [f32]) {
    let max = lanes(row, f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    for value in row.iter_mut() {
        *value = exp(*value - max);
    }
    let inverse = 1.0 / lanes(row, 0.0, |a, b| a + b);
    for value in row {
        *value *= inverse;
    }
}

/// `values` folded with `f` in eight independent lanes, then the lanes: the compiler
/// vectorises this, where one running value (a serial dependency it may not reorder for
/// floats) stays scalar.
#[inline(always)]
pub(super) fn lanes(values: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, *v);
        }
    }
    let folded = acc.into_iter().fold(init, &f);
    rest.iter().fold(folded, |a, v| f(a, *v))
}

/// Layer normalisation of one row in place: `(x − mean) / √(var + eps) · weight + bias`,
/// the variance the biased one (as BERT's, and candle's `LayerNorm`).
pub fn layer_norm_in_place(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    assert!(
        weight.len() == row.len() && bias.len() == row.len(),
        "layer_norm: weight and bias differ in width from the row"
    );
    let n = row.len().max(1) as f32;
    let mean = lanes(row, 0.0, |a, b| a + b) / n;
    for value in row.iter_mut() {
        *value -= mean;
    }
    let mut squares = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for chunk in chunks {
        for (s, v) in squares.iter_mut().zip(chunk) {
            *s += v * v;
        }
    }
    let variance = (squares.iter().sum::<f32>() + rest) / n;
    let inverse = 1.0 / (variance + eps).sqrt();
    for ((value, w), b) in row.iter_mut().zip(weight).zip(bias) {
        *value = *value * inverse * w + b;
    }
}

/// GELU with the exact erf, as BERT uses it: `x/2 · (1 + erf(x/√2))`.
pub fn gelu_erf_in_place(x: &mut [f32]) {
    for value in x {
        let v = *value;
        *value = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// SwiGLU's activation: `gate[i] = silu(gate[i]) · up[i]`, `silu(g) = g / (1 + e^-g)`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(
        gate.len(),
        up.len(),
        "silu_mul: gate and up differ in length"
    );
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp(-*g)) * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn sweep(from: f32, to: f32, n: usize) -> Vec<f32> {
        (0..=n)
            .map(|i| from + (to - from) * i as f32 / n as f32)
            .collect()
    }

    #[test]
    fn exp_is_within_two_parts_in_ten_million_of_f64s() {
        for x in sweep(-87.0, 88.0, 200_000) {
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            assert!(
                ((got - want) / want).abs() < 2e-7,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert!(exp(100.0).is_finite());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn softmax_sums_to_one_and_masks_minus_infinity() {
        let mut row = vec![1.0, 2.0, f32::NEG_INFINITY, 3.0, -1000.0];
        softmax_in_place(&mut row);
        let total: f32 = row.iter().sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(row[2], 0.0);
        let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
        let sum: f64 = e.iter().sum();
        for (got, want) in [row[0], row[1], row[3]].iter().zip(e) {
            assert!((f64::from(*got) - want / sum).abs() < 1e-6);
        }
        let mut masked = vec![f32::NEG_INFINITY; 3];
        softmax_in_place(&mut masked);
        assert_eq!(masked, vec![0.0; 3]);
    }

    #[test]
    fn gelu_matches_candles_exact_erf_gelu() {
        let xs = sweep(-12.0, 12.0, 100_000);
        let want = Tensor::new(xs.as_slice(), &Device::Cpu)
            .unwrap()
            .gelu_erf()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut got = xs.clone();
        gelu_erf_in_place(&mut got);
        for ((x, g), w) in xs.iter().zip(&got).zip(&want) {
            assert!((g - w).abs() < 1e-6, "gelu({x}) = {g}, candle {w}");
        }
    }

    #[test]
    fn layer_norm_matches_candles() {
        let width = 384;
        let rows = 5;
        let x: Vec<f32> = crate::kernels::pseudo_random(rows * width, 3)
            .iter()
            .enumerate()
            .map(|(i, v)| 4.0 * v + (i / width) as f32)
            .collect();
        let weight: Vec<f32> = crate::kernels::pseudo_random(width, 4);
        let bias: Vec<f32> = crate::kernels::pseudo_random(width, 5);
        let device = Device::Cpu;
        let norm = candle_nn::LayerNorm::new(
            Tensor::new(weight.as_slice(), &device).unwrap(),
            Tensor::new(bias.as_slice(), &device).unwrap(),
            1e-12,
        );
        let input = Tensor::from_vec(x.clone(), (rows, width), &device).unwrap();
        let want = candle_core::Module::forward(&norm, &input)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut got = x;
        for row in got.chunks_exact_mut(width) {
            layer_norm_in_place(row, &weight, &bias, 1e-12);
        }
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn silu_mul_matches_the_definition() {
        let gate = sweep(-30.0, 30.0, 10_000);
        let up: Vec<f32> = gate.iter().map(|g| 0.5 - g / 7.0).collect();
        let mut got = gate.clone();
        silu_mul(&mut got, &up);
        for ((g, u), out) in gate.iter().zip(&up).zip(&got) {
            let (g64, u64) = (f64::from(*g), f64::from(*u));
            let want = g64 / (1.0 + (-g64).exp()) * u64;
            assert!(
                (f64::from(*out) - want).abs() < 1e-6 * want.abs().max(1.0),
                "silu({g})·{u} = {out}, want {want}"
            );
        }
    }
}
