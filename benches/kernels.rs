//! The int8 GEMM against candle's f32 matmul (`cargo bench --bench kernels`), on the
//! shapes the models multiply: SmolLM2-135M's prefill products for a 606-token prompt and
//! MiniLM's linear layers for a batch of 16 chunks of 215 tokens. Prints GOP/s (two
//! operations per multiply-add) and the ratio; `BULKHEAD_KERNELS` has no effect here.

use std::time::Instant;

use bulkhead::kernels::{Int8Matrix, Kernel, pseudo_random as random};
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
}
