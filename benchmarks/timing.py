"""Timing shared by the benchmarks: compile apart from steady state, calls interleaved."""

from __future__ import annotations

import platform
import statistics
import time

import jax
import jax.numpy as jnp


def compile_and_time(variants: dict, reps: int, examples: int, steps: int) -> dict:
    """``variants``: name -> (jitted fn, args_fn giving fresh, donatable args). Each is lowered
    and compiled (timed), warmed up once, then called ``reps`` times, the variants interleaved so
    that load on the machine hits them alike. Returns name -> {compile_s, examples_per_s,
    ms_per_step} from the median call (``examples`` per call, ``steps`` per call)."""
    compiled, out = {}, {}
    for name, (fn, args_fn) in variants.items():
        t = time.perf_counter()
        compiled[name] = fn.lower(*args_fn()).compile()
        out[name] = {"compile_s": time.perf_counter() - t}
        jax.block_until_ready(compiled[name](*args_fn()))  # warm-up
    times = {name: [] for name in variants}
    for _ in range(reps):
        for name, (_, args_fn) in variants.items():
            args = args_fn()
            jax.block_until_ready(args)
            t = time.perf_counter()
            jax.block_until_ready(compiled[name](*args))
            times[name].append(time.perf_counter() - t)
    for name in variants:
        sec = statistics.median(times[name])
        out[name] |= {"examples_per_s": examples / sec, "ms_per_step": 1e3 * sec / steps}
    return out


def median_time(fn, args_fn, reps: int):
    """(median seconds per call, all times) of ``fn(*args_fn())`` after one warm-up call;
    ``args_fn()`` gives fresh (donatable) args."""
    jax.block_until_ready(fn(*args_fn()))
    times = []
    for _ in range(reps):
        args = args_fn()
        jax.block_until_ready(args)
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def dispatch(step, state0, data, reps: int) -> dict:
    """The jitted ``step(state, batch_i)`` called once per step from Python over ``data``: an
    array ``[steps, batch, ...]`` (batches ``{"x": data[i]}``) or a dict of such arrays (batches
    their i-th slices), state donated: {compile_s, examples_per_s, ms_per_step}."""
    copy = lambda t: jax.tree.map(jnp.copy, t)  # noqa: E731
    at = (lambda i: jax.tree.map(lambda a: a[i], data)) if isinstance(data, dict) else (lambda i: {"x": data[i]})
    steps, batch = jax.tree.leaves(data)[0].shape[:2]
    t = time.perf_counter()
    cstep = jax.jit(step, donate_argnums=0).lower(copy(state0), at(0)).compile()
    compile_s = time.perf_counter() - t
    def loop(state):
        for i in range(steps):
            state, _ = cstep(state, at(i))
        return state

    sec, _ = median_time(loop, lambda: (copy(state0),), reps)
    return {"compile_s": compile_s, "examples_per_s": steps * batch / sec, "ms_per_step": 1e3 * sec / steps}


def machine() -> dict:
    """What a benchmark result was measured on: backend, device kind, jax version, CPU architecture."""
    return {"backend": jax.default_backend(), "device": jax.devices()[0].device_kind, "jax": jax.__version__,
            "machine": platform.machine()}  # fmt: skip
