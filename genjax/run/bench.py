"""``genjax bench``: the cost of exactly the program ``genjax train`` runs for a config.

It builds the run as ``genjax train`` does (validation of the config, the data, the family, the
program with its transforms, non-finite guard, validation, mesh and dtype; the epoch jitted with
the state donated) and measures:

* compile seconds of the epoch, cold (an empty persistent cache) and from the persistent cache;
* steady state over ``epochs`` epochs: seconds per epoch, steps/s, examples (or tokens)/s,
  ms per step, and the share of an epoch spent in validation (timed alone);
* FLOPs per training step from XLA's cost analysis of the step, and the fraction of a measured
  matmul peak (MFU: flops/step x steps/s / peak, the peak of one large float32 matmul timed
  here: 2048^3 on a CPU, 8192^3 on an accelerator);
* memory: the compiled epoch's arguments, outputs and temporaries, and the device's peak where
  the backend reports one;
* the plain-JAX twin of the same math and shapes where ``benchmarks/twins.py`` has one (a
  checkout of the repository): its epochs timed alternately with genjax's (a drift of the
  machine's speed hits both), and the ratio twin epoch / genjax training part of the epoch,
  the median over those rounds (>= 1 when genjax is as fast), with the rounds' lowest and highest
  (``ratio_range``: how far one round's figure moves on this machine);
* with ``whole``: the whole ``genjax train`` (driver, init, compile, metrics, checkpoints,
  TensorBoard) for those epochs in a temporary folder, against a whole plain-JAX run of the twin
  (init, compile, the epochs) that also runs genjax's compiled validation after each of its
  epochs (the validation genjax does, run in the same round rather than added from a separate
  timing, so a drift of the machine's speed hits it too); both after one untimed run of each (so
  the persistent caches hold what a config's first run compiles and keeps, as for any later run),
  with JAX's in-memory caches cleared, as in a new process; ``whole_rounds`` rounds in the order
  genjax-twin, twin-genjax, genjax-twin, ... (a steady drift favours neither), and the ratio the
  median of the rounds' twin / genjax (``whole_ratio_range``: their lowest and highest);
  ``whole_fresh_compiles``: how many compiles in those timed rounds the persistent cache did not
  answer (0 when the caches are on and hold the run).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def persistent_cache(folder: str | None):
    """The persistent compilation cache pointed at ``folder`` (``None``: off) for the block, every
    compile stored (no minimum time); the previous setting restored after."""
    from jax._src import compilation_cache as cc

    old = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs,
           jax.config.jax_persistent_cache_min_entry_size_bytes)  # fmt: skip
    cc.reset_cache()
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    try:
        yield
    finally:
        cc.reset_cache()
        jax.config.update("jax_compilation_cache_dir", old[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", old[2])


def matmul_peak(n: int | None = None, reps: int = 5) -> float:
    """FLOP/s of one n x n float32 matmul (2 n^3 flops), the median of ``reps`` timed calls."""
    n = n or (2048 if jax.default_backend() == "cpu" else 8192)
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t)
    return 2.0 * n**3 / statistics.median(times)


def _flops(compiled) -> float:
    ca = compiled.cost_analysis()
    ca = ca[0] if isinstance(ca, list | tuple) else ca
    return float((ca or {}).get("flops", 0.0))


def _memory(compiled) -> dict:
    out = {}
    try:
        m = compiled.memory_analysis()
        for k in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "alias_size_in_bytes"):
            if hasattr(m, k):
                out[k.replace("_size_in_bytes", "_bytes")] = int(getattr(m, k))
    except Exception:  # noqa: BLE001 - not every backend reports it
        pass
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["device_peak_bytes"] = int(stats["peak_bytes_in_use"])
    return out


def _time_epochs(call, state, data, epochs: int):
    """(median seconds per epoch over ``epochs`` calls after one warm-up, final state)."""
    state, _ = call(state, data)
    jax.block_until_ready(state)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        state, m = call(state, data)
        jax.block_until_ready((state, m))
        times.append(time.perf_counter() - t)
    return statistics.median(times), state


def load_twins():
    """``benchmarks.twins`` from a checkout of the repository, or ``None``."""
    if not (ROOT / "benchmarks" / "twins.py").is_file():
        return None
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.twins")


def bench(cfg, splits, family, *, epochs: int = 3, twin: bool = True, whole: bool = False, whole_rounds: int = 4,
          log=print) -> dict:  # fmt: skip
    """Measure the program ``genjax train`` runs for ``cfg`` (module docstring); ``splits`` and
    ``family`` as ``genjax.run.prepare.prepare`` returns them. ``whole_rounds``: how many times
    the whole run and the twin's are timed, in alternating order (medians reported)."""
    from genjax.train.driver import compile_epoch
    from genjax.train.loop import build_program, fit, split_data

    prog = build_program(cfg, family, splits)
    data = prog.plan.put_data(split_data(cfg, splits, labels=family.labelled))
    fresh = lambda: prog.plan.put_state(prog.init())  # noqa: E731
    state = fresh()
    out = {
        "config": cfg.name,
        "family": family.name,
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "devices": jax.device_count(),
        "jax": jax.__version__,
        "dtype": str(cfg.train.dtype),
        "batch": int(prog.per_step),
        "steps_per_epoch": int(prog.steps),
        "unit": "tokens" if splits.kind == "tokens" else "examples",
    }
    # compile: cold (an empty persistent cache), then again from that cache
    out["loop"] = "host" if prog.host_loop else "scan"
    with tempfile.TemporaryDirectory() as tmp, persistent_cache(tmp):
        new_process()
        t = time.perf_counter()
        compiled = compile_epoch(prog.epoch, state, data, host_loop=prog.host_loop)
        out["compile_cold_s"] = time.perf_counter() - t
        new_process()
        t = time.perf_counter()
        compiled = compile_epoch(prog.epoch, state, data, host_loop=prog.host_loop)
        out["compile_cached_s"] = time.perf_counter() - t
    log(f"compiled the epoch in {out['compile_cold_s']:.1f} s cold, {out['compile_cached_s']:.2f} s from the cache")
    if epochs < 1:  # compile times only
        return out
    out["epoch_s"], state = _time_epochs(compiled, state, data, epochs)
    per_ex = splits.shape[-1] if splits.kind == "tokens" else 1
    out["val_s"], validate = 0.0, None
    if prog.val_nll is not None:
        val = jax.jit(prog.val_nll).lower(state.params, data["val"], jax.random.key(0)).compile()
        jax.block_until_ready(val(state.params, data["val"], jax.random.key(0)))
        ts = []
        for i in range(max(epochs, 3)):
            t = time.perf_counter()
            jax.block_until_ready(val(state.params, data["val"], jax.random.key(i)))
            ts.append(time.perf_counter() - t)
        out["val_s"] = statistics.median(ts)
        params = jax.tree.map(jnp.copy, state.params)  # kept: the timed epochs below donate the state
        validate = lambda i: val(params, data["val"], jax.random.key(i))  # noqa: E731
    out["val_share"] = out["val_s"] / out["epoch_s"]
    if out["epoch_s"] - out["val_s"] < 0.1 * out["epoch_s"]:  # no figure from a difference of noise
        out["inseparable"] = (f"validation timed alone ({out['val_s']:.4f} s) leaves under a tenth of the epoch "
                              f"({out['epoch_s']:.4f} s) to training, so the training part cannot be told from the "
                              "timing noise: no training rate, MFU or twin ratio (make validation cheaper, e.g. the "
                              "family's validation-estimator fields, and bench again)")  # fmt: skip
        log(out["inseparable"])
        return out
    train_s = out["epoch_s"] - out["val_s"]
    out["steps_per_s"] = prog.steps / train_s
    out[f"{out['unit']}_per_s"] = prog.steps * prog.per_step * per_ex / train_s
    out["ms_per_step"] = 1e3 * train_s / prog.steps
    batch = jax.tree.map(lambda a: jnp.asarray(a[: prog.per_step]), dict(splits.train))
    if splits.kind == "tokens":
        batch["x"] = batch["x"][..., : splits.shape[-1]]
    step_c = jax.jit(prog.step).lower(fresh(), batch).compile()
    out["flops_per_step"] = _flops(step_c)
    out["peak_flops"] = matmul_peak()
    out["mfu"] = out["flops_per_step"] * out["steps_per_s"] / out["peak_flops"]
    out["memory"] = {} if prog.host_loop else _memory(compiled)
    twins = load_twins() if twin else None
    tw = twins.twin_for(cfg, splits) if twins is not None else None
    if tw is not None:
        # the twin's compile as genjax's: cold (an empty persistent cache), then from that cache;
        # a host-loop twin compiles its step in its first epoch (counted: that epoch less a steady one)
        compiles = []
        with tempfile.TemporaryDirectory() as tmp, persistent_cache(tmp):
            for _ in range(2):
                jax.clear_caches()
                t_state = tw.init()
                t = time.perf_counter()
                tw_epoch = _twin_compiled(tw, t_state)
                c = time.perf_counter() - t
                t = time.perf_counter()
                t_state, m = tw_epoch(t_state, tw.data)
                jax.block_until_ready((t_state, m))
                compiles.append((c, time.perf_counter() - t))
        # genjax and twin epochs alternate, so a drift of the machine's speed hits both alike; the
        # ratio is the median over the rounds of twin / genjax training part (validation taken out)
        g_state = state
        g_times, t_times = [], []
        for _ in range(max(epochs, 3)):
            t = time.perf_counter()
            g_state, m = compiled(g_state, data)
            jax.block_until_ready((g_state, m))
            g_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            t_state, m = tw_epoch(t_state, tw.data)
            jax.block_until_ready((t_state, m))
            t_times.append(time.perf_counter() - t)
        tw_s = statistics.median(t_times)
        host = hasattr(tw.epoch, "lower")  # a host loop: its compile is its first epoch less a steady one
        tw_cold, tw_cached = (c + (max(first - tw_s, 0.0) if host else 0.0) for c, first in compiles)
        ratios = [b / max(a - out["val_s"], 1e-9) for a, b in zip(g_times, t_times)]
        out["twin"] = {"name": tw.name, "compile_s": tw_cached, "compile_cold_s": tw_cold, "epoch_s": tw_s,
                       "genjax_epoch_s": statistics.median(g_times), "rounds": len(ratios)}  # fmt: skip
        out["ratio"] = statistics.median(ratios)
        out["ratio_range"] = [min(ratios), max(ratios)]  # the rounds' spread: how far one figure moves here
        log(f"plain-JAX twin {tw.name}: {tw_s:.4f} s per epoch; genjax's training part "
            f"{statistics.median(g_times) - out['val_s']:.4f} s, interleaved over {len(ratios)} rounds (ratio "
            f"twin/genjax {out['ratio']:.3f}, median of the rounds; >= 1 means genjax is as fast)")  # fmt: skip
    if whole:
        c = cfg.copy_and_resolve_references()
        c.train.epochs = int(epochs)
        twin_whole = lambda: _twin_whole(twins.twin_for(cfg, splits), epochs, validate)  # noqa: E731

        def genjax_whole() -> float:
            new_process()  # as a new process: what the persistent caches do not keep is done again
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                fit(c, family, splits, Path(tmp) / "run", progress=False)
                return time.perf_counter() - t

        # one untimed round first, so each timed one starts as a later run of the config does: a
        # config's first run compiles what the persistent caches lack (and keeps its executables)
        genjax_whole()
        if tw is not None:
            twin_whole()
        g_whole, t_whole = [], []
        with fresh_compiles() as fresh:
            for r in range(whole_rounds if tw is not None else 1):
                if r % 2:  # every other round the twin goes first
                    t_whole.append(twin_whole())
                g_whole.append(genjax_whole())
                if tw is not None and not r % 2:
                    t_whole.append(twin_whole())
        out["whole_s"] = statistics.median(g_whole)
        out["whole_fresh_compiles"] = fresh["n"]
        if tw is not None:
            out["twin"]["whole_s"] = statistics.median(t_whole)
            whole_ratios = [b / a for a, b in zip(g_whole, t_whole)]
            out["whole_ratio"] = statistics.median(whole_ratios)
            out["whole_ratio_range"] = [min(whole_ratios), max(whole_ratios)]
            out["whole_rounds"] = len(g_whole)
    return out


