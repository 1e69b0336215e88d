"""Benchmark: the GPT-style transformer's jitted training step, genjax versus plain JAX, with
FLOPs per token and the fraction of the device's measured matmul peak (MFU).

Shapes (default): vocabulary 96 (the default corpus's characters), context 128, d 128, 4 blocks,
4 heads, batch 32, Adam. Measured for the same shapes:

* ``genjax scan``: ``make_step`` over the autoregressive family, ``--steps`` steps in one
  ``lax.scan``, state donated;
* ``plain scan``: ``benchmarks/plain_gpt.py`` (jnp + optax), the same scan;
* ``genjax dispatch``: the jitted genjax step called from Python once per step.

FLOPs per token: the usual count for a decoder, 6 N + 6 L T d (N the non-embedding parameters
plus the tied output matrix, L blocks, T context: the attention scores and weighted sums, forward
and backward; Kaplan et al. 2020), beside XLA's own count of the compiled step. The peak is measured
here: the best of a few large matmuls in the same dtype. Sampling: tokens/s of the cached
``lax.scan`` sampler against the uncached one (a whole forward pass per token).

    python benchmarks/gpt_step.py [--steps 20] [--reps 5] [--dtype float32|bfloat16]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import plain_gpt  # noqa: E402
from benchmarks.timing import compile_and_time, dispatch, machine, median_time  # noqa: E402
from genjax.config import base_config  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.train import init_state, make_step  # noqa: E402


def matmul_peak(dtype, n: int | None = None, reps: int = 5) -> float:
    """FLOP/s of the best of ``reps`` n x n x n matmuls in ``dtype`` at JAX's default precision
    (on an NVIDIA GPU a float32 matmul runs as TF32). ``n`` defaults to 2048 on CPU and 8192 on
    an accelerator, where a 2048 product takes tens of microseconds and the dispatch would be
    timed instead of the matmul."""
    n = n or (2048 if jax.default_backend() == "cpu" else 8192)
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = min(median_time(f, lambda: (a,), 1)[0] for _ in range(reps))
    return 2 * n**3 / best


def flops_per_token(d: int, layers: int, t: int, vocab: int, mlp_ratio: int = 4) -> float:
    n = layers * (4 * d * d + 2 * mlp_ratio * d * d) + vocab * d  # attention + MLP matrices, output layer
    return 6 * n + 6 * layers * t * d


def bench(a) -> dict:
    vocab, t, d, layers, heads, batch, steps = a.vocab, a.context, a.d_model, a.layers, a.heads, a.batch, a.steps
    cfg = base_config()
    cfg.model.family = "autoregressive"
    cfg.model.autoregressive.update(arch="transformer", d_model=d, n_layers=layers, n_heads=heads)
    fam = build_family(cfg, DataInfo((t,), vocab=vocab))
    tx = optax.adam(1e-3)
    data = jax.random.randint(jax.random.key(0), (steps, batch, t), 0, vocab)
    state0 = init_state(fam.init(jax.random.key(1)), {"model": tx}, jax.random.key(2), fam.hparams)
    step = make_step(fam.players, {"model": tx}, dtype=a.dtype)

    def g_train(state, batches):
        state, m = jax.lax.scan(step, state, {"x": batches})
        return state, m["loss"]

    plain = plain_gpt.make_train(tx, vocab, heads)
    p0 = plain_gpt.init(jax.random.key(1), vocab, 1, t, d, layers)
    o0 = tx.init(p0)
    copy = lambda x: jax.tree.map(jnp.copy, x)  # noqa: E731
    variants = {
        "genjax scan": (jax.jit(g_train, donate_argnums=0), lambda: (copy(state0), data)),
        "plain scan": (jax.jit(plain, donate_argnums=(0, 1)), lambda: (copy(p0), copy(o0), data)),
    }
    out = compile_and_time(variants, a.reps, steps * batch, steps)
    out["genjax dispatch"] = dispatch(step, state0, data, a.reps)
    for v in out.values():
        v["tokens_per_s"] = v["examples_per_s"] * t
    xla = jax.jit(step).lower(state0, {"x": data[0]}).compile().cost_analysis()  # one step, not the scan
    xla = xla[0] if isinstance(xla, list) else xla
    fpt = flops_per_token(d, layers, t, vocab)
    peak = matmul_peak(jnp.bfloat16 if a.dtype == "bfloat16" else jnp.float32)
    g = out["genjax scan"]
    res = {
        **out,
        "ratio genjax/plain (scan)": g["examples_per_s"] / out["plain scan"]["examples_per_s"],
        "flops_per_token": fpt,
        "xla_flops_per_token": float(xla.get("flops", float("nan"))) / (batch * t),
        "matmul_peak_flops": peak,
        "achieved_flops": g["tokens_per_s"] * fpt,
        "mfu": g["tokens_per_s"] * fpt / peak,
    }
    params = state0.params
    for name, fn in (("cached", fam.sample), ("uncached", fam.samplers["uncached"])):
        f = jax.jit(lambda p, k, fn=fn: fn(p, k, a.sample_batch))
        t0 = time.perf_counter()
        jax.block_until_ready(f(params, jax.random.key(0)))
        c = time.perf_counter() - t0
        sec, _ = median_time(f, lambda: (params, jax.random.key(1)), 3)
        res[f"sample {name}"] = {"compile_s": c, "tokens_per_s": a.sample_batch * t / sec}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=96)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--d_model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--sample_batch", type=int, default=16)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    res = bench(a)
    meta = {**machine(), **{k: v for k, v in vars(a).items() if k != "out"}}
    print(f"# gpt_step on {meta['backend']} ({meta['device']}), {a.dtype}, batch {a.batch} x context {a.context}, "
          f"d {a.d_model}, {a.layers} blocks, {a.steps} steps per call")  # fmt: skip
    print(f"{'variant':<18}{'compile s':>11}{'tokens/s':>14}{'ms/step':>10}")
    for k, v in res.items():
        if isinstance(v, dict) and "ms_per_step" in v:
            print(f"{k:<18}{v['compile_s']:>11.2f}{v['tokens_per_s']:>14.0f}{v['ms_per_step']:>10.3f}")
    print(f"ratio genjax/plain (scan): {res['ratio genjax/plain (scan)']:.3f}")
    print(f"FLOPs/token {res['flops_per_token']:.3e} (XLA's count {res['xla_flops_per_token']:.3e}); "
          f"achieved {res['achieved_flops'] / 1e9:.1f} GFLOP/s of a measured matmul peak "
          f"{res['matmul_peak_flops'] / 1e9:.1f} GFLOP/s: MFU {100 * res['mfu']:.1f}%")  # fmt: skip
    for k in ("sample cached", "sample uncached"):
        print(f"{k}: {res[k]['tokens_per_s']:.0f} tokens/s (compile {res[k]['compile_s']:.1f} s)")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / f"gpt_step-{meta['backend']}-{a.dtype}.json"
    path.write_text(json.dumps({"meta": meta, "results": res}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
