//! Decoding one token (issue 10): the project's own loop over plain slices, so a token
//! costs the weight reads and little else. Per block: norm, one stacked product for the
//! query, key and value, rotary embedding, the key and value appended to the preallocated
//! cache, attention of each query head over its shared key/value head (no copies of the
//! cache), the output product, norm, one stacked product for gate and up, down. Every
//! buffer lives in [`Scratch`], allocated once per generation; the products and the
//! attention heads are split across candle's worker pool.

use candle_core::quantized::QMatMul;
use candle_core::utils::barrier_pool;
use candle_core::{Device, Module, Tensor};

use crate::kernels::{silu_mul, softmax_in_place};

use super::LlmError;
use super::model::{DecodeMatrix, Dims, KvCache, Layer, Model, RopeStyle};
use super::q8::{Kernel, Q8Vector};

/// The buffers of one generation, reused for every token.
#[derive(Debug)]
pub(super) struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate_up: Vec<f32>,
    act: Vec<f32>,
    scores: Vec<f32>,
    xq: Q8Vector,
    /// The dot-product kernel, the CPU's fastest unless a test chose one.
    pub(super) kernel: Kernel,
}

impl Scratch {
    /// Sized for `dims` and attention over up to `positions` positions.
    pub(super) fn new(dims: &Dims, positions: usize) -> Self {
        let e = dims.embedding;
        let q = dims.n_head * dims.head_dim;
        Self {
            x: vec![0.0; e],
            h: vec![0.0; e],
            qkv: vec![0.0; q + 2 * dims.kv_width()],
            attn: vec![0.0; q],
            proj: vec![0.0; e],
            gate_up: vec![0.0; 2 * dims.feed_forward],
            act: vec![0.0; dims.feed_forward],
            scores: vec![0.0; dims.n_head * positions],
            xq: Q8Vector::default(),
            kernel: Kernel::detect(),
        }
    }
}

impl Model {
    /// Runs `token` at the cache's next position (appending its keys and values) and
    /// writes the logits for the token after it.
    pub(super) fn step(
        &self,
        cache: &mut KvCache,
        s: &mut Scratch,
        token: u32,
        logits: &mut [f32],
    ) -> Result<(), LlmError> {
        let d = self.dims;
        let e = d.embedding;
        let row = token as usize;
        let pos = cache.len;
        if row >= d.vocab || pos >= self.positions {
            return Err(LlmError::Inference(format!(
                "token {token} at position {pos} is out of range"
            )));
        }
        if s.scores.len() < d.n_head * (pos + 1) {
            s.scores.resize(d.n_head * (pos + 1), 0.0);
        }
        s.x.copy_from_slice(&self.embeddings[row * e..(row + 1) * e]);
        let q_width = d.n_head * d.head_dim;
        for (i, layer) in self.layers.iter().enumerate() {
            rms_norm(&s.x, &layer.attn_norm_v, d.eps, &mut s.h);
            match &layer.decode {
                Some(w) => quant_matvec(s.kernel, &w.qkv, &s.h, &mut s.xq, &mut s.qkv),
                None => candle_matvec(layer.qkv.candle()?, &s.h, &mut s.qkv)?,
            }
            if let Some(bias) = &layer.qkv_bias {
                add(&mut s.qkv, &bias.stacked);
            }
            let (q, kv) = s.qkv.split_at_mut(q_width);
            let (k, v) = kv.split_at_mut(d.kv_width());
            self.rotate(q, pos);
            self.rotate(k, pos);
            cache.keys[i].extend_from_slice(k);
            cache.values[i].extend_from_slice(v);
            attention(
                &d,
                q,
                &cache.keys[i],
                &cache.values[i],
                &mut s.scores[..d.n_head * (pos + 1)],
                &mut s.attn,
            );
            match &layer.decode {
                Some(w) => quant_matvec(s.kernel, &w.o, &s.attn, &mut s.xq, &mut s.proj),
                None => candle_matvec(layer.wo.candle()?, &s.attn, &mut s.proj)?,
            }
            add(&mut s.x, &s.proj);
            rms_norm(&s.x, &layer.ffn_norm_v, d.eps, &mut s.h);
            self.feed_forward(layer, s)?;
            add(&mut s.x, &s.proj);
        }
        cache.len += 1;
        self.logits_with(s.kernel, &s.x, &mut s.h, &mut s.xq, logits);
        Ok(())
    }

