"""``genjax bench`` for many configs at once: each result as JSON in ``--out`` and one markdown
table of them (compile, steady state, MFU, the plain-JAX twin's ratio).

    python benchmarks/bench_all.py                       # benchmarks/config.py, every family, float32
    python benchmarks/bench_all.py --dtypes float32,bfloat16 --out benchmarks/results/gpu
    python benchmarks/bench_all.py --shipped --epochs 1  # every shipped experiment config (compile times)
    python benchmarks/bench_all.py --whole --out benchmarks/results/whole-cpu  # + genjax train's whole run

A config that fails (data it cannot load, a time limit) is recorded as such and the rest go on.
The table and ``all.json`` are rewritten after each config, so a run stopped at a time budget
keeps the rows it finished.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"cfg_{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def targets(shipped: bool) -> list[tuple[str, str]]:
    """(config path, argument) pairs: the benchmark configs, or every shipped experiment example."""
    paths = sorted(ROOT.glob("experiments/*/config.py")) if shipped else [ROOT / "benchmarks" / "config.py"]
    return [(str(p.relative_to(ROOT)), a) for p in paths for a in _module(p).EXAMPLES]


def row(r: dict) -> str:
    if "error" in r:
        return f"| `{r['spec']}` | {r.get('dtype', '')} | failed: {r['error']} | | | | | |"
    if "epoch_s" not in r:  # compile times only
        compile_s = f"{r['compile_cold_s']:.1f} / {r['compile_cached_s']:.2f}"
        return f"| `{r['spec']}` | {r['dtype']} | {r['loop']} | {compile_s} | | | | | |"
    if "inseparable" in r:  # validation fills the epoch: no training figures
        return (f"| `{r['spec']}` | {r['dtype']} | {r['loop']} | {r['compile_cold_s']:.1f} / "
                f"{r['compile_cached_s']:.2f} | | | | {100 * r['val_share']:.0f}% | not separable |")  # fmt: skip
    unit = r["unit"]
    ratio = f"{r['ratio']:.3f}{_spread(r, 'ratio_range')}" if "ratio" in r else "no twin"
    return (f"| `{r['spec']}` | {r['dtype']} | {r['loop']} | {r['compile_cold_s']:.1f} / {r['compile_cached_s']:.2f} | "
            f"{r['ms_per_step']:.2f} | {r[unit + '_per_s']:,.0f} {unit}/s | {100 * r['mfu']:.1f}% | "
            f"{100 * r['val_share']:.0f}% | {ratio} |")  # fmt: skip


def whole_row(r: dict) -> str:
    """A row of the whole-run table: ``genjax train``'s whole training against the twin's."""
    if "whole_s" not in r or "twin" not in r:
        return f"| `{r['spec']}` | failed or no twin: {r.get('error', '')} | | | | | | |"
    name = r["spec"].rsplit(":", 1)[-1]
    return (f"| `{name}` | {r['epochs']} | {r['whole_s']:.2f} | {r['twin']['whole_s']:.2f} | {r['whole_ratio']:.3f}"
            f"{_spread(r, 'whole_ratio_range')} | {r['compile_cached_s']:.2f} cached, {r['compile_cold_s']:.2f} cold | "
            f"{r['twin']['compile_s']:.2f} cached, {r['twin']['compile_cold_s']:.2f} cold | "
            f"{r['ratio']:.3f}{_spread(r, 'ratio_range')} |")  # fmt: skip


def _spread(r: dict, key: str) -> str:
    """`` (lowest-highest)`` of the rounds' ratios under ``key``, or nothing for a result without them."""
    return f" ({r[key][0]:.3f}-{r[key][1]:.3f})" if key in r else ""


