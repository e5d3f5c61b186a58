//! The int8 GEMM against candle's f32 matmul (`cargo bench --bench kernels`), on the
//! shapes the models multiply: SmolLM2-135M's prefill products for a 606-token prompt and
//! MiniLM's linear layers for a batch of 16 chunks of 215 tokens. Prints GOP/s (two
//! operations per multiply-add) and the ratio; `BULKHEAD_KERNELS` has no effect here.
//! Then the attention kernel and the element-wise functions against candle's ops.

use std::time::Instant;

use bulkhead::kernels::{Attention, Int8Matrix, Kernel, Rows, pseudo_random as random};
use candle_core::{Device, Tensor};

/// Best of `runs` timings of `f`, in seconds.
fn best(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    eprintln!("kernel: {:?}", Kernel::detect());
    let shapes = [
        ("llm qkv", 606, 960, 576),
        ("llm wo", 606, 576, 576),
        ("llm gate_up", 606, 3072, 576),
        ("llm down", 606, 576, 1536),
        ("minilm qkv", 3440, 1152, 384),
        ("minilm intermediate", 3440, 1536, 384),
        ("minilm output", 3440, 384, 1536),
    ];
    let (mut int8_total, mut f32_total) = (0f64, 0f64);
    for (name, tokens, rows, cols) in shapes {
        let w = random(rows * cols, 1);
        let x = random(tokens * cols, 2);
        let matrix = Int8Matrix::from_f32(rows, cols, &w, None);
        let mut out = vec![0f32; tokens * rows];
        let int8 = best(5, || matrix.forward(&x, tokens, &mut out));
        let wt = Tensor::from_vec(w.clone(), (rows, cols), &Device::Cpu).unwrap();
        let xt = Tensor::from_vec(x.clone(), (tokens, cols), &Device::Cpu).unwrap();
        let f32 = best(5, || {
            let _ = xt.matmul(&wt.t().unwrap()).unwrap();
        });
        let ops = 2.0 * (tokens * rows * cols) as f64 / 1e9;
        int8_total += int8;
        f32_total += f32;
        eprintln!(
            "{name:>20} {tokens}x{cols} -> {rows}: int8 {:.0} GOP/s, candle f32 {:.0} GFLOP/s: {:.2}x",
            ops / int8,
            ops / f32,
            f32 / int8
        );
    }
    eprintln!("all shapes: int8 {:.2}x candle f32", f32_total / int8_total);
    attention();
    element_wise();
}

/// The attention kernel on both models' shapes, against candle's matmul + mask + softmax
/// + matmul (as the forwards computed it before), and as GFLOP/s of the two products.
fn attention() {
    let cases = [
        (
            "llm prefill, causal",
            Attention {
                heads: 9,
                kv_heads: 3,
                head_dim: 64,
            },
            606,
        ),
        (
            "minilm, one chunk",
            Attention {
                heads: 12,
                kv_heads: 12,
                head_dim: 32,
            },
            215,
        ),
    ];
    for (name, shape, tokens) in cases {
        let causal = shape.heads != shape.kv_heads;
        let d = shape.head_dim;
        let (qw, kw) = (shape.heads * d, shape.kv_heads * d);
        let (q, k, v) = (
            random(tokens * qw, 4),
            random(tokens * kw, 5),
            random(tokens * kw, 6),
        );
        let mut out = vec![0f32; tokens * qw];
        let ours = best(5, || {
            let rows = |data, stride| Rows {
                data,
                stride,
                len: tokens,
            };
            let (q, k, v) = (rows(&q, qw), rows(&k, kw), rows(&v, kw));
            shape.forward(q, k, v, causal.then_some(0), &mut out, qw)
        });
        let device = Device::Cpu;
        let heads = |x: &[f32], n: usize| {
            Tensor::from_slice(x, (tokens, n, d), &device)
                .unwrap()
                .transpose(0, 1)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let group = shape.heads / shape.kv_heads;
        let (qt, kt, vt) = (
            heads(&q, shape.heads),
            heads(&k, shape.kv_heads),
            heads(&v, shape.kv_heads),
        );
        let (kt, vt) = if group > 1 {
            let repeat = |t: &Tensor| {
                Tensor::cat(&vec![t.clone(); group], 1)
                    .unwrap()
                    .reshape((shape.heads, tokens, d))
                    .unwrap()
            };
            (repeat(&kt), repeat(&vt))
        } else {
            (kt, vt)
        };
        let mask: Vec<f32> = (0..tokens * tokens)
            .map(|c| {
                if causal && c % tokens > c / tokens {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (tokens, tokens), &device).unwrap();
        let theirs = best(5, || {
            let scores = (qt.matmul(&kt.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
            let scores = scores.broadcast_add(&mask).unwrap();
            let weights = candle_nn::ops::softmax_last_dim(&scores).unwrap();
            let _ = weights.matmul(&vt).unwrap();
        });
        let pairs = if causal {
            tokens * (tokens + 1) / 2
        } else {
            tokens * tokens
        };
        let flops = 4.0 * (shape.heads * pairs * d) as f64 / 1e9;
        eprintln!(
            "{name:>20} {tokens} tokens: ours {:.2} ms ({:.0} GFLOP/s), candle {:.2} ms: {:.2}x",
            ours * 1e3,
            flops / ours,
            theirs * 1e3,
            theirs / ours
        );
    }
}

/// The element-wise functions against libm's scalar ones (what candle's ops call).
fn element_wise() {
    let x: Vec<f32> = random(1 << 20, 7).iter().map(|v| 8.0 * v).collect();
    let mut y = x.clone();
    let ours = best(5, || {
        y.copy_from_slice(&x);
        bulkhead::kernels::exp_in_place(&mut y);
    });
    let libm = best(5, || {
        for (out, v) in y.iter_mut().zip(&x) {
            *out = v.exp();
        }
    });
    eprintln!(
        "{:>20} 2^20 values: ours {:.2} ms, libm {:.2} ms: {:.2}x",
        "exp",
        ours * 1e3,
        libm * 1e3,
        libm / ours
    );
    let tensor = Tensor::from_slice(&x, x.len(), &Device::Cpu).unwrap();
    let ours = best(5, || {
        y.copy_from_slice(&x);
        bulkhead::kernels::gelu_erf_in_place(&mut y);
    });
    let theirs = best(5, || {
        let _ = tensor.gelu_erf().unwrap();
    });
    eprintln!(
        "{:>20} 2^20 values: ours {:.2} ms, candle {:.2} ms: {:.2}x",
        "gelu (erf)",
        ours * 1e3,
        theirs * 1e3,
        theirs / ours
    );
}
