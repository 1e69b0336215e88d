"""Benchmark: the DDPM U-Net training step, genjax versus plain JAX, and sampling throughput.

U-Net eps_theta with channels (32, 64) on 8x8x1 images (the digits config; ``--shape 28,28,1
--channels 32,64,64`` for MNIST), L_simple on the linear VP process with T = 1000, Adam 1e-3, no
EMA, random data. For the same shapes:

* ``genjax scan``: the diffusion family's step (``make_step``), ``steps`` steps in one
  ``lax.scan``, state donated;
* ``plain scan``: ``benchmarks/plain_unet.py`` (jnp + lax + optax), same scan;
* ``genjax unrolled`` / ``plain unrolled``: the same scans with every step unrolled (no XLA
  loop: on CPU, conv gradients inside a loop body are ~20x slower, jax-ml/jax#12868; the
  engine's ``train.unroll``);
* ``genjax dispatch``: the jitted genjax step called once per step from Python.

Then each sampler's throughput in images/s at ``--sample_steps`` network evaluations (ODE: RK4
steps, four evaluations each; Langevin: levels x 1 step), batch ``--sample_batch``, after compilation.
Compile time is reported apart. Prints a table and writes JSON to benchmarks/results/.

    python benchmarks/diffusion_step.py [--steps 20] [--reps 3] [--batch 128] [--sample_steps 50]
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
from benchmarks import plain_unet  # noqa: E402
from benchmarks.timing import compile_and_time, dispatch, machine  # noqa: E402
from genjax.config import base_config  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.models.diffusion import SAMPLERS  # noqa: E402
from genjax.train import init_state, make_step  # noqa: E402


def bench_step(shape, channels, steps, reps, batch) -> dict:
    key = jax.random.key(0)
    data = jax.random.uniform(key, (steps, batch, *shape), minval=-1.0, maxval=1.0)
    tx = optax.adam(1e-3)
    cfg = base_config()
    cfg.model.family = "diffusion"
    cfg.model.diffusion.channels, cfg.model.diffusion.ema = channels, 0.0
    fam = build_family(cfg, DataInfo(shape, "-11"))
    state0 = init_state(fam.init(jax.random.key(1)), {"model": tx}, jax.random.key(2), fam.hparams)
    step = make_step(fam.players, {"model": tx})

    def g_train(state, batches, unroll=1):
        state, m = jax.lax.scan(step, state, {"x": batches}, unroll=unroll)
        return state, m["loss"]

    p0, static = plain_unet.init(jax.random.key(1), shape, channels)
    n_plain = sum(v.size for v in jax.tree.leaves(p0))
    n_genjax = sum(v.size for v in jax.tree.leaves(state0.params["model"]) if jnp.issubdtype(v.dtype, jnp.floating))
    o0 = tx.init(p0)
    plain = plain_unet.make_train(tx, static)
    plain_unrolled = plain_unet.make_train(tx, static, unroll=steps)
    g_unrolled = lambda state, batches: g_train(state, batches, steps)  # noqa: E731
    copy = lambda t: jax.tree.map(jnp.copy, t)  # noqa: E731
    variants = {
        "genjax scan": (jax.jit(g_train, donate_argnums=0), lambda: (copy(state0), data)),
        "plain scan": (jax.jit(plain, donate_argnums=(0, 1)), lambda: (copy(p0), copy(o0), data, key)),
        "genjax unrolled": (jax.jit(g_unrolled, donate_argnums=0), lambda: (copy(state0), data)),
        "plain unrolled": (jax.jit(plain_unrolled, donate_argnums=(0, 1)), lambda: (copy(p0), copy(o0), data, key)),
    }
    out = {"params": {"genjax": int(n_genjax), "plain": int(n_plain)}}
    out |= compile_and_time(variants, reps, steps * batch, steps)
    out["genjax dispatch"] = dispatch(step, state0, data, reps)
    out["ratio genjax/plain (scan)"] = out["genjax scan"]["examples_per_s"] / out["plain scan"]["examples_per_s"]
    out["ratio genjax/plain (unrolled)"] = (
        out["genjax unrolled"]["examples_per_s"] / out["plain unrolled"]["examples_per_s"]
    )
    return out


def bench_samplers(shape, channels, n_steps, batch) -> dict:
    cfg = base_config()
    cfg.model.family = "diffusion"
    d = cfg.model.diffusion
    d.channels, d.sample_steps, d.ode_steps, d.langevin_steps = channels, n_steps, n_steps, 1
    fam = build_family(cfg, DataInfo(shape, "-11"))
    params = fam.init(jax.random.key(0))
    out = {}
    for name in SAMPLERS:
        draw = jax.jit(fam.sample if name == fam.info["sampler"] else fam.samplers[name], static_argnums=2)
        t = time.perf_counter()
        jax.block_until_ready(draw(params, jax.random.key(1), batch))
        first = time.perf_counter() - t
        t = time.perf_counter()
        jax.block_until_ready(draw(params, jax.random.key(2), batch))
        sec = time.perf_counter() - t
        evals = {"ode": 4 * n_steps, "pc": 2 * n_steps}.get(name, n_steps)
        out[name] = {"compile_and_first_s": first, "seconds": sec, "images_per_s": batch / sec, "network_evals": evals}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--shape", default="8,8,1")
    ap.add_argument("--channels", default="32,64")
    ap.add_argument("--sample_steps", type=int, default=50)
    ap.add_argument("--sample_batch", type=int, default=128)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    shape = tuple(int(s) for s in a.shape.split(","))
    channels = tuple(int(s) for s in a.channels.split(","))
    res = bench_step(shape, channels, a.steps, a.reps, a.batch)
    samp = bench_samplers(shape, channels, a.sample_steps, a.sample_batch)
    meta = {
        **machine(),
        "steps": a.steps,
        "reps": a.reps,
        "batch": a.batch,
        "shape": shape,
        "channels": channels,
        "sample_steps": a.sample_steps,
        "sample_batch": a.sample_batch,
        "model": "DDPM U-Net, L_simple, VP linear T=1000, Adam",
    }
    print(f"# diffusion_step on {meta['backend']} ({meta['device']}), U-Net {channels} on {shape}, batch {a.batch}")
    print(f"parameters: genjax {res['params']['genjax']:,}, plain {res['params']['plain']:,}")
    print(f"{'variant':<18}{'compile s':>11}{'examples/s':>14}{'ms/step':>10}")
    for k, v in res.items():
        if isinstance(v, dict) and "compile_s" in v:
            print(f"{k:<18}{v['compile_s']:>11.2f}{v['examples_per_s']:>14.0f}{v['ms_per_step']:>10.2f}")
    print(
        f"ratio genjax/plain (scan): {res['ratio genjax/plain (scan)']:.3f}, "
        f"(unrolled): {res['ratio genjax/plain (unrolled)']:.3f}"
    )
    print(f"sampling, batch {a.sample_batch}, {a.sample_steps} steps:")
    print(f"{'sampler':<12}{'net evals':>10}{'images/s':>12}{'compile+first s':>17}")
    for k, v in samp.items():
        print(f"{k:<12}{v['network_evals']:>10}{v['images_per_s']:>12.1f}{v['compile_and_first_s']:>17.2f}")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / f"diffusion_step-{meta['backend']}.json"
    path.write_text(json.dumps({"meta": meta, "results": res, "samplers": samp}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
