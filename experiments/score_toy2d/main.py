"""DDPM, NCSN (DSM on a ladder) and sliced score matching on 8gaussians, checkerboard and moons:
the learned score against the analytic score of the perturbed data, every sampler's samples
against the data, and the probability-flow ODE NLL against the true entropy.

    python experiments/score_toy2d/main.py [--out experiments/score_toy2d/results] [--epochs N]
                                           [--methods ddpm,dsm,ssm] [--data 8gaussians,checkerboard,moons]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jax.scipy.special import ndtr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.score_toy2d.config import get_config  # noqa: E402
from genjax.data import load_splits, toy2d_log_prob  # noqa: E402
from genjax.data.toy2d import mixture_modes  # noqa: E402
from genjax.eval import heldout_metrics  # noqa: E402
from genjax.eval.suite import points_metrics  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.models.diffusion import SAMPLERS, noise_predictor, process_of  # noqa: E402
from genjax.objectives import samplers as smp  # noqa: E402
from genjax.train import fit  # noqa: E402

ENTROPY = {"8gaussians": 2.8315, "checkerboard": math.log(32.0), "moons": None}
NOISE = (0.05, 0.1, 0.3, 1.0)  # noise std s(t) at which the score error is measured


def true_log_density(name: str, process):
    """log p_t(x) of the perturbed toy, (x [2], t) -> scalar, where a closed form exists."""
    if name == "8gaussians":
        means, std = (jnp.asarray(v, jnp.float32) for v in mixture_modes(name))

        def logp(x, t):
            a, s = process.coeffs(t)
            v = a**2 * std**2 + s**2
            return jax.nn.logsumexp(-0.5 * jnp.sum((x - a * means) ** 2, -1) / v) - jnp.log(2 * jnp.pi * v)

        return logp
    if name == "checkerboard":  # uniform on 8 squares [2i, 2i + 2] x [2j, 2j + 2] (x2), density 1/32
        lows = np.array([(i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0], np.float32) * 2

        def logp(x, t):
            a, s = process.coeffs(t)
            lo, hi = a * jnp.asarray(lows), a * (jnp.asarray(lows) + 2.0)
            mass = jnp.prod(ndtr((x - lo) / s) - ndtr((x - hi) / s), -1) / (32.0 * a**2)
            return jnp.log(jnp.sum(mass) + 1e-30)

        return logp
    return None


def time_of_noise(process, s_target: float) -> float:
    ts = np.linspace(1e-4, 1, 20001)
    s = np.asarray(process.coeffs(jnp.asarray(ts))[1])
    return float(ts[np.argmin(np.abs(s - s_target))])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="experiments/score_toy2d/results")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--methods", default="ddpm,dsm,ssm")
    ap.add_argument("--data", default="8gaussians,checkerboard,moons")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    methods, datas = a.methods.split(","), a.data.split(",")
    rows = []
    fig_s, ax_s = plt.subplots(
        len(datas) * len(methods),
        len(SAMPLERS) + 1,
        figsize=(2.4 * (len(SAMPLERS) + 1), 2.4 * len(datas) * len(methods)),
        squeeze=False,
    )
    fig_f, ax_f = plt.subplots(
        len(datas), len(methods) + 1, figsize=(3.2 * (len(methods) + 1), 3.2 * len(datas)), squeeze=False
    )
    fig_t, ax_t = plt.subplots(len(datas), len(methods), figsize=(3.2 * len(methods), 3.2 * len(datas)), squeeze=False)
    lim = 4.5
    for i, data in enumerate(datas):
        for j, method in enumerate(methods):
            cfg = get_config(f"{method},{data}")
            if a.epochs:
                cfg.train.epochs = a.epochs
            splits = load_splits(cfg.data, cfg.train.batch_size)
            fam = build_family(cfg, DataInfo.of(splits))
            process = process_of(cfg.model.diffusion)
            res = fit(cfg, fam, splits, progress=False)
            params, test = res.params, np.asarray(splits.test["x"])[:2000]
            key = jax.random.key(0)
            m = heldout_metrics(fam, params, test, key, batch_size=1000, num_dims=2)
            true_lp = toy2d_log_prob(data, test)
            row = {
                "data": data,
                "method": method,
                "ode_nll": m["nll"],
                "ddpm_bound_nll": -m["ddpm_bound"],
                "entropy": ENTROPY[data],
                "true_density_nll": None if true_lp is None else float(-np.mean(true_lp)),
                "epochs": len(res.history),
                "train_s": res.train_seconds,
            }
            # the learned score against the analytic one, per noise level: mean ||s_theta - s||^2 / mean ||s||^2
            logp = true_log_density(data, process)
            eps_fn = noise_predictor(cfg.model.diffusion, DataInfo.of(splits), params)
            if logp is not None:
                row["score_rel_mse"] = {}
                for s_target in NOISE:
                    t = time_of_noise(process, s_target)
                    ac, sc_ = process.coeffs(t)
                    xt = ac * test + sc_ * np.asarray(jax.random.normal(jax.random.key(1), test.shape))
                    xt = jnp.asarray(xt, jnp.float32)
                    true_s = jax.vmap(jax.grad(logp), (0, None))(xt, t)
                    model_s = -eps_fn(xt, jnp.full(len(xt), t)) / sc_
                    err = float(jnp.mean(jnp.sum((model_s - true_s) ** 2, -1)) / jnp.mean(jnp.sum(true_s**2, -1)))
                    row["score_rel_mse"][f"{s_target:g}"] = err
            # every sampler, scored with the 2-D metrics (data-versus-data beside them)
            row["samplers"] = {}
            r = i * len(methods) + j
            ax_s[r, 0].scatter(test[:2000, 0], test[:2000, 1], s=1, alpha=0.4)
            ax_s[r, 0].set_title(f"{data} / {method}: data", fontsize=8)
            for k, name in enumerate(SAMPLERS):
                draw = fam.sample if name == cfg.model.diffusion.sampler else fam.samplers[name]
                fn = jax.jit(draw, static_argnums=2).lower(params, jax.random.key(3), 2000).compile()
                t0 = time.perf_counter()
                x = np.asarray(fn(params, jax.random.key(3)))
                dt = time.perf_counter() - t0
                ok = bool(np.all(np.isfinite(x)))
                pm = points_metrics(np.asarray(splits.train["x"]), test[:2000], np.nan_to_num(x), data) if ok else {}
                row["samplers"][name] = {"seconds_2000": dt, "finite": ok} | (
                    {"model": pm["model"], "real_vs_real": pm["real_vs_real"]} if ok else {}
                )
                ax = ax_s[r, k + 1]
                ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4, c="C1")
                sw = pm["model"]["sliced_wasserstein"] if ok else float("nan")
                ax.set_title(f"{name}: SW {sw:.3f}", fontsize=8)
            # score field at s = 0.3 (learned arrows against the analytic ones) and the reverse-time path
            g = np.linspace(-lim, lim, 17)
            xy = jnp.asarray(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2), jnp.float32)
            t = time_of_noise(process, 0.3)
            learned = np.asarray(-eps_fn(xy, jnp.full(len(xy), t)) / process.coeffs(t)[1])
            if j == 0 and logp is not None:
                true_f = np.asarray(jax.vmap(jax.grad(logp), (0, None))(xy, t))
                ax_f[i, 0].quiver(xy[:, 0], xy[:, 1], true_f[:, 0], true_f[:, 1], color="k")
                ax_f[i, 0].set_title(f"{data}: analytic score, s = 0.3", fontsize=8)
            ax_f[i, j + 1].quiver(xy[:, 0], xy[:, 1], learned[:, 0], learned[:, 1], color="C0")
            ax_f[i, j + 1].set_title(f"{method}: learned score, s = 0.3", fontsize=8)
            times = smp.grid(100, 1e-3)
            x_init = process.prior_std * jax.random.normal(jax.random.key(4), (300, 2))
            path = [np.asarray(x_init)]
            for n in (10, 30, 50, 70, 90, 100):
                path.append(
                    np.asarray(
                        smp.ddim(eps_fn, process, jax.random.key(0), x_init.shape, times[: n + 1], x_init=x_init)
                    )
                )
            path = np.stack(path)
            ax = ax_t[i, j]
            for p in range(0, 300, 10):
                ax.plot(path[:, p, 0], path[:, p, 1], lw=0.5, c="grey", alpha=0.6)
            ax.scatter(path[-1, :, 0], path[-1, :, 1], s=2, c="C3")
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_title(f"{data} / {method}: DDIM paths t = 1 -> 0", fontsize=8)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "samplers"}), flush=True)
    for axs in (ax_s, ax_f):
        for ax in axs.ravel():
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
    for f, name in ((fig_s, "samples.png"), (fig_f, "score_fields.png"), (fig_t, "trajectories.png")):
        for ax in f.axes:
            ax.set_xticks([])
            ax.set_yticks([])
        f.tight_layout()
        f.savefig(out / name, dpi=100)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "report.md").write_text(report(rows))
    print(report(rows))


def report(rows) -> str:
    f = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [
        "# Score-based models on 2-D toys",
        "",
        "NLL in nats per point on 2,000 test points: the probability-flow ODE (exact trace, RK4, 100 steps) and "
        "the DDPM bound; H = the true entropy; 'true density' = -mean log p of the same test points.",
        "",
        "| data | method | ODE NLL | bound NLL | H | true density | score rel. MSE at s = "
        + " / ".join(map(str, NOISE))
        + " | epochs | train s |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        mse = " / ".join(f"{v:.3f}" for v in r.get("score_rel_mse", {}).values()) or "n/a"
        lines.append(
            f"| {r['data']} | {r['method']} | {r['ode_nll']:.4f} | {r['ddpm_bound_nll']:.4f} | "
            f"{f(r['entropy'])} | {f(r['true_density_nll'])} | {mse} | {r['epochs']} | {r['train_s']:.0f} |"
        )
    lines += [
        "",
        "Samplers (2,000 samples; data versus data in brackets): sliced / exact Wasserstein, "
        "modes covered (8gaussians), seconds per 2,000 samples after compilation.",
        "",
        "| data | method | sampler | sliced W | exact W | modes | seconds |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        for name, s in r["samplers"].items():
            if not s["finite"]:
                lines.append(f"| {r['data']} | {r['method']} | {name} | non-finite | | | {s['seconds_2000']:.2f} |")
                continue
            mo, rr = s["model"], s["real_vs_real"]
            modes = f"{mo['modes']['modes']} ({rr['modes']['modes']})" if "modes" in mo else ""
            lines.append(
                f"| {r['data']} | {r['method']} | {name} | {mo['sliced_wasserstein']:.3f} "
                f"({rr['sliced_wasserstein']:.3f}) | {mo['wasserstein_exact']:.3f} ({rr['wasserstein_exact']:.3f}) "
                f"| {modes} | {s['seconds_2000']:.2f} |"
            )
    lines += [
        "",
        "![samples](samples.png)",
        "",
        "![score fields](score_fields.png)",
        "",
        "![trajectories](trajectories.png)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