    /// Gate and up from `s.h`, SiLU(gate) × up, down into `s.proj`.
    fn feed_forward(&self, layer: &Layer, s: &mut Scratch) -> Result<(), LlmError> {
        let ff = self.dims.feed_forward;
        match &layer.decode {
            Some(w) => quant_matvec(s.kernel, &w.gate_up, &s.h, &mut s.xq, &mut s.gate_up),
            None => candle_matvec(layer.gate_up.candle()?, &s.h, &mut s.gate_up)?,
        }
        let (gate, up) = s.gate_up.split_at(ff);
        s.act.copy_from_slice(gate);
        silu_mul(&mut s.act, up);
        match &layer.decode {
            Some(w) => quant_matvec(s.kernel, &w.down, &s.act, &mut s.xq, &mut s.proj),
            None => candle_matvec(layer.down.candle()?, &s.act, &mut s.proj)?,
        }
        Ok(())
    }

    /// Final norm and output projection of one position's hidden state.
    pub(super) fn logits(&self, x: &[f32], h: &mut Vec<f32>, xq: &mut Q8Vector, out: &mut [f32]) {
        self.logits_with(Kernel::detect(), x, h, xq, out);
    }

    fn logits_with(
        &self,
        kernel: Kernel,
        x: &[f32],
        h: &mut Vec<f32>,
        xq: &mut Q8Vector,
        out: &mut [f32],
    ) {
        h.resize(x.len(), 0.0);
        rms_norm(x, &self.norm_v, self.dims.eps, h);
        quant_matvec(kernel, &self.output, h, xq, out);
    }

    /// Rotary embedding at `pos`: pairs (2i, 2i+1) of each head (llama's layout in GGUF)
    /// or (i, i + half) (qwen2's).
    pub(super) fn rotate(&self, heads: &mut [f32], pos: usize) {
        let half = self.dims.head_dim / 2;
        let cos = &self.cos_v[pos * half..(pos + 1) * half];
        let sin = &self.sin_v[pos * half..(pos + 1) * half];
        let turn = |a: &mut f32, b: &mut f32, c: f32, s: f32| {
            let (x, y) = (*a, *b);
            *a = x * c - y * s;
            *b = x * s + y * c;
        };
        for head in heads.chunks_exact_mut(self.dims.head_dim) {
            match self.rope {
                RopeStyle::Interleaved => {
                    for ((pair, c), s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                        let [a, b] = pair else { continue };
                        turn(a, b, *c, *s);
                    }
                }
                RopeStyle::Halves => {
                    let (first, second) = head.split_at_mut(half);
                    for (((a, b), c), s) in first.iter_mut().zip(second).zip(cos).zip(sin) {
                        turn(a, b, *c, *s);
                    }
                }
            }
        }
    }
}

fn quant_matvec(kernel: Kernel, w: &DecodeMatrix, x: &[f32], xq: &mut Q8Vector, out: &mut [f32]) {
    xq.quantize(x);
    w.matvec(kernel, xq, out);
}

/// One row through a candle matmul (the formats without 8-bit decode weights).
fn candle_matvec(w: &QMatMul, x: &[f32], out: &mut [f32]) -> Result<(), LlmError> {
    let input = Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?;
    let y = w.forward(&input)?.flatten_all()?.to_vec1::<f32>()?;
    out.copy_from_slice(&y);
    Ok(())
}

pub(super) fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

