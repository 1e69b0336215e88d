"""The GPT-style transformer on the default corpus (the standard library's Python source), beside
the bigram table it starts from: validation bits per character by step, test bits per character
and perplexity, training and sampling throughput, and a sample of generated text.

    python experiments/gpt_text/main.py [--epochs 8] [--out experiments/gpt_text/results]

Writes ``report.md``, ``results.json`` and ``curves.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.gpt_text.config import get_config  # noqa: E402
from genjax import keys  # noqa: E402
from genjax.data import load_splits  # noqa: E402
from genjax.eval import heldout_metrics  # noqa: E402
from genjax.eval.plots import save  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.nn.summary import param_count  # noqa: E402
from genjax.train import fit  # noqa: E402


def throughput(fn, params, n: int, t: int) -> tuple[float, float]:
    """(tokens/s of ``fn(params, key, n)`` after compilation, compile seconds)."""
    f = jax.jit(lambda p, k: fn(p, k, n))
    t0 = time.perf_counter()
    jax.block_until_ready(f(params, jax.random.key(0)))
    c = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(f(params, jax.random.key(1)))
    return n * t / (time.perf_counter() - t0), c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", default="experiments/gpt_text/results")
    ap.add_argument("--report_only", action="store_true", help="rewrite report.md and curves.png from results.json")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.report_only:
        return report(json.loads((out / "results.json").read_text()), out, a, get_config("gpt"))
    results = {}
    for variant in ("bigram", "gpt"):
        cfg = get_config(variant)
        cfg.train.epochs = a.epochs
        splits = load_splits(cfg.data, cfg.train.batch_size)
        fam = build_family(cfg, DataInfo.of(splits))
        t = splits.shape[0]
        res = fit(cfg, fam, splits, progress=True)
        steps = len(splits.train["x"]) // cfg.train.batch_size
        m = heldout_metrics(fam, res.params, splits.test["x"], keys.key(0, "eval"), batch_size=256, num_dims=t)
        r = {
            "steps": [steps * (i + 1) for i in range(len(res.history))],
            "val_bits_per_char": [h["val_nll"] / (t * math.log(2)) for h in res.history],
            "test_bits_per_char": m["bits_per_dim"],
            "test_perplexity": 2.0 ** m["bits_per_dim"],
            "train_tokens_per_s": steps * len(res.history) * cfg.train.batch_size * t / res.train_seconds,
            "train_s": res.train_seconds,
            "compile_s": res.compile_seconds,
            "params": param_count(res.params),
            "vocab": len(splits.vocab),
            "context": t,
        }
        r["sample_tokens_per_s"], r["sample_compile_s"] = throughput(fam.sample, res.params, 64, t)
        if "uncached" in fam.samplers:
            r["uncached_sample_tokens_per_s"], _ = throughput(fam.samplers["uncached"], res.params, 64, t)
        s = np.asarray(fam.sample(res.params, keys.key(0, "figures"), 4))
        r["samples"] = [splits.decode(row) for row in s]
        results[variant] = r
        print(json.dumps({"variant": variant} | {k: v for k, v in r.items() if k not in ("samples", "steps",
              "val_bits_per_char")}), flush=True)  # fmt: skip
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    report(results, out, a, cfg)


def report(results, out: Path, a, cfg) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, r in results.items():
        ax.plot(r["steps"], r["val_bits_per_char"], marker="o", ms=3, label=name)
    ax.set(xlabel="training step", ylabel="validation bits per character", title="characters of the stdlib source")
    ax.legend()
    fig.tight_layout()
    save(fig, out / "curves.png")
    m = cfg.model.autoregressive
    lines = [
        "# A GPT on the standard library's source",
        "",
        f"Command: `python experiments/gpt_text/main.py{'' if a.epochs == 8 else f' --epochs {a.epochs}'}`. "
        f"Data: the first {cfg.data.text_chars:,} characters of the running Python's stdlib `*.py` files, "
        f"{results['gpt']['vocab']} characters; train / validation / test = the first 70% / next 10% / last 20% "
        f"as contiguous blocks; context {results['gpt']['context']}. GPT: d {m.d_model}, {m.n_layers} blocks, "
        f"{m.n_heads} heads, tied embeddings, AdamW {cfg.optim.lr} with warm-up + cosine, "
        f"batch {cfg.train.batch_size}.",
        "",
        "| model | params | test bits/char | perplexity | train tokens/s | sampling tokens/s (cached) | uncached |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        unc = f"{r['uncached_sample_tokens_per_s']:,.0f}" if "uncached_sample_tokens_per_s" in r else "-"
        lines.append(f"| {name} | {r['params']:,} | {r['test_bits_per_char']:.3f} | {r['test_perplexity']:.2f} | "
                     f"{r['train_tokens_per_s']:,.0f} | {r['sample_tokens_per_s']:,.0f} | {unc} |")  # fmt: skip
    lines += ["", "![curves](curves.png)", "", f"Samples of the GPT ({results['gpt']['context']} characters each, "
              f"temperature {m.temperature}):", "", "```"]  # fmt: skip
    lines += [x for smp in results["gpt"]["samples"] for x in (smp, "-" * 16)][:-1] + ["```", ""]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
