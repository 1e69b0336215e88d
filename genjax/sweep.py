"""Cross-validation with sweeps, composed from data, models, train and eval (like the CLI).

``config.cv.sweep`` maps config fields to lists of values, e.g.
``{"optim": {"lr": [1e-3, 3e-3]}, "model": {"vae": {"hidden": [(64,), (256,)]}}}`` (on the
command line: ``genjax cv CONFIG --sweep='{"optim": {"lr": [1e-3, 3e-3]}}'``). Continuous fields
(``genjax.train.cv.sweepable``: the optimizer's and the family's declared hyperparameters)
become one vmapped axis with the folds; shape-changing fields are looped, one compiled run per
combination.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import jax
import numpy as np

from genjax.data import load_splits
from genjax.eval import plots
from genjax.models import DataInfo, build_family, family_config
from genjax.nn.summary import param_table
from genjax.train.cv import CVResult, cross_validate, sweepable


def _flatten(d, prefix="") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if hasattr(v, "items"):
            out |= _flatten(v, key + ".")
        else:
            out[key] = list(v) if isinstance(v, (list, tuple)) else [v]
    return out


def _parent(cfg, field: str):
    """(the config node holding ``field``, its last name); node ``None`` where the path is not
    a chain of existing sections."""
    *path, name = field.split(".")
    node = cfg
    for part in path:
        if not hasattr(node, "keys") or part not in node:
            return None, name
        node = node[part]
    return (node, name) if hasattr(node, "keys") else (None, name)


def sweep_grid(cfg, data: DataInfo) -> tuple[list[dict], list[dict]]:
    """(looped settings, vmapped settings): the cartesian products of ``cv.sweep``'s values.
    ``data``: what the family is built for (its declared hyperparameters decide what vmaps)."""
    fields = _flatten(cfg.cv.sweep)
    for f, vals in fields.items():
        node, name = _parent(cfg, f)
        is_leaf = node is not None and name in node and not hasattr(node[name], "keys")
        if f.partition(".")[0] not in ("model", "objective", "optim", "train") or not is_leaf:
            raise ValueError(f"cv.sweep field {f!r} is not a model/objective/optim/train field of the config.")
        if not vals:
            raise ValueError(f"cv.sweep field {f!r} has no values.")
    cont_fields = sweepable(cfg, build_family(cfg, data))
    cont = {f: v for f, v in fields.items() if f in cont_fields}
    shape = {f: v for f, v in fields.items() if f not in cont_fields}

    def product(d):
        return [dict(zip(d, combo)) for combo in itertools.product(*d.values())] or [{}]

    return product(shape), product(cont)


def _with(cfg, setting: dict):
    c = copy.deepcopy(cfg)
    for f, v in setting.items():
        node, name = _parent(c, f)
        node[name] = tuple(v) if isinstance(v, list) else v
    return c


def param_count(family, key=None) -> int | None:
    """Trainable parameters of a fresh model (``None`` where the family exposes no modules), from
    the shapes of its initial parameters (``jax.eval_shape``: nothing is initialized)."""
    if family.modules is None:
        return None
    shapes = jax.eval_shape(family.init, key if key is not None else jax.random.key(0))
    return sum(r["params"] for r in param_table(family.modules(shapes)))


def _label(setting: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items())


def run_cv(
    cfg, run_dir: Path | None = None, *, splits=None, strategy: str | None = None, progress: bool = True
) -> dict:
    """Cross-validate every setting of ``cv.sweep``; write ``cv.json``, ``cv_curves*.png`` and,
    with a sweep, ``sweep.md`` and ``sweep.png`` into ``run_dir``. Returns the report dict."""
    splits = splits if splits is not None else load_splits(cfg.data, cfg.train.batch_size)
    data = DataInfo.of(splits)
    looped, vmapped = sweep_grid(cfg, data)
    drop_field = f"model.{cfg.model.family}.dropout"
    rows, runs = [], []
    for i, outer in enumerate(looped):
        c = _with(cfg, outer)
        drop = [s[drop_field] for s in vmapped if drop_field in s]
        if drop and max(drop) > 0:
            family_config(c).dropout = max(drop)  # build dropout layers; each member sets its own rate
        family = build_family(c, data)
        n_params = param_count(family)
        res: CVResult = cross_validate(c, family, splits, vmapped, strategy=strategy, progress=progress)
        for r in res.summary():
            rows.append({**outer, **r, "params": n_params})
        runs.append(
            {
                "setting": outer,
                "compile_seconds": res.compile_seconds,
                "train_seconds": res.train_seconds,
                "examples_per_second": res.examples_per_second,
                "strategy": res.strategy,
                "members": [
                    {
                        "fold": int(f),
                        "setting": {**outer, **vmapped[int(g)]},
                        "heldout_nll": float(h),
                        "test_nll": float(t),
                        "best_epoch": int(b),
                        "epochs_run": int(e),
                    }
                    for f, g, h, t, b, e in zip(
                        res.fold, res.setting, res.heldout_nll, res.test_nll, res.best_epoch, res.epochs_run
                    )
                ],
            }
        )
        if run_dir is not None:
            name = "cv_curves.png" if len(looped) == 1 else f"cv_curves_{i}.png"
            plots.cv_curves(
                res.history,
                res.fold,
                res.setting,
                [_label(s) for s in vmapped],
                run_dir / name,
                f"{cfg.name}: {_label(outer) or 'validation curves'} ({res.folds} folds)",
            )
    best = min(rows, key=lambda r: r["heldout_nll_mean"])
    swept = [f for f in {**looped[0], **vmapped[0]}]
    report = {
        "name": cfg.name,
        "data": splits.name,
        "folds": int(cfg.cv.folds),
        "metric": "heldout_nll",
        "metric_kind": f"NLL on the held-out fold, nats per {splits.example} (lower is better; "
        f"{family.estimator or family.log_prob_kind})",
        "swept": swept,
        "rows": rows,
        "best": {f: best[f] for f in swept}
        | {"heldout_nll_mean": best["heldout_nll_mean"], "heldout_nll_std": best["heldout_nll_std"]}
        | ({"lead": best_lead(rows)} if len(rows) > 1 else {}),
        "runs": runs,
    }
    if run_dir is not None:
        (run_dir / "cv.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        if swept:
            (run_dir / "sweep.md").write_text(sweep_table(report) + "\n")
            plots.sweep_plot(rows, swept, run_dir / "sweep.png")
    return report


def best_lead(rows: list[dict]) -> dict:
    """How far the best setting (lowest mean held-out NLL) leads the runner-up, paired over the
    folds (every setting is trained on the same folds): the per-fold differences
    d_f = NLL_runner-up,f - NLL_best,f, their mean, standard error sd(d) / sqrt(k) and the ratio.
    ``clear``: the lead exceeds twice its standard error (beyond the folds' spread)."""
    order = sorted(range(len(rows)), key=lambda i: rows[i]["heldout_nll_mean"])
    b, r = rows[order[0]], rows[order[1]]
    d = np.asarray(r["per_fold"], np.float64) - np.asarray(b["per_fold"], np.float64)
    k = len(d)
    se = float(d.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan")
    mean = float(d.mean())
    ratio = mean / se if se > 0 else float("inf")
    return {"runner_up": order[1], "lead": mean, "lead_se": se, "lead_over_se": ratio, "clear": bool(ratio > 2.0)}


def sweep_table(report: dict) -> str:
    """Markdown: one row per setting, mean +- std over folds, the best setting named."""
    fields = report["swept"]
    lines = [
        "| " + " | ".join(fields + ["params", "held-out NLL (mean +- std)", "test NLL (mean)"]) + " |",
        "|" + " --- |" * len(fields) + " ---: | ---: | ---: |",
    ]
    for r in report["rows"]:
        cells = [str(r[f]) for f in fields] + [
            f"{r['params']:,}" if r.get("params") else "",
            f"{r['heldout_nll_mean']:.3f} +- {r['heldout_nll_std']:.3f}",
            f"{r['test_nll_mean']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    b = report["best"]
    lines.append("")
    lines.append(
        f"Best: {_label({f: b[f] for f in fields}) or 'the only setting'} with held-out NLL "
        f"{b['heldout_nll_mean']:.3f} +- {b['heldout_nll_std']:.3f} over {report['folds']} folds "
        f"({report.get('metric_kind', 'nats per example')})."
    )
    if "lead" in b:
        ld = b["lead"]
        other = _label({f: report["rows"][ld["runner_up"]][f] for f in fields})
        verdict = ("beyond the folds' spread" if ld["clear"] else
                   "within the folds' spread: no clear winner over the runner-up")  # fmt: skip
        lines.append(f"Its lead over the runner-up ({other}): {ld['lead']:.3f} nats, paired over the folds, "
                     f"standard error {ld['lead_se']:.3f} ({ld['lead_over_se']:.1f} standard errors): "
                     f"{verdict}.")  # fmt: skip
    return "\n".join(lines)


__all__ = ["param_count", "run_cv", "sweep_grid", "sweep_table"]
