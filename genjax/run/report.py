"""The evaluation report a run folder gets, for the CLI and the API alike: the metrics of
``genjax eval`` (``evaluate``, written to ``eval.json``), the figures a family can draw
(``figures``) and the printed summary (``genjax.eval.report.summary``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def changes_record(changes: dict) -> dict:
    """``{path: (the run's value, this command's)}`` as eval.json / samples-seedS.json record it."""
    return {k: {"run": old, "now": new} for k, (old, new) in changes.items()}


def evaluate(cfg, splits, family, params, run_dir: Path | None = None, seed: int = 0, main: bool = True,
             log=print, changes: dict | None = None) -> dict:
    """What ``genjax eval`` computes: held-out likelihood metrics where the family has a
    likelihood, its latent diagnostics, predictive metrics for a model of y given x, and (with
    ``eval.sample_metrics``) every sample-based metric that fits the data. With ``run_dir`` the
    figures and ``eval.json`` are written there (``main``: this is process 0, the one that writes).
    ``changes``: config fields set for this evaluation only (``genjax eval RUN --config...``),
    ``{path: (the run's value, this one)}``, recorded in ``eval.json``."""
    from genjax import keys
    from genjax.eval import heldout_metrics
    from genjax.eval.suite import sample_metrics

    m = {"split": "test", "data": splits.name, "family": family.name}
    if changes:
        m["config_changes"] = changes_record(changes)
    out = run_dir if main else None  # figures: process 0 alone writes
    if family.log_prob is not None:
        t0 = time.perf_counter()
        log(f"scoring the {len(splits.test['x'])} test examples ({family.estimator or family.log_prob_kind}) ...")
        m |= heldout_metrics(
            family,
            params,
            splits.test["x"],
            keys.key(seed, "eval"),
            batch_size=cfg.eval.batch_size,
            num_dims=family.event_dims or splits.num_dims,
            bin_width=splits.bin_width,
            y=splits.test.get("y") if family.labelled else None,
            example="target y given its x" if family.predictor is not None else splits.example,
        )
        log(f"  scored in {time.perf_counter() - t0:.1f} s")
        if splits.vocab is not None:  # text: per token, and its perplexity 2^(bits per token)
            m |= {"bits_per_token": m["bits_per_dim"], "perplexity": 2.0 ** m["bits_per_dim"]}
    if splits.stage is not None:  # a second model over a first stage's codes: the bound on the data
        m["two_stage"] = two_stage_metrics(cfg, splits, family, params, seed, log)
    if family.codes is not None and family.codes.kind == "discrete":  # codebook usage on the test split
        from genjax.eval.latent import code_usage

        m["codes"] = code_usage(family.codes, params, splits.test["x"], out)
    if family.latent is not None:  # posterior collapse: KL per dimension and active units on the test split
        from genjax.eval.latent import latent_diagnostics

        m["latent"] = latent_diagnostics(family.latent, params, splits.test["x"], splits.test.get("y"), out)
    if family.predictor is not None:  # a model of y given x: accuracy / calibration, and their figures
        from genjax.eval.predictive import predictive_metrics

        m["predictive"] = predictive_metrics(family, params, splits.test["x"], splits.test["y"], out)
    elif cfg.eval.sample_metrics and splits.stage is not None:  # decoded samples against the first stage's data
        st = splits.stage
        scfg = st.cfg.copy_and_resolve_references()
        with scfg.unlocked():
            scfg.eval = cfg.eval
        m["samples"] = sample_metrics(scfg, st.splits, st.decoded(family, splits.scale), params,
                                      keys.key(seed, "sample_metrics"), out, log=log)  # fmt: skip
    elif cfg.eval.sample_metrics:
        m["samples"] = sample_metrics(cfg, splits, family, params, keys.key(seed, "sample_metrics"), out, log=log)
    if main and run_dir is not None:
        (Path(run_dir) / "eval.json").write_text(json.dumps(m, indent=2) + "\n")
    return m


def two_stage_metrics(cfg, splits, family, params, seed: int = 0, log=print) -> dict:
    """A second model over a first stage's codes (``splits.stage``): the bound it gives on the
    first stage's test data, log p(x) >= ... (``FirstStage.bound``), in nats per example of that
    data and bits per its dimension; or, where the pair defines none, ``bound: None`` and why."""
    from genjax import keys
    from genjax.eval import heldout_metrics

    st = splits.stage
    scorer, why = st.bound(family, splits.scale)
    out = {"first_stage": str(st.run), "first_stage_family": st.family.name, "data": st.splits.name}
    if scorer is None:
        log(f"no bound on the data's NLL from the two stages: {why}")
        return out | {"bound": None, "why": why}
    log(f"scoring the {len(st.splits.test['x'])} test examples of the first stage ({scorer.estimator}) ...")
    out |= heldout_metrics(scorer, (params, st.params), st.splits.test["x"], keys.key(seed, "two_stage"),
                           batch_size=cfg.eval.batch_size, num_dims=st.splits.num_dims, bin_width=st.splits.bin_width,
                           example=st.splits.example)  # fmt: skip
    return out


def figures(cfg, splits, family, params, history, run_dir: Path, seed: int = 0) -> list[Path]:
    """The figures the family can draw: curves, samples (decoder means for a latent-variable
    model), reconstructions and latent interpolations where it has an encoder."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from genjax import keys
    from genjax.eval import plots
    from genjax.train.sampling import sampler

    key = keys.key(seed, "figures")
    out = [plots.curves(history, run_dir / "curves.png", cfg.name, family.curves)] if history else []
    if splits.stage is not None:  # a model of a first stage's codes: its samples decoded
        family, splits = splits.stage.decoded(family, splits.scale), splits.stage.splits
    test = splits.test["x"]
    if family.predictor is not None:  # its figures (calibration, confusion) come with its metrics
        return out
    if splits.vocab is not None:  # text: decoded samples, one per block, in samples.txt
        s = np.asarray(sampler(family, min(int(cfg.eval.n_samples), 16))(params, key))
        path = run_dir / "samples.txt"
        path.write_text(splits.samples_text(s))
        return out
    if len(splits.shape) != 3:  # 2-D toy data
        s = np.asarray(sampler(family, min(len(test), 2000))(params, key))
        return out + [plots.scatter2d(test[:2000], s, run_dir / "samples.png", cfg.name)]
    lat = family.latent
    n = int(cfg.eval.n_samples)
    if lat is None and family.codes is not None:  # a discrete first stage: its reconstructions
        rec = family.codes.decode(params, family.codes.encode(params, jnp.asarray(test[:32])))
        to_unit = splits.to_unit
        out.append(plots.reconstructions(to_unit(test[:32]), to_unit(rec), run_dir / "reconstructions.png"))
    # a conditional latent model's functions take the labels: the test split's, row for row
    y_test = splits.test.get("y")
    cond = (lambda rows: (jnp.asarray(y_test[rows]),)) if lat is not None and lat.conditional else (lambda rows: ())
    to01 = splits.to_unit
    if family.classes:  # one row per class (decoder means for a latent-variable model)
        c, m = int(family.classes), 10
        y = jnp.repeat(jnp.arange(c), m)
        if lat is not None and lat.conditional:
            imgs = lat.decode_mean(params, jax.random.normal(key, (c * m, lat.dim)), y)
            title = "decoder means E[x|z, class], z ~ N(0, I); one row per class"
        else:
            imgs, title = sampler(family, c * m, True)(params, key, y), "samples, one row per class"
        grid = to01(imgs).reshape(c, m, *splits.shape)
        out.append(plots.class_grid(grid, run_dir / "samples.png", title))
    else:
        if lat is not None:
            z = jax.random.normal(key, (n, lat.dim))
            imgs, title = lat.decode_mean(params, z, *cond(slice(0, n))), "decoder means E[x|z], z ~ N(0, I)"
        else:
            imgs, title = sampler(family, n)(params, key), "samples"
        out.append(plots.image_grid(to01(imgs), run_dir / "samples.png", title))
    if lat is not None:
        x = test[:32]
        rec = lat.reconstruct(params, jnp.asarray(x), *cond(slice(0, 32)))
        out.append(plots.reconstructions(to01(x), to01(rec), run_dir / "reconstructions.png"))
        a = lat.encode(params, jnp.asarray(test[:8]), *cond(slice(0, 8)))[0]
        b = lat.encode(params, jnp.asarray(test[8:16]), *cond(slice(8, 16)))[0]
        t = jnp.linspace(0.0, 1.0, 10)[None, :, None]
        zs = (1 - t) * a[:, None] + t * b[:, None]  # [8, 10, K]
        ys = tuple(jnp.repeat(v, 10, axis=0) for v in cond(slice(0, 8)))  # each row decoded with its start's label
        rows = lat.decode_mean(params, zs.reshape(-1, zs.shape[-1]), *ys).reshape(8, 10, *splits.shape)
        out.append(plots.interpolation(to01(rows), run_dir / "interpolation.png",
                                       ends=(to01(test[:8]), to01(test[8:16]))))  # fmt: skip
    return out


def write_samples(cfg, splits, family, params, run_dir: Path, n: int, seed: int, changes: dict | None = None):
    """``genjax sample``: ``n`` samples with ``seed`` into ``samples-seedS.npy`` and a picture (an
    image grid, a scatter beside the test data) or text, and ``samples-seedS.json`` (n, seed, the
    sampling fields set for this command); a model of y given x draws y for the first ``n`` test
    inputs. Returns the lines to print."""
    import numpy as np

    from genjax import keys
    from genjax.eval import plots
    from genjax.train.sampling import sampler

    stem = run_dir / f"samples-seed{seed}"
    record = {"n": n, "seed": seed,
              "config_changes": changes_record(changes or {})}  # fmt: skip
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    key = keys.root(seed)
    if family.predictor is not None:  # y ~ p(y | x) for the first n test inputs
        cond = splits.test["x"][:n]
        np.save(stem.with_suffix(".npy"), np.asarray(sampler(family, len(cond), True)(params, key, cond)))
        return [f"wrote {stem.with_suffix('.npy')}: y ~ p(y | x) for the first {len(cond)} test inputs"]
    if splits.stage is not None:  # codes of a first stage: kept, and decoded to its data
        codes, x = splits.stage.sample(family, params, key, n, None, splits.scale)
        np.save(run_dir / f"samples-seed{seed}-codes.npy", np.asarray(codes))
        x, splits = np.asarray(x), splits.stage.splits
    else:
        x = np.asarray(sampler(family, n)(params, key))
    np.save(stem.with_suffix(".npy"), x)
    if splits.kind == "tokens":
        stem.with_suffix(".txt").write_text(splits.samples_text(x))
        return [f"wrote {stem.with_suffix('.txt')} and {stem.with_suffix('.npy')}", splits.decode(x[0])]
    if splits.kind == "image":
        path = plots.image_grid(splits.to_unit(x), stem.with_suffix(".png"), f"{n} samples (seed {seed})")
    else:
        path = plots.scatter2d(splits.test["x"], x, stem.with_suffix(".png"), cfg.name)
    return [f"wrote {path} and {stem.with_suffix('.npy')}"]