@contextlib.contextmanager
def fresh_compiles():
    """Counts the XLA compiles in the block that the persistent cache did not answer (JAX's
    monitoring events: the compiles that asked the cache, less its hits; a program the cache
    cannot hold, e.g. one with a host callback, asks nothing and is not counted). Yields a dict
    whose ``"n"`` is set when the block ends."""
    heard, out = [], {}
    ask, hit = "/jax/compilation_cache/compile_requests_use_cache", "/jax/compilation_cache/cache_hits"
    listen = lambda event, **_: heard.append(event) if event in (ask, hit) else None  # noqa: E731
    jax.monitoring.register_event_listener(listen)
    try:
        yield out
    finally:
        jax.monitoring.unregister_event_listener(listen)
        out["n"] = heard.count(ask) - heard.count(hit)


def new_process() -> None:
    """JAX's in-memory caches and the programs this process read (``genjax.train.programs``)
    cleared, so what follows compiles as a new process would, from the persistent caches."""
    from genjax.train import programs

    jax.clear_caches()
    programs.forget()


def _twin_compiled(tw, state):
    """The twin's epoch compiled for ``state``: jitted with the state donated, or its own host loop
    (a Python loop over one jitted step, which compiles that step in its first epoch)."""
    fn = tw.epoch if hasattr(tw.epoch, "lower") else jax.jit(tw.epoch, donate_argnums=0)
    return fn.lower(state, tw.data).compile()


