"""Benchmark: one jitted predictor step p(y | x), genjax versus plain JAX.

An MLP 784-512-512-20 with a heteroscedastic Gaussian head (10 target dimensions: mean and
log-variance each; variance floor 1e-4), Adam 1e-3, batch 128, random inputs and targets.
Measured, for the same shapes:

* ``genjax scan``: genjax's ``make_step`` on the predictor family, ``steps`` steps in one
  ``lax.scan``, state donated;
* ``plain scan``: the same network and loss in jnp + optax (below), same ``lax.scan``;
* ``genjax dispatch``: the jitted genjax step called once per step from Python.

Compile time apart from steady-state throughput (median of ``--reps`` timed calls after one
warm-up). Prints a table and writes JSON to benchmarks/results/.

    python benchmarks/predictor_step.py [--steps 50] [--reps 5] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.timing import compile_and_time, dispatch, machine  # noqa: E402
from genjax.config import base_config  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.train import init_state, make_step  # noqa: E402

IN, HIDDEN, OUT, MIN_VAR = 784, (512, 512), 10, 1e-4


def plain_init(key):
    sizes = [IN, *HIDDEN, 2 * OUT]
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (a, b)) / math.sqrt(a), "b": jnp.zeros(b)}
        for k, a, b in zip(keys, sizes[:-1], sizes[1:])
    ]


def plain_loss(params, x, y):
    h = x
    for i, layer in enumerate(params):
        h = h @ layer["w"] + layer["b"]
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    mean, log_var = jnp.split(h, 2, -1)
    var = jnp.exp(log_var) + MIN_VAR
    return jnp.mean(jnp.sum(0.5 * (math.log(2 * math.pi) + jnp.log(var) + (y - mean) ** 2 / var), -1))


def plain_train(tx):
    def step(carry, batch):
        p, o = carry
        loss, g = jax.value_and_grad(plain_loss)(p, batch["x"], batch["y"])
        u, o = tx.update(g, o, p)
        return (optax.apply_updates(p, u), o), loss

    def train(p, o, batches):
        (p, o), losses = jax.lax.scan(step, (p, o), batches)
        return (p, o), losses

    return train


def bench(steps: int, reps: int, batch: int) -> dict:
    kx, ky = jax.random.split(jax.random.key(0))
    data = {"x": jax.random.normal(kx, (steps, batch, IN)), "y": jax.random.normal(ky, (steps, batch, OUT))}
    tx = optax.adam(1e-3)
    cfg = base_config()
    cfg.model.family = "predictor"
    cfg.model.predictor.hidden, cfg.model.predictor.min_var = HIDDEN, MIN_VAR
    fam = build_family(cfg, DataInfo((IN,), target_shape=(OUT,)))
    state0 = init_state(fam.init(jax.random.key(1)), {"model": tx}, jax.random.key(2), fam.hparams)
    step = make_step(fam.players, {"model": tx})

    def g_train(state, batches):
        state, m = jax.lax.scan(step, state, batches)
        return state, m["loss"]

    p0 = plain_init(jax.random.key(1))
    o0 = tx.init(p0)
    copy = lambda t: jax.tree.map(jnp.copy, t)  # noqa: E731
    variants = {
        "genjax scan": (jax.jit(g_train, donate_argnums=0), lambda: (copy(state0), data)),
        "plain scan": (jax.jit(plain_train(tx), donate_argnums=(0, 1)), lambda: (copy(p0), copy(o0), data)),
    }
    out = compile_and_time(variants, reps, steps * batch, steps)
    out["genjax dispatch"] = dispatch(step, state0, data, reps)
    out["ratio genjax/plain (scan)"] = out["genjax scan"]["examples_per_s"] / out["plain scan"]["examples_per_s"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    res = bench(a.steps, a.reps, a.batch)
    meta = {**machine(), "steps": a.steps, "reps": a.reps, "batch": a.batch,
            "model": "MLP 784-512-512-20, heteroscedastic Gaussian head (10 targets), Adam"}  # fmt: skip
    print(f"# predictor_step on {meta['backend']} ({meta['device']}), batch {a.batch}, {a.steps} steps per call")
    print(f"{'variant':<18}{'compile s':>11}{'examples/s':>14}{'ms/step':>10}")
    for k, v in res.items():
        if isinstance(v, dict):
            print(f"{k:<18}{v['compile_s']:>11.2f}{v['examples_per_s']:>14.0f}{v['ms_per_step']:>10.3f}")
    print(f"ratio genjax/plain (scan): {res['ratio genjax/plain (scan)']:.3f}")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / f"predictor_step-{meta['backend']}.json"
    path.write_text(json.dumps({"meta": meta, "results": res}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
