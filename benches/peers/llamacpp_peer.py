#!/usr/bin/env python3
"""The llama.cpp peer for `cargo bench --bench llm` (issue 10). Optional: nothing in the
build, the tests or CI needs it.

Loads the same SmolLM2-135M Q4_1 file with 2 threads and prints prefill tok/s for the same
~600-token prompt as benches/llm.rs (its excerpt grown to 560 tokens, the question, the
file's ChatML turns) and decode tok/s for 64 greedy tokens after it, best of 3 runs after
a warm-up. The machines are noisy: run it alternately with the bench in one sitting and
quote the ratio, e.g.

    python3 -m venv /work/llama-venv && /work/llama-venv/bin/pip install numpy
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
        -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF" \
        /work/llama-venv/bin/pip install --no-cache-dir llama-cpp-python==0.3.36
    /work/llama-venv/bin/python benches/peers/llamacpp_peer.py   # then the bench, then this

On the Sapphire Rapids machines here a `-DGGML_NATIVE=ON` build (AVX-512, AMX) crashes
with a segmentation fault at the first `eval`; the AVX2 build above runs.

`--decode-only`: a short prompt and 256 new tokens, as `BULKHEAD_LLM_BENCH_DECODE=1`.
"""

import argparse
import os
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama

FILLER = (
    "Section 4.2 of the supply agreement states that the supplier shall deliver "
    "the goods within thirty days of each purchase order, and that late delivery "
    "entitles the buyer to a discount of two percent per week of delay. "
)


def chatml(turns):
    text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns)
    return text + "<|im_start|>assistant\n"


def last_logits(llm):
    """The logits of the last token evaluated (`Llama.scores` holds them only with
    `logits_all`, which would copy every prompt row's too)."""
    pointer = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),))


def run(llm, tokens, new_tokens):
    """Prefill `tokens`, then `new_tokens` greedy tokens; returns (prefill s, decode s)."""
    llm.reset()
    started = time.perf_counter()
    llm.eval(tokens)
    prefilled = time.perf_counter()
    for _ in range(new_tokens):
        llm.eval([int(np.argmax(last_logits(llm)))])
    return prefilled - started, time.perf_counter() - prefilled


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    parser.add_argument(
        "--model",
        default=os.path.join(root, "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--decode-only", action="store_true")
    args = parser.parse_args()
    llm = Llama(
        model_path=args.model,
        n_ctx=2048,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    if args.decode_only:
        turns = [("user", "Write a long story about a lighthouse keeper and the ships she guides.")]
        new_tokens = 256
    else:
        excerpt = ""
        while len(llm.tokenize(excerpt.encode(), add_bos=False)) < 560:
            excerpt += FILLER
        turns = [
            ("system", "Answer only from the excerpt."),
            ("user", f"Excerpt: {excerpt}\n\nQuestion: What discount applies to late delivery?"),
        ]
        new_tokens = 64
    tokens = llm.tokenize(chatml(turns).encode(), add_bos=False, special=True)
    run(llm, tokens, 1)  # warm-up
    best_prefill = best_decode = 0.0
    for _ in range(args.runs):
        prefill, decode = run(llm, tokens, new_tokens)
        prefill_rate, decode_rate = len(tokens) / prefill, new_tokens / decode
        best_prefill, best_decode = max(best_prefill, prefill_rate), max(best_decode, decode_rate)
        print(
            f"llama.cpp: prompt {len(tokens)} tok, prefill {prefill_rate:.0f} tok/s, "
            f"decode {new_tokens} tok at {decode_rate:.1f} tok/s",
            flush=True,
        )
    print(f"llama.cpp best: prefill {best_prefill:.0f} tok/s, decode {best_decode:.1f} tok/s")


if __name__ == "__main__":
    main()