pub(super) fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Eight independent sums, so the compiler vectorises it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    let mut acc = [0f32; 8];
    for (x, y) in a8.iter().zip(b8) {
        for ((sum, x), y) in acc.iter_mut().zip(x).zip(y) {
            *sum += x * y;
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Attention of one position's query heads over `keys`/`values` (token-major, all
/// positions so far, this one included). `scores` holds a row of positions per head.
fn attention(
    d: &Dims,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hd = d.head_dim;
    let width = d.kv_width();
    let positions = keys.len() / width;
    let rep = d.n_head / d.n_kv_head;
    let scale = 1.0 / (hd as f32).sqrt();
    let scores_ptr = scores.as_mut_ptr() as usize;
    let out_ptr = out.as_mut_ptr() as usize;
    barrier_pool().execute_chunked(d.n_head, |heads| {
        for h in heads {
            let kv = (h / rep) * hd;
            let q = &q[h * hd..(h + 1) * hd];
            // SAFETY: each head owns its row of `scores` and its slice of `out`, both of
            // which outlive the call (execute_chunked returns when every worker is done).
            let (row, out) = unsafe {
                (
                    std::slice::from_raw_parts_mut(
                        (scores_ptr as *mut f32).add(h * positions),
                        positions,
                    ),
                    std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(h * hd), hd),
                )
            };
            for (t, score) in row.iter_mut().enumerate() {
                *score = dot(q, &keys[t * width + kv..t * width + kv + hd]) * scale;
            }
            softmax_in_place(row);
            out.fill(0.0);
            for (t, weight) in row.iter().enumerate() {
                let v = &values[t * width + kv..t * width + kv + hd];
                for (o, v) in out.iter_mut().zip(v) {
                    *o += weight * v;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use crate::llm::model::KvCache;
    use crate::llm::q8::Kernel;
    use crate::llm::tests::{generator, grounded_chat, model_path};
    use crate::llm::{ChatMessage, Generator, LoadOptions, Role, WeightFormat};

    use super::Scratch;

    /// The logits after `chat` and after each of `tokens` fed in turn, each step's
    /// products run by `kernel` (the prompt's own logits by prefill's kernel).
    fn logits_along(
        generator: &Generator,
        chat: &[ChatMessage],
        tokens: &[u32],
        kernel: Kernel,
    ) -> Vec<Vec<f32>> {
        let prompt = generator.prompt_ids(chat).unwrap();
        let model = &generator.model;
        let capacity = prompt.len() + tokens.len();
        let mut cache = KvCache::new(&model.dims, model.layers.len(), capacity);
        let mut logits = generator.prefill(&mut cache, &prompt).unwrap();
        let mut scratch = Scratch::new(&model.dims, capacity);
        scratch.kernel = kernel;
        let mut all = vec![logits.clone()];
        for token in tokens {
            model
                .step(&mut cache, &mut scratch, *token, &mut logits)
                .unwrap();
            all.push(logits.clone());
        }
        all
    }

    /// `n` greedy tokens after `chat` (penalising repeats as `generate` does, not
    /// stopping at the end of the answer) with the fastest kernel.
    fn greedy(generator: &Generator, chat: &[ChatMessage], n: usize) -> Vec<u32> {
        let prompt = generator.prompt_ids(chat).unwrap();
        let model = &generator.model;
        let mut cache = KvCache::new(&model.dims, model.layers.len(), prompt.len() + n);
        let mut logits = generator.prefill(&mut cache, &prompt).unwrap();
        let mut scratch = Scratch::new(&model.dims, prompt.len() + n);
        let mut tokens = Vec::with_capacity(n);
        while tokens.len() < n {
            let next = generator.pick(&logits, &tokens).unwrap();
            tokens.push(next);
            model
                .step(&mut cache, &mut scratch, next, &mut logits)
                .unwrap();
        }
        tokens
    }

    /// Along the fastest kernel's greedy answer to each prompt, every other kernel's
    /// logits: the worst difference as a share of the logits' spread, and the steps whose
    /// greedy pick differs.
    fn compare_kernels(prompts: &[Vec<ChatMessage>], n: usize) -> Vec<(Kernel, f32, usize)> {
        let g = generator();
        let mut results = Vec::new();
        for chat in prompts {
            let tokens = greedy(g, chat, n);
            let reference = logits_along(g, chat, &tokens, Kernel::available()[0]);
            for kernel in &Kernel::available()[1..] {
                let (mut worst, mut picks_differ) = (0f32, 0);
                for (step, (got, want)) in logits_along(g, chat, &tokens, *kernel)
                    .iter()
                    .zip(&reference)
                    .enumerate()
                {
                    let spread = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let diff = got
                        .iter()
                        .zip(want)
                        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    worst = worst.max(diff / spread);
                    let recent = &tokens[..step];
                    if g.pick(got, recent).unwrap() != g.pick(want, recent).unwrap() {
                        picks_differ += 1;
                    }
                }
                results.push((*kernel, worst, picks_differ));
            }
        }
        results
    }

    /// Grounded questions in the appliance's shape, and a few open ones.
    fn fixed_prompts() -> Vec<Vec<ChatMessage>> {
        let grounded = [
            (
                "The agreement terminates on 31 March 2027.",
                "When does the agreement terminate?",
            ),
            (
                "Either party may terminate this Agreement upon ninety (90) days written notice.",
                "How much notice is needed to terminate?",
            ),
            (
                "The Supplier shall indemnify the Customer against all losses arising from a breach of clause 7.",
                "Who indemnifies whom?",
            ),
            (
                "This Agreement is governed by the laws of the State of Delaware.",
                "Which law governs the agreement?",
            ),
            (
                "Late payments bear interest at 1.5% per month.",
                "What interest applies to late payments?",
            ),
            (
                "The Licensee shall pay a royalty of five percent of Net Sales each quarter.",
                "What royalty does the licensee pay?",
            ),
            (
                "Neither party may assign this Agreement without the prior written consent of the other party.",
                "Can the agreement be assigned?",
            ),
            (
                "The initial term is three years, renewing automatically for one-year terms.",
                "How long is the initial term?",
            ),
            (
                "All notices must be sent by registered mail to the addresses above.",
                "How must notices be sent?",
            ),
            (
                "The Distributor has exclusive rights in France, Belgium and Luxembourg.",
                "Where is the distributor exclusive?",
            ),
            (
                "Liability is capped at the fees paid in the twelve months before the claim.",
                "What is the liability cap?",
            ),
            (
                "Confidential Information must be kept secret for five years after termination.",
                "How long does confidentiality last?",
            ),
        ];
        let open = [
            "Write a short poem about the sea.",
            "Explain what a contract is in two sentences.",
            "List three colours.",
            "What is the capital of France?",
            "Give me a recipe for pancakes.",
            "Summarise the plot of a detective story.",
            "Why is the sky blue?",
            "Count from one to ten in words.",
        ];
        let mut prompts: Vec<Vec<ChatMessage>> = grounded
            .iter()
            .map(|(excerpt, question)| {
                vec![
                    ChatMessage::new(Role::System, "Answer only from the excerpt."),
                    ChatMessage::new(
                        Role::User,
                        format!("Excerpt: {excerpt}\nQuestion: {question}"),
                    ),
                ]
            })
            .collect();
        prompts.extend(open.iter().map(|q| vec![ChatMessage::new(Role::User, *q)]));
        prompts
    }

    /// Every kernel the CPU has computes the same next-token logits as the fastest one
    /// along a few fixed answers, up to the order of floating-point sums (which the 8-bit
    /// activations amplify: a sum that lands on the other side of a rounding step changes
    /// a quant, layer after layer), and almost always the same greedy pick.
    #[test]
    fn every_kernel_computes_the_same_logits_along_fixed_answers() {
        let prompts: Vec<_> = fixed_prompts().into_iter().step_by(5).collect();
        for (kernel, worst, picks_differ) in compare_kernels(&prompts, 12) {
            eprintln!("{kernel:?}: worst {worst}, picks differ at {picks_differ} of 13 steps");
            // Measured: AVX2 and portable differ from AVX-512 by at most 6% of the spread
            // here (and from each other by as much); a wrong kernel gives noise.
            assert!(
                worst < 0.08,
                "{kernel:?}: worst difference {worst} of the spread"
            );
            // Measured: at most 2 of 13 (portable, one prompt, near-ties).
            assert!(picks_differ <= 2, "{kernel:?}: {picks_differ} picks differ");
        }
    }

    /// The check over all twenty prompts (issue 10's correctness bar), 48 tokens each:
    /// `cargo test --release --lib -- --ignored twenty_prompts --nocapture`.
    #[test]
    #[ignore]
    fn twenty_prompts_compute_the_same_logits_with_every_kernel() {
        let prompts = fixed_prompts();
        assert_eq!(prompts.len(), 20);
        let results = compare_kernels(&prompts, 48);
        let steps = prompts.len() * 49;
        for kernel in &Kernel::available()[1..] {
            let of_kernel = results.iter().filter(|(k, _, _)| k == kernel);
            let worst = of_kernel.clone().fold(0f32, |m, (_, w, _)| m.max(*w));
            let differ: usize = of_kernel.map(|(_, _, d)| d).sum();
            eprintln!("{kernel:?}: worst {worst}, picks differ at {differ} of {steps} steps");
            // Measured (AVX-512 against AVX2): worst 0.10, picks differ at 28 of 980 steps.
            assert!(worst < 0.15);
            assert!(differ * 20 <= steps, "more than 5% of picks differ");
        }
    }

    /// The last prompt token through `step` gives the logits a prefill of the whole
    /// prompt gives: the decode loop computes the same model as the batched path.
    fn step_matches_prefill(generator: &Generator, tolerance: f32) {
        let prompt = generator.prompt_ids(&grounded_chat()).unwrap();
        let model = &generator.model;
        let (head, last) = prompt.split_at(prompt.len() - 1);
        let mut whole = KvCache::new(&model.dims, model.layers.len(), prompt.len());
        let expected = generator.prefill(&mut whole, &prompt).unwrap();
        let mut cache = KvCache::new(&model.dims, model.layers.len(), prompt.len());
        let mut logits = generator.prefill(&mut cache, head).unwrap();
        let mut scratch = Scratch::new(&model.dims, prompt.len());
        model
            .step(&mut cache, &mut scratch, last[0], &mut logits)
            .unwrap();
        assert_eq!(cache.len, whole.len);
        let spread = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = logits
            .iter()
            .zip(&expected)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= tolerance * spread,
            "worst {worst}, spread {spread}"
        );
        assert_eq!(
            generator.pick(&logits, &[]).unwrap(),
            generator.pick(&expected, &[]).unwrap()
        );
    }

    #[test]
    fn decoding_a_token_matches_prefilling_it() {
        // f32 weights both ways: only the order of floating-point sums differs.
        let f32 = Generator::load_with(
            &model_path(),
            LoadOptions {
                weights: WeightFormat::F32,
            },
        )
        .unwrap();
        step_matches_prefill(&f32, 1e-3);
        // The default: 8-bit weights and activations when decoding, f32 in prefill.
        step_matches_prefill(crate::llm::tests::generator(), 0.05);
    }

    /// The same for qwen2 (biases, the other rotary layout), when the optional model is
    /// fetched.
    #[test]
    fn qwen2_decoding_a_token_matches_prefilling_it() {
        if let Some(qwen) = crate::llm::tests::optional_qwen() {
            step_matches_prefill(qwen, 0.05);
        }
    }
}