WHOLE_HEADER = ("| config | epochs | genjax train, whole (s) | twin + the same validation (s) | whole-run ratio "
                "(the rounds' lowest-highest) | genjax epoch compile (s) | twin's compile (s) "
                "| step ratio (the rounds' lowest-highest) |\n"
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")  # fmt: skip
# whole runs: epochs per benchmark config (short for the conv nets and the GPT, whose epochs are long)
WHOLE_EPOCHS = {"vae_conv": 5, "glow": 5, "pixelcnn": 5, "ddpm_unet": 5, "gpt": 5}


HEADER = ("| config | dtype | loop | compile s (cold / cached) | ms per step | throughput | MFU | validation share "
          "| twin / genjax (1 = the floor; the rounds' lowest-highest) |\n"
          "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shipped", action="store_true", help="every experiments/*/config.py example instead")
    ap.add_argument("--only", default="", help="comma-separated config arguments to keep (an argument with "
                    "commas of its own, e.g. fm_vp,digits, is read whole)")  # fmt: skip
    ap.add_argument("--dtypes", default="float32")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench"))
    ap.add_argument("--table", default="", help="markdown table path (default: <out>/table.md)")
    ap.add_argument("--whole", action="store_true", help="also time genjax train's whole run (WHOLE_EPOCHS epochs, "
                    "20 where unnamed) against the twin's compile + epochs + the same validation")  # fmt: skip
    a = ap.parse_args(argv)

    from genjax.api import enable_compilation_cache
    from genjax.config import validate
    from genjax.run.bench import bench, write_json
    from genjax.run.prepare import prepare

    every = targets(a.shipped)
    try:
        keep = chosen(a.only, {arg for _, arg in every})
    except ValueError as e:  # nothing run, nothing written
        print(e, file=sys.stderr)
        return 2
    enable_compilation_cache()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path, arg in every:
        if keep and arg not in keep:
            continue
        for dtype in a.dtypes.split(","):
            spec = f"{path}:{arg}" if arg else path
            t = time.perf_counter()
            try:
                cfg = _module(ROOT / path).get_config(arg or None)
                cfg.train.dtype = dtype
                validate(cfg)
                splits, family = prepare(cfg)
                epochs = WHOLE_EPOCHS.get(arg, 20) if a.whole else a.epochs
                r = bench(cfg, splits, family, epochs=epochs, whole=a.whole, log=lambda *_: None)
                r["epochs"] = epochs
                r["spec"] = spec
                write_json(r, out)
            except Exception as e:  # noqa: BLE001 - a failed config is recorded, the rest go on
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                r = {"spec": spec, "dtype": dtype, "error": first[:160]}
                if "--debug" in sys.argv:
                    traceback.print_exc()
            print((whole_row if a.whole else row)(r), f"({time.perf_counter() - t:.0f} s)", flush=True)
            rows.append(r)
            _write(rows, out, a)  # after each config: a run stopped at a time budget keeps its rows
    print(f"wrote {_write(rows, out, a)}")
    return 0


def chosen(only: str, known: set) -> set:
    """The config arguments ``--only`` names: its comma-separated items, where consecutive items
    that together spell a known argument (``fm_vp,digits``) are read as that one, the longest
    first; an empty ``only`` names none (every config is run). Raises ValueError naming an item
    that is no known argument."""
    parts, keep, i = [p for p in only.split(",") if p], set(), 0
    while i < len(parts):
        j = next((j for j in range(len(parts), i, -1) if ",".join(parts[i:j]) in known), None)
        if j is None:
            raise ValueError(f"--only: {parts[i]!r} is no config argument here; known: {', '.join(sorted(known))}.")
        keep.add(",".join(parts[i:j]))
        i = j
    return keep


def _write(rows: list, out: Path, a) -> Path:
    """The markdown table and ``all.json`` of ``rows`` so far; returns the table's path."""
    header, fmt = (WHOLE_HEADER, whole_row) if a.whole else (HEADER, row)
    path = Path(a.table) if a.table else out / "table.md"
    path.write_text(header + "\n" + "\n".join(fmt(r) for r in rows) + "\n")
    (out / "all.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