def _twin_whole(tw, epochs: int, validate=None) -> float:
    """Seconds of a plain-JAX script's whole training with ``tw``: its state made, its epoch
    compiled (from the persistent cache, JAX's in-memory caches cleared first) and run ``epochs``
    times, each followed by ``validate(epoch)`` where given (genjax's compiled validation: the
    same work genjax's epochs do besides training)."""
    jax.clear_caches()
    t = time.perf_counter()
    state = tw.init()
    epoch = _twin_compiled(tw, state)
    v = None
    for e in range(epochs):
        state, m = epoch(state, tw.data)
        if validate is not None:
            v = validate(e)
    jax.block_until_ready((state, m, v))
    return time.perf_counter() - t


def report(r: dict) -> str:
    """The printed table of one ``bench`` result: every figure with its unit."""
    unit = r["unit"]
    if "epoch_s" not in r:
        return (f"{r['config']} ({r['family']}): the epoch compiles in {r['compile_cold_s']:.2f} s cold, "
                f"{r['compile_cached_s']:.2f} s from the persistent cache ({r['loop']} loop)")  # fmt: skip
    lines = [
        f"{r['config']} ({r['family']}) on {r['devices']} x {r['device']} ({r['backend']}), {r['dtype']}, "
        f"batch {r['batch']}, {r['steps_per_epoch']} steps per epoch, the steps in a {r['loop']} loop",
        f"  compile: {r['compile_cold_s']:.2f} s cold, {r['compile_cached_s']:.2f} s from the persistent cache",
        f"  epoch: {r['epoch_s']:.4f} s, of which validation {r['val_s']:.4f} s ({100 * r['val_share']:.1f}%)",
    ]
    if "inseparable" in r:
        return "\n".join(lines + [f"  {r['inseparable']}"])
    lines += [
        f"  training: {r['steps_per_s']:.1f} steps/s, {r[unit + '_per_s']:,.0f} {unit}/s, {r['ms_per_step']:.3f} ms "
        "per step (higher / higher / lower is better)",
        f"  {r['flops_per_step'] / 1e6:,.1f} MFLOP per step (XLA cost analysis); MFU {100 * r['mfu']:.1f}% of a "
        f"measured {r['peak_flops'] / 1e9:,.1f} GFLOP/s float32 matmul peak",
    ]
    mem = r.get("memory") or {}
    if mem:
        parts = [f"{k.removesuffix('_bytes')} {v / 2**20:,.1f} MiB" for k, v in mem.items()]
        lines.append("  memory: " + ", ".join(parts))
    if "twin" in r:
        tw = r["twin"]
        lines.append(f"  plain-JAX twin ({tw['name']}): {tw['epoch_s']:.4f} s per epoch, compile "
                     f"{tw['compile_cold_s']:.2f} s cold, {tw['compile_s']:.2f} s from the persistent cache; "
                     f"ratio twin / genjax training {r['ratio']:.3f} (1 = the floor; higher is better; its rounds "
                     f"{r['ratio_range'][0]:.3f}-{r['ratio_range'][1]:.3f})")  # fmt: skip
    if "whole_s" in r:
        twin_s = r["twin"]["whole_s"] if "whole_ratio" in r else 0.0
        lines.append(f"  whole genjax train for these epochs (driver, init, compile, metrics, checkpoints): "
                     f"{r['whole_s']:.2f} s" + (f"; the twin's whole run + the same validation {twin_s:.2f} s, ratio "
                     f"{r['whole_ratio']:.3f} (medians of {r['whole_rounds']} alternating rounds, whose ratios span "
                     f"{r['whole_ratio_range'][0]:.3f}-{r['whole_ratio_range'][1]:.3f}; higher is better)"
                     if "whole_ratio" in r else ""))  # fmt: skip
        if "whole_fresh_compiles" in r:
            lines.append(f"    after one untimed run of each; the timed rounds compiled {r['whole_fresh_compiles']} "
                         "program(s) the persistent cache did not hold")  # fmt: skip
    return "\n".join(lines)


def write_json(r: dict, folder: str | Path) -> Path:
    """``folder/bench-<config>-<backend>[-<dtype>].json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"bench-{r['config']}-{r['backend']}" + ("" if r["dtype"] == "float32" else f"-{r['dtype']}") + ".json"
    path = folder / name
    path.write_text(json.dumps(r, indent=2, default=lambda o: float(o) if isinstance(o, np.floating) else str(o))
                    + "\n")  # fmt: skip
    return path
