"""Simultaneous against alternating updates on the Dirac-GAN (``dirac.py``), with and without a
gradient penalty, run by the engine's ``train.update_order``.

    python experiments/dirac_gan/main.py [--steps 1500] [--lr 0.1] [--out experiments/dirac_gan/results]

For the minimax loss (zero-sum, Mescheder et al.'s setting: ``model.gan.objective = gan``), the
non-saturating one (``nsgan``) and the Wasserstein one (``wgan``), each of {simultaneous,
alternating} x {no penalty, R1 gamma = 1, WGAN-GP lambda = 1} runs ``--steps`` plain gradient
steps of size ``--lr`` from (theta, psi) = (1, 1).
Writes ``trajectories.png`` (the (theta, psi) paths), ``distance.png`` (||(theta, psi)|| against
steps, log scale), ``report.md`` (the final distances) and ``results.json``. Seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.dirac_gan.dirac import init_params, players, point  # noqa: E402
from genjax.config import base_config  # noqa: E402
from genjax.eval.plots import save  # noqa: E402
from genjax.train.engine import init_state, make_step  # noqa: E402
from genjax.train.optim import make_optimizer  # noqa: E402

PENALTIES = {"none": (0.0, 0.0), "R1 gamma=1": (1.0, 0.0), "WGAN-GP lambda=1": (0.0, 1.0)}
ORDERS = ("simultaneous", "alternating")
OBJECTIVES = ("gan", "nsgan", "wgan")  # minimax (zero-sum: Mescheder et al.'s), non-saturating, Wasserstein


def trajectory(objective: str, order: str, r1: float, gp: float, steps: int, lr: float, start=(1.0, 1.0)):
    """(theta, psi) after each of ``steps`` SGD steps ``[steps + 1, 2]`` (the start first)."""
    oc = base_config().optim
    oc.name, oc.lr, oc.momentum = "sgd", lr, 0.0
    txs = {n: make_optimizer(oc, steps) for n in ("disc", "gen")}
    step = make_step(players(objective, r1, gp), txs, order=order)
    state = init_state(init_params(*start), txs, jax.random.key(0))

    def body(st, _):
        st, _ = step(st, {"x": jnp.zeros((1, 1))})
        return st, jnp.stack(point(st.params))

    _, path = jax.jit(lambda s: jax.lax.scan(body, s, None, length=steps))(state)
    return np.concatenate([np.array([start]), np.asarray(path)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--out", default="experiments/dirac_gan/results")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib.pyplot as plt

    rows, paths = [], {}
    for objective in OBJECTIVES:
        for pen, (r1, gp) in PENALTIES.items():
            for order in ORDERS:
                p = trajectory(objective, order, r1, gp, a.steps, a.lr)
                paths[objective, pen, order] = p
                r = np.linalg.norm(p, axis=1)
                row = {"objective": objective, "penalty": pen, "order": order, "start": float(r[0])}
                rows.append(row | {"final": float(r[-1]), "max": float(r.max())})
    fig, axes = plt.subplots(len(OBJECTIVES), 3, figsize=(11, 3.5 * len(OBJECTIVES)), squeeze=False)
    for i, objective in enumerate(OBJECTIVES):
        for j, pen in enumerate(PENALTIES):
            ax = axes[i, j]
            for order, c in zip(ORDERS, ("tab:red", "tab:blue")):
                p = paths[objective, pen, order]
                ax.plot(p[:, 0], p[:, 1], c=c, lw=0.8, label=order)
            ax.scatter([0], [0], c="k", marker="*", zorder=3, label="equilibrium")
            ax.scatter([1], [1], c="grey", s=10, zorder=3)
            lim = 2.5
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="theta (generator)", ylabel="psi (discriminator)",
                   title=f"{objective}, {pen}", aspect="equal")  # fmt: skip
            if i == j == 0:
                ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Dirac-GAN: {a.steps} gradient steps of size {a.lr} from (1, 1)")
    fig.tight_layout()
    save(fig, out / "trajectories.png")
    fig, axes = plt.subplots(1, len(OBJECTIVES), figsize=(5 * len(OBJECTIVES), 3.6), squeeze=False)
    for ax, objective in zip(axes[0], OBJECTIVES):
        for pen, ls in zip(PENALTIES, ("-", "--", ":")):
            for order, c in zip(ORDERS, ("tab:red", "tab:blue")):
                ax.plot(np.linalg.norm(paths[objective, pen, order], axis=1), c=c, ls=ls, label=f"{order}, {pen}")
        ax.set(yscale="log", xlabel="step", ylabel="||(theta, psi)|| (distance to equilibrium)", title=objective)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    save(fig, out / "distance.png")
    lines = [
        f"# Dirac-GAN: simultaneous against alternating updates ({a.steps} steps, lr {a.lr}, start (1, 1))",
        "",
        "Command: `python experiments/dirac_gan/main.py`. Distance to the equilibrium (0, 0):",
        "",
        "| loss | penalty | order | start | final | max |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['objective']} | {r['penalty']} | {r['order']} | {r['start']:.3f} | {r['final']:.3g} "
            f"| {r['max']:.3g} |"
        )
    lines += ["", "![trajectories](trajectories.png)", "", "![distance](distance.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
