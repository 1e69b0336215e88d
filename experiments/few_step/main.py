"""Sample quality against network evaluations (NFE) and wall time, for every diffusion, flow-matching
and consistency method and every sampler, on one data set; and each model's exact ODE NLL beside
the data's entropy.

    python experiments/few_step/main.py                              # 8gaussians, every method
    python experiments/few_step/main.py --data checkerboard          # another toy
    python experiments/few_step/main.py --data digits                # 8x8 digits (U-Nets): FID / KID / P / R
    python experiments/few_step/main.py --data digits --arch mlp     # the same with residual MLPs (CPU budget)
    python experiments/few_step/main.py --smoke                      # seconds, for tests

Trains (``genjax.fit``, run folders under ``<out>/runs``; ``--reuse`` samples them again) the
methods of ``config.py`` (``ddpm``, ``vpred``, ``edm``, ``fm``, ``otcfm``, ``fm_vp``, ``ct``), then
rectified flow's reflows: ``rf2`` retrains on the pairs (z, x = ODE_fm(z)) ``fm`` draws (Heun, 25
steps; ``data.name = pairs:<fm's run folder>``), ``rf3`` on ``rf2``'s, and ``distill`` is
``rf2``'s pairs learned at t = 1 only (one Euler step). Each model is
then sampled at NFE in 1, 2, 4, ..., 256 with each of its samplers (the actual NFE is recorded:
Heun's 2 N - 1 or 2 N + 1), and the draw scored by ``genjax.eval.suite.sample_metrics`` against
the test split (toys: exact W1 over 1,000 points, sliced W1, mode coverage; digits: FID / KID with
the domain classifier, precision / recall). Wall time: one compiled draw of the metric's samples.
Writes ``few_step.png`` (quality against NFE and against wall time), ``report.md`` and
``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.few_step.config import METHODS, get_config  # noqa: E402
from genjax.api import fit, load  # noqa: E402
from genjax.data import toy2d_log_prob  # noqa: E402
from genjax.eval import heldout_metrics  # noqa: E402
from genjax.eval.suite import sample_metrics  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402

ENTROPY = {"8gaussians": 2.8315, "checkerboard": math.log(32.0)}  # nats, closed form / Monte Carlo
NFES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def samplers(method: str, nfe: int) -> list[tuple[str, dict]]:
    """(sampler label, block overrides) that spend about ``nfe`` evaluations with ``method``."""
    if method in ("ddpm", "vpred"):
        out = [(s, {"sampler": s, "sample_steps": nfe}) for s in ("ancestral", "ddim", "dpmpp2m")]
        return out + ([("heun", {"sampler": "heun", "sample_steps": nfe // 2})] if nfe >= 3 else [])
    if method == "edm":
        return [("heun", {"sampler": "heun", "sample_steps": (nfe + 1) // 2, "s_churn": 0.0}),
                ("euler", {"sampler": "euler", "sample_steps": nfe, "s_churn": 0.0})]  # fmt: skip
    if method == "ct":
        return [("1-step" if nfe == 1 else "2-step", {"mid_sigmas": () if nfe == 1 else (1.0,)})] if nfe <= 2 else []
    if method == "distill":
        return [("euler", {"sampler": "euler", "sample_steps": 1})] if nfe == 1 else []
    return [("euler", {"sampler": "euler", "sample_steps": nfe})] + (
        [("heun", {"sampler": "heun", "sample_steps": nfe // 2})] if nfe >= 2 else []
    )


def _block(cfg):
    return cfg.model[cfg.model.family]


def train(method, cfg, out, reuse=None, log=print):
    """``genjax.fit`` into ``<out>/runs/<method>``, or (``reuse``: {method: seconds} of an earlier
    study) the model already trained there."""
    run_dir = out / "runs" / method
    if reuse is not None and (run_dir / "checkpoints").is_dir():
        log(f"  {method}: reused {run_dir}")
        if method not in reuse:  # no earlier results.json: the training time the run logged
            lines = (run_dir / "metrics.jsonl").read_text().splitlines()
            reuse[method] = float(json.loads(lines[-1])["time"]) if lines else float("nan")
        return load(run_dir), reuse[method]
    t0 = time.perf_counter()
    model = fit(cfg, workdir=run_dir, overwrite=True, progress=False)
    secs = time.perf_counter() - t0
    log(f"  {method}: trained in {secs:.0f} s")
    return model, secs


def nll_of(model, splits, n=2000):
    """(NLL in nats per example, bits/dim) of the real test split's first ``n`` examples (on
    dequantized digits, bits/dim bound the discrete NLL: the bin width counted)."""
    if model.family.log_prob is None:
        return None, None
    x = np.asarray(splits.test["x"])[:n]
    m = heldout_metrics(model.family, model.params, x, jax.random.key(0), batch_size=500, num_dims=splits.num_dims,
                        bin_width=splits.bin_width)  # fmt: skip
    return m["nll"], m["bits_per_dim"]


def quality(m: dict, digits: bool) -> float:
    return m["model"]["fid_digits_dequantized_classifier"] if digits else m["model"]["wasserstein_exact"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="8gaussians")
    ap.add_argument("--out", default=None)
    ap.add_argument("--epochs", type=int, default=0, help="override the configs' epochs (0: theirs)")
    ap.add_argument("--methods", default=",".join(METHODS + ("rf2", "rf3", "distill")))
    ap.add_argument("--arch", default="", help="override the network: mlp (the residual MLP, hidden 256 x 3) or unet")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="rewrite report.md and the figure from results.json")
    ap.add_argument("--reuse", action="store_true", help="sample the models an earlier run trained in <out>/runs")
    args = ap.parse_args(argv)
    out = Path(args.out or Path(__file__).parent / ("results" if not args.smoke else "results_smoke") / args.data)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        saved = json.loads((out / "results.json").read_text())
        for r in saved["nll"].values():  # results written before bits/dim were recorded: 2-D toys
            r.setdefault("bits_per_dim", None if r["nll"] is None else r["nll"] / (2 * math.log(2)))
        floor = {"wasserstein_exact": saved["floor"], "fid_digits_dequantized_classifier": saved["floor"]}
        return write(out, args, saved["records"], saved["nll"], floor, None, args.data == "digits",
                     saved.get("true_density_nll"))  # fmt: skip
    methods = args.methods.split(",")
    digits = args.data == "digits"
    suffix = ":smoke" if args.smoke else ""
    nfes = (1, 2, 4) if args.smoke else NFES
    models, records, nll = {}, [], {}

    def cfg_of(method):
        c = get_config(f"{'fm' if method in ('rf2', 'rf3', 'distill') else method},{args.data}{suffix}")
        c.name = f"few_step_{method}_{args.data}"
        if args.epochs:
            c.train.epochs = args.epochs
        if args.arch:
            _block(c).arch = args.arch
            if args.arch == "mlp" and digits:
                _block(c).hidden = (256, 256, 256)
        if method in ("rf2", "rf3", "distill"):  # the teacher's (z, ODE(z)) pairs: data.name = pairs:<run>
            c.data.name = f"pairs:{out / 'runs' / ('fm' if method == 'rf2' else 'rf2')}"
            c.data.dequantize = False  # the teacher's samples are continuous already
            c.data.toy_n = 20000 if not args.smoke else 2000  # fresh pairs: a reflow memorizes a small set
            total = get_config(f"ct,{args.data}{suffix}").model.consistency.curriculum_steps * (
                c.train.epochs / get_config(f"ct,{args.data}{suffix}").train.epochs)  # the teacher's steps
            per_epoch = int(c.data.toy_n * (1 - c.data.val_fraction)) // c.train.batch_size
            c.train.epochs = max(1, round(total / per_epoch))  # as many steps as the teacher took
            b = c.model.flow_matching
            b.coupling = "paired"
            if method == "distill":
                b.t_train, b.sampler, b.sample_steps = "one", "euler", 1
        if c.model.family == "consistency" and args.epochs:  # the curriculum spans the run
            per_epoch = c.model.consistency.curriculum_steps // get_config(f"ct,{args.data}{suffix}").train.epochs
            c.model.consistency.curriculum_steps = c.train.epochs * per_epoch
        c.eval.max_samples = 1000 if not args.smoke else 200
        return c

    print(f"training on {args.data} ...")
    reuse = None
    if args.reuse:
        saved = out / "results.json"
        reuse = {m: r["train_s"] for m, r in json.loads(saved.read_text())["nll"].items()} if saved.is_file() else {}
    for method in methods:
        models[method] = train(method, cfg_of(method), out, reuse)
    splits = models[methods[0]][0].data  # the real data's splits (every model of the first kind trained on them)
    for method in ("fm", "ddpm", "edm"):
        if method in models:
            splits = models[method][0].data
            break
    print("sampling ...")
    for method, (model, secs) in models.items():
        ode_steps = _block(model.cfg).get("ode_steps")
        value, bpd = nll_of(model, splits)
        nll[method] = {"nll": value, "bits_per_dim": bpd, "train_s": secs, "ode_steps": ode_steps}
        info, seen = DataInfo.of(model.data), set()  # a reflow's data: the pairs (y = the noise)
        for nfe in nfes:
            for label, over in samplers(method, nfe):
                cfg = copy.deepcopy(model.cfg)
                for k, v in over.items():
                    _block(cfg)[k] = v
                fam = build_family(cfg, info)
                if (label, fam.info.get("nfe", nfe)) in seen:
                    continue
                seen.add((label, fam.info.get("nfe", nfe)))
                draw = jax.jit(fam.sample, static_argnums=2)
                n = min(len(splits.test["x"]), int(cfg.eval.max_samples))
                jax.block_until_ready(draw(model.params, jax.random.key(1), n))  # compile
                t0 = time.perf_counter()
                jax.block_until_ready(draw(model.params, jax.random.key(2), n))
                wall = time.perf_counter() - t0
                m = sample_metrics(cfg, splits, fam, model.params, jax.random.key(3), log=lambda *a: None)
                actual = int(fam.info.get("nfe", nfe))
                rec = {"method": method, "sampler": label, "nfe": actual, "wall_s": wall, "quality": quality(m, digits)}
                if not digits:
                    modes = m["model"].get("modes", {})
                    rec |= {"sliced_w1": m["model"]["sliced_wasserstein"], "modes": modes.get("modes"),
                            "high_quality": modes.get("high_quality"), "precision": m["model"]["precision"],
                            "recall": m["model"]["recall"]}  # fmt: skip
                else:
                    rec |= {"kid": m["model"]["kid_digits_dequantized_classifier"],
                            "precision": m["model"]["precision"], "recall": m["model"]["recall"]}  # fmt: skip
                records.append(rec)
                print(f"  {method:8s} {label:9s} NFE {actual:4d}: {rec['quality']:.4f} ({wall * 1e3:.0f} ms)")
    floor = m["real_vs_real"]
    write(out, args, records, nll, floor, splits, digits)


def write(out, args, records, nll, floor, splits, digits, true_nll=None):
    name = "FID (domain classifier)" if digits else "exact W1 (1,000 points)"
    floor_q = floor["fid_digits_dequantized_classifier"] if digits else floor["wasserstein_exact"]
    entropy = ENTROPY.get(args.data)
    if not digits and splits is not None:
        try:
            true_nll = float(-np.mean(np.asarray(toy2d_log_prob(args.data, np.asarray(splits.test["x"])[:2000]))))
        except ValueError:
            pass
    (out / "results.json").write_text(json.dumps({"data": args.data, "quality": name, "floor": floor_q,
                                                  "records": records, "nll": nll, "entropy": entropy,
                                                  "true_density_nll": true_nll}, indent=1))  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    groups = {}
    for r in records:
        groups.setdefault((r["method"], r["sampler"]), []).append(r)
    methods = list(dict.fromkeys(r["method"] for r in records))
    styles = ["-", "--", ":", "-."]
    samplers_of = {m: sorted({s for (mm, s) in groups if mm == m}) for m in methods}
    qs = [r["quality"] for r in records]
    top = min(max(qs), 12 * float(np.median(qs)))  # a diverging sampler (EDM Heun at 3 NFE) stays off the chart
    off = [f"{r['method']} {r['sampler']} at {r['nfe']}: {r['quality']:.3g}" for r in records if r["quality"] > top]
    for (method, sampler), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["nfe"])
        color = plt.get_cmap("tab10")(methods.index(method) % 10)
        ls = styles[samplers_of[method].index(sampler) % len(styles)]
        for ax, key in zip(axes, ("nfe", "wall_s")):
            ax.plot([r[key] for r in rs], [r["quality"] for r in rs], ls, marker="o", color=color, ms=3,
                    label=f"{method} {sampler}")  # fmt: skip
    for ax, xl in zip(axes, ("network evaluations (NFE)", "wall time of one draw (s)")):
        ax.axhline(floor_q, color="k", ls=":", lw=1, label="real training data vs test (not a floor: see report)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(top=top * 1.1)
        ax.set_xlabel(xl)
        ax.set_ylabel(f"{name}, lower is better")
    if off:  # listed in report.md; here how many and the worst
        worst = max(records, key=lambda r: r["quality"])
        axes[0].set_title(f"{len(off)} draws off the chart, up to {worst['quality']:.3g} ({worst['method']} "
                          f"{worst['sampler']} at NFE {worst['nfe']})", fontsize=8)  # fmt: skip
    axes[1].legend(fontsize=6, ncol=2)
    fig.suptitle(f"few-step generation on {args.data}: sample quality against cost")
    fig.tight_layout()
    fig.savefig(out / "few_step.png", dpi=110)
    plt.close(fig)

    cols = sorted({r["nfe"] for r in records})
    lines = [f"# Few-step generation on {args.data}", "",
             f"{name} of each draw against the test split (lower is better). Real training data against the same "
             f"test split score {floor_q:.4f}: the distance between two finite samples of the data, not a floor; an "
             "under-dispersed sampler (its draws bunched at the modes) can score below it, so read it beside the "
             "sliced W1 and mode coverage in results.json. Columns: network evaluations (NFE); '-' where the "
             "sampler cannot spend that many.", "",
             "| model | sampler | " + " | ".join(str(c) for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]  # fmt: skip
    for (method, sampler), rs in sorted(groups.items()):
        by = {r["nfe"]: r["quality"] for r in rs}
        lines.append(f"| {method} | {sampler} | " + " | ".join(f"{by[c]:.3f}" if c in by else "-" for c in cols) + " |")
    steps = sorted({r["ode_steps"] for r in nll.values() if r["ode_steps"]})
    lines += ["", f"NLL of each model's probability-flow ODE on 2,000 test points (RK4, {'/'.join(map(str, steps))} "
              "steps; the divergence exact in 2-D, Hutchinson's on images; nats per example, lower is better)"
              + (f"; the data's entropy is {entropy:.4f} nats" if entropy else "")
              + (f", the true density's NLL of the same test points {true_nll:.4f}" if true_nll else "") + ".", "",
              "| model | NLL (nats) | bits/dim | gap to the true density | training (s) |",
              "|---|---|---|---|---|"]  # fmt: skip
    for method, r in nll.items():
        gap = f"{r['nll'] - true_nll:+.4f}" if r["nll"] is not None and true_nll is not None else "-"
        val = f"{r['nll']:.4f}" if r["nll"] is not None else "none (no density)"
        bpd = f"{r['bits_per_dim']:.4f}" if r["bits_per_dim"] is not None else "-"
        lines.append(f"| {method} | {val} | {bpd} | {gap} | {r['train_s']:.0f} |")
    lines += ["", f"Command: `python experiments/few_step/main.py --data {args.data}"
              + (f" --epochs {args.epochs}" if args.epochs else "") + (f" --arch {args.arch}" if args.arch else "")
              + (" --smoke" if args.smoke else "") + "`"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print((out / "report.md").read_text())


if __name__ == "__main__":
    main()
