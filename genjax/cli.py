"""genjax command line.

    genjax train --config experiments/vae_digits/config.py[:smoke] [--config.train.epochs=5]
                 [--workdir DIR] [--overwrite] [--stop_after N]
    genjax train --resume RUN_DIR
    genjax eval RUN_DIR
    genjax sample RUN_DIR [--n 64] [--seed 0]
    genjax cv [--config] CONFIG [--config.cv.folds=5] [--config.cv.strategy=vmap|loop|shard]
              [--sweep='{"optim": {"lr": [1e-3, 3e-3]}}'] [--workdir DIR]
    genjax params [--config] CONFIG

A run folder holds config.json (the resolved config), run.json (versions, devices, command),
metrics.jsonl (one line per epoch), checkpoints/, tb/ (TensorBoard), eval.json and PNG figures.
A run folder is never overwritten unless --overwrite is given, and only one process at a time
uses it (a lock beside it: ``genjax.rundir``). Everything is checked before anything is written;
bad input ends with one sentence on stderr and exit status 2; set GENJAX_DEBUG=1 for the
traceback. Ctrl-C / SIGTERM checkpoint the epoch under way and exit 130 / 143 with the
--resume command.

Several hosts: start the same command on every host with GENJAX_COORDINATOR=host:port,
GENJAX_NUM_PROCESSES and GENJAX_PROCESS_ID set (genjax.train.sharding); process 0 alone writes.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import signal
import sys
from pathlib import Path

from absl import flags
from ml_collections import ConfigDict, config_flags

from genjax.run import prepare as prepare_mod
from genjax.run.prepare import UsageError

FLAGS = flags.FlagValues()


def _define_flags(argv: list[str]) -> flags.FlagValues:
    """A fresh set of flags per invocation (config overrides register themselves on parsing)."""
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", None, "Experiment config file (path[:arg]).", flag_values=fv, lock_config=True, sys_argv=argv
    )
    flags.DEFINE_string("workdir", None, "Run folder (default runs/<name>-<time>).", flag_values=fv)
    flags.DEFINE_string(
        "resume", None, "Continue the run in this folder from its newest good checkpoint.", flag_values=fv
    )
    flags.DEFINE_bool("overwrite", False, "Replace an existing run folder.", flag_values=fv)
    flags.DEFINE_integer("stop_after", None, "Stop after this epoch (the run can be resumed).", flag_values=fv)
    flags.DEFINE_integer("n", 64, "sample: number of samples.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "sample/eval: seed for the evaluation key.", flag_values=fv)
    flags.DEFINE_bool("progress", True, "Show progress bars.", flag_values=fv)
    flags.DEFINE_bool("plots", True, "train: write figures at the end.", flag_values=fv)
    flags.DEFINE_string("sweep", None, "cv: the sweep as JSON, replacing config.cv.sweep.", flag_values=fv)
    flags.DEFINE_integer("epochs", 3, "bench: epochs timed after one warm-up (0: compile times only).",
                         flag_values=fv)  # fmt: skip
    flags.DEFINE_bool("twin", True, "bench: time the plain-JAX twin beside, where benchmarks/ has one.", flag_values=fv)
    flags.DEFINE_bool("whole", False, "bench: also time the whole genjax train for --epochs epochs.", flag_values=fv)
    flags.DEFINE_string("json", None, "bench: write the result as JSON into this folder.", flag_values=fv)
    return fv


USAGE = __doc__.split("\n\n")[1]




def _setup_jax() -> None:
    """The persistent compilation cache, and ``jax.distributed`` where the environment asks."""
    from genjax.api import enable_compilation_cache
    from genjax.train.sharding import initialize_distributed

    enable_compilation_cache()
    initialize_distributed()


def _main() -> bool:
    from genjax.train.sharding import is_main_process

    return is_main_process()


def say(*a, **kw) -> None:
    """print, on process 0 only."""
    if _main():
        print(*a, **kw)


def _evaluate(cfg, splits, family, params, run_dir: Path, seed: int) -> dict:
    """Held-out likelihood metrics where the family has a likelihood, and (``eval.sample_metrics``)
    every sample-based metric that fits the data; written to ``eval.json``."""
    from genjax import keys
    from genjax.eval import heldout_metrics
    from genjax.eval.suite import sample_metrics

    m = {"split": "test", "data": splits.name, "family": family.name}
    out = run_dir if _main() else None  # figures: process 0 alone writes
    if family.log_prob is not None:
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
        if splits.vocab is not None:  # text: per token, and its perplexity 2^(bits per token)
            m |= {"bits_per_token": m["bits_per_dim"], "perplexity": 2.0 ** m["bits_per_dim"]}
    if family.latent is not None:  # posterior collapse: KL per dimension and active units on the test split
        from genjax.eval.latent import latent_diagnostics

        m["latent"] = latent_diagnostics(family.latent, params, splits.test["x"], splits.test.get("y"), out)
    if family.predictor is not None:  # a model of y given x: accuracy / calibration, and their figures
        from genjax.eval.predictive import predictive_metrics

        m["predictive"] = predictive_metrics(family, params, splits.test["x"], splits.test["y"], out)
    elif cfg.eval.sample_metrics:
        m["samples"] = sample_metrics(cfg, splits, family, params, keys.key(seed, "sample_metrics"), out)
    if _main():
        (run_dir / "eval.json").write_text(json.dumps(m, indent=2) + "\n")
    return m


def _figures(cfg, splits, family, params, history, run_dir: Path, seed: int) -> list[Path]:
    """The figures the family can draw: curves, samples (decoder means for a latent-variable
    model), reconstructions and latent interpolations where it has an encoder."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from genjax import keys
    from genjax.eval import plots

    key = keys.key(seed, "figures")
    out = [plots.curves(history, run_dir / "curves.png", cfg.name, family.curves)] if history else []
    test = splits.test["x"]
    if family.predictor is not None:  # its figures (calibration, confusion) come with its metrics
        return out
    if splits.vocab is not None:  # text: decoded samples, one per block, in samples.txt
        s = np.asarray(family.sample(params, key, min(int(cfg.eval.n_samples), 16)))
        path = run_dir / "samples.txt"
        path.write_text(splits.samples_text(s))
        return out
    if len(splits.shape) != 3:  # 2-D toy data
        s = np.asarray(family.sample(params, key, min(len(test), 2000)))
        return out + [plots.scatter2d(test[:2000], s, run_dir / "samples.png", cfg.name)]
    lat = family.latent
    n = int(cfg.eval.n_samples)
    # a conditional latent model's functions take the labels: the test split's, row for row
    y_test = splits.test.get("y")
    cond = (lambda rows: (jnp.asarray(y_test[rows]),)) if lat is not None and lat.conditional else (lambda rows: ())
    to01 = (lambda a: (np.asarray(a) + 1) / 2) if cfg.data.scale == "-11" else np.asarray
    if family.classes:  # one row per class (decoder means for a latent-variable model)
        c, m = int(family.classes), 10
        y = jnp.repeat(jnp.arange(c), m)
        if lat is not None and lat.conditional:
            imgs = lat.decode_mean(params, jax.random.normal(key, (c * m, lat.dim)), y)
            title = "decoder means E[x|z, class], z ~ N(0, I); one row per class"
        else:
            imgs, title = family.sample(params, key, c * m, y), "samples, one row per class"
        grid = to01(imgs).reshape(c, m, *splits.shape)
        out.append(plots.class_grid(grid, run_dir / "samples.png", title))
    else:
        if lat is not None:
            z = jax.random.normal(key, (n, lat.dim))
            imgs, title = lat.decode_mean(params, z, *cond(slice(0, n))), "decoder means E[x|z], z ~ N(0, I)"
        else:
            imgs, title = family.sample(params, key, n), "samples"
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
        out.append(plots.interpolation(to01(rows), run_dir / "interpolation.png"))
    return out


VERSIONED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "numpy", "scipy", "ml-collections",
             "tensorflow-datasets")  # fmt: skip


def versions() -> dict:
    """The installed versions of genjax, Python and the dependencies whose changes move numbers."""
    from importlib import metadata

    import genjax

    out = {"genjax": genjax.__version__, "python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def versions_line() -> str:
    return ", ".join(f"{k} {v}" for k, v in versions().items() if v is not None)


def _run_info(cfg) -> dict:
    import jax

    import genjax

    return {
        "genjax": genjax.__version__,
        "jax": jax.__version__,
        "versions": versions(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "processes": jax.process_count(),
        "python": platform.python_version(),
        "argv": sys.argv,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def cmd_train(args: list[str]) -> int:
    from genjax.train import Interrupted, fit
    from genjax.train.driver import fault_point

    if args:
        raise UsageError(f"train takes no positional arguments, got {args}.")
    if FLAGS.resume:
        if FLAGS.config is not None:
            raise UsageError("--resume continues a run with its saved config; do not pass --config as well.")
        run_dir = _run_dir_arg([FLAGS.resume], "--resume")
        cfg = prepare_mod.load_config(run_dir)
        splits, family = prepare_mod.prepare(cfg, saved=run_dir)
        scores = prepare_mod.easy_scores(cfg, splits)
        _lock(run_dir)
    else:
        if FLAGS.config is None:
            raise UsageError("train needs --config=path/to/config.py (or --resume RUN_DIR).")
        cfg = FLAGS.config
        run_dir = _new_run_dir(cfg, "", "pass --overwrite to replace it or --resume to continue it")
        splits, family = prepare_mod.prepare(cfg, ignore_inactive=_FAMILY_SWITCHED)  # fails before anything is written
        scores = prepare_mod.easy_scores(cfg, splits)
        mesh = prepare_mod.check_mesh(cfg, family)
        _open_run_dir(run_dir, cfg, "pass --overwrite to replace it or --resume to continue it", splits)
        say(mesh)
    say(f"run folder: {run_dir}", flush=True)
    try:
        res = fit(
            cfg,
            family,
            splits,
            run_dir,
            resume=bool(FLAGS.resume),
            progress=FLAGS.progress,
            stop_after=FLAGS.stop_after,
            scores=scores,
        )
    except Interrupted as e:
        where = f"checkpoint of epoch {e.epoch} saved" if e.saved and e.epoch else "nothing trained yet"
        say(f"genjax: {e} ({where}); continue with: genjax train --resume {run_dir}", file=sys.stderr)
        return e.exit_code
    ep = int(res.state.epoch)
    best = ""
    if family.log_prob is not None:
        from genjax.eval.report import validation_phrase

        best = (f"; best validation NLL {float(res.state.es.best):.3f} nats per {splits.example} at epoch "
                f"{int(res.state.es.best_epoch)} ({validation_phrase(family)})")  # fmt: skip
    say(f"compile {res.compile_seconds:.1f}s, {len(res.history)} epochs in {res.train_seconds:.1f}s{best}", flush=True)
    if ep < cfg.train.epochs and not bool(res.state.es.stopped):
        say(f"stopped after epoch {ep} of {cfg.train.epochs}; continue with: genjax train --resume {run_dir}")
        return 0
    import jax

    if jax.process_count() > 1:  # evaluation (classifier training, sample metrics) runs in one process
        say(f"trained on {jax.process_count()} processes; evaluate with: genjax eval {run_dir}")
        return 0
    fault_point("eval", ep)
    m = _evaluate(cfg, splits, family, res.params, run_dir, FLAGS.seed)
    if FLAGS.plots and _main():
        from genjax.train.driver import tensorboard_figures

        history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        tensorboard_figures(run_dir, _figures(cfg, splits, family, res.params, history, run_dir, FLAGS.seed), ep)
    _print_eval(m)
    say(f"run folder: {run_dir}")
    return 0


def _print_eval(m: dict) -> None:
    from genjax.eval.report import summary

    say(summary(m))


def _run_dir_arg(args: list[str], cmd: str) -> Path:
    """An existing, writable run folder (the caller locks it once its config has loaded)."""
    if len(args) != 1:
        raise UsageError(f"{cmd} needs exactly one RUN_DIR, got {len(args)} arguments.")
    run_dir = Path(args[0])
    if not run_dir.is_dir():
        raise UsageError(f"{cmd}: {str(run_dir)!r} is not a folder.")
    if not (run_dir / "config.json").is_file():
        raise UsageError(f"{cmd}: {str(run_dir)!r} has no config.json; is it a genjax run folder?")
    if not os.access(run_dir, os.W_OK):
        raise UsageError(f"{cmd}: the run folder {str(run_dir)!r} is not writable.")
    return run_dir


def _lock(run_dir: Path) -> None:
    """Hold ``run_dir``'s lock until the command ends (``genjax.rundir.lock``)."""
    from genjax import rundir

    if _main():
        _LOCKS.enter_context(rundir.lock(run_dir))


def cmd_eval(args: list[str]) -> int:
    from genjax.train import select_params

    run_dir = _run_dir_arg(args, "eval")
    cfg = prepare_mod.load_config(run_dir)
    splits, family = prepare_mod.prepare(cfg, saved=run_dir)
    _lock(run_dir)
    state = prepare_mod.restore(cfg, run_dir, splits, family)
    m = _evaluate(cfg, splits, family, select_params(state, cfg.train.keep_best), run_dir, FLAGS.seed)
    _print_eval(m)
    return 0


def cmd_sample(args: list[str]) -> int:
    import jax
    import numpy as np

    from genjax.eval import plots
    from genjax.train import select_params

    if FLAGS.n < 1:
        raise UsageError(f"--n must be positive, got {FLAGS.n}.")
    run_dir = _run_dir_arg(args, "sample")
    cfg = prepare_mod.load_config(run_dir)
    splits, family = prepare_mod.prepare(cfg, saved=run_dir)
    _lock(run_dir)
    params = select_params(prepare_mod.restore(cfg, run_dir, splits, family), cfg.train.keep_best)
    if family.predictor is not None:  # y ~ p(y | x) for the first n test inputs
        cond = splits.test["x"][: FLAGS.n]
        y = np.asarray(family.sample(params, jax.random.key(FLAGS.seed), len(cond), cond))
        path = run_dir / f"samples-seed{FLAGS.seed}.npy"
        np.save(path, y)
        print(f"wrote {path}: y ~ p(y | x) for the first {len(cond)} test inputs")
        return 0
    x = np.asarray(family.sample(params, jax.random.key(FLAGS.seed), FLAGS.n))
    np.save(run_dir / f"samples-seed{FLAGS.seed}.npy", x)
    if splits.vocab is not None:
        path = run_dir / f"samples-seed{FLAGS.seed}.txt"
        path.write_text(splits.samples_text(x))
        print(f"wrote {path} and {path.with_suffix('.npy')}")
        print(splits.decode(x[0]))
        return 0
    if len(splits.shape) == 3:
        x01 = (x + 1) / 2 if cfg.data.scale == "-11" else x
        path = plots.image_grid(
            x01, run_dir / f"samples-seed{FLAGS.seed}.png", f"{FLAGS.n} samples (seed {FLAGS.seed})"
        )
    else:
        path = plots.scatter2d(splits.test["x"], x, run_dir / f"samples-seed{FLAGS.seed}.png", cfg.name)
    print(f"wrote {path} and {path.with_suffix('.npy')}")
    return 0


def _new_run_dir(cfg, suffix: str, hint: str = "pass --overwrite to replace it") -> Path:
    """``--workdir`` or ``runs/<name>[-suffix]-<time>``; refuses a non-empty folder unless --overwrite."""
    from genjax.rundir import holds_run

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(FLAGS.workdir or Path("runs") / "-".join(x for x in (cfg.name, suffix, stamp) if x))
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--workdir {str(run_dir)!r} is a file, not a folder.")
    if holds_run(run_dir) and not FLAGS.overwrite:
        raise UsageError(f"--workdir {str(run_dir)!r} already holds a run; {hint}.")
    return run_dir


def _open_run_dir(run_dir: Path, cfg, hint: str = "pass --overwrite to replace it", splits=None) -> None:
    """Lock the run folder and create it atomically (replacing it under --overwrite) with
    config.json and run.json (and, for text, vocab.json: the token strings). Called only once
    the config, data and model have passed their checks; process 0 only."""
    from genjax import rundir

    if not _main():
        return
    _lock(run_dir)  # a second writer is refused here, --overwrite or not
    try:
        files = {
            "config.json": cfg.to_json_best_effort(indent=2) + "\n",
            "run.json": json.dumps(_run_info(cfg), indent=2) + "\n",
        }
        if splits is not None and splits.vocab is not None:
            files["vocab.json"] = json.dumps({"tokens": splits.tokens, "vocab": list(splits.vocab)}) + "\n"
        rundir.create(run_dir, files, overwrite=FLAGS.overwrite)
    except rundir.RunFolderError as e:
        raise UsageError(f"{e} {hint[0].upper()}{hint[1:]}.") from None


def cmd_cv(args: list[str]) -> int:
    from genjax.sweep import run_cv, sweep_grid, sweep_table

    if args or FLAGS.config is None:
        raise UsageError("cv needs --config=path/to/config.py and no positional arguments.")
    cfg = _with_sweep_flag(FLAGS.config)
    run_dir = _new_run_dir(cfg, "cv")
    splits, family = prepare_mod.prepare(cfg, ignore_inactive=_FAMILY_SWITCHED)  # fails before anything is written
    from genjax.models import DataInfo
    from genjax.train.cv import check_cv

    sweep_grid(cfg, DataInfo.of(splits))  # a bad sweep fails before anything is written
    check_cv(cfg, family, splits)  # a family without a likelihood, impossible folds too
    _open_run_dir(run_dir, cfg)
    say(f"run folder: {run_dir}", flush=True)
    report = run_cv(cfg, run_dir, splits=splits, progress=FLAGS.progress)
    if not _main():
        return 0
    for run in report["runs"]:
        print(
            f"{run['strategy']}: compile {run['compile_seconds']:.1f}s, train {run['train_seconds']:.1f}s, "
            f"{run['examples_per_second']:,.0f} examples/s over {len(run['members'])} models"
        )
    print(sweep_table(report))
    print(f"held-out NLL: {report['metric_kind']}")
    for r in report["rows"]:
        label = ", ".join(f"{f}={r[f]}" for f in report["swept"])
        print(f"per-fold held-out NLL{f' ({label})' if label else ''}: " + ", ".join(f"{v:.3f}" for v in r["per_fold"]))
    print(f"run folder: {run_dir}")
    return 0


def cmd_params(args: list[str]) -> int:
    import jax

    from genjax.nn.summary import format_table, param_table

    if args or FLAGS.config is None:
        raise UsageError("params needs --config=path/to/config.py and no positional arguments.")
    cfg = FLAGS.config
    splits, family = prepare_mod.prepare(cfg, ignore_inactive=_FAMILY_SWITCHED)
    if family.modules is None:
        raise UsageError(f"the {family.name} family exposes no modules to count.")
    module = family.modules(family.init(jax.random.key(0)))
    print(f"{cfg.name}: {family.name}, data shape {splits.shape}")
    print(format_table(param_table(module)))
    return 0


def cmd_bench(args: list[str]) -> int:
    """The cost of the program ``genjax train`` would run for the config (``genjax.run.bench``)."""
    from genjax.run.bench import bench, report, write_json

    if args or FLAGS.config is None:
        raise UsageError("bench needs --config=path/to/config.py (or the path as its argument).")
    if FLAGS.epochs < 0:
        raise UsageError(f"--epochs must be >= 0 (0: compile times only), got {FLAGS.epochs}.")
    cfg = FLAGS.config
    splits, family = prepare_mod.prepare(cfg, ignore_inactive=_FAMILY_SWITCHED)
    say(prepare_mod.check_mesh(cfg, family))
    r = bench(cfg, splits, family, epochs=FLAGS.epochs, twin=FLAGS.twin, whole=FLAGS.whole, log=say)
    say(report(r))
    if FLAGS.json and _main():
        say(f"wrote {write_json(r, FLAGS.json)}")
    return 0


def _with_sweep_flag(cfg):
    """``cfg`` with ``--sweep`` (JSON) as its ``cv.sweep``, where the flag is given."""
    if FLAGS.sweep is None:
        return cfg
    try:
        sweep = json.loads(FLAGS.sweep)
    except json.JSONDecodeError as e:
        raise UsageError(f"--sweep={FLAGS.sweep!r} is not valid JSON ({e.msg}).") from None
    if not isinstance(sweep, dict):
        raise UsageError(f"--sweep must be a JSON object of fields to lists of values, got {FLAGS.sweep!r}.")
    cfg.unlock()
    cfg.cv.sweep = ConfigDict(sweep)
    cfg.lock()
    return cfg


def cmd_config(args: list[str]) -> int:
    """The resolved config: every field with its value, description and allowed values, after
    the same validation ``train`` runs (nothing is loaded or written)."""
    from genjax.config import explain, validate

    if args or FLAGS.config is None:
        raise UsageError("config needs --config=path/to/config.py (or the path as its argument).")
    cfg = _with_sweep_flag(FLAGS.config)
    validate(cfg, ignore_inactive=_FAMILY_SWITCHED)
    print(explain(cfg))
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample, "cv": cmd_cv, "params": cmd_params,
            "config": cmd_config, "bench": cmd_bench}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if len(argv) >= 2 else 2
    if argv[1] in ("--version", "version"):
        print(versions_line())
        return 0
    cmd = argv[1]
    if cmd not in COMMANDS:
        print(f"genjax: error: unknown command {cmd!r}; choose one of {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    rest = argv[2:]
    if cmd in ("train", "cv", "params", "config", "bench") and rest and not rest[0].startswith("-"):
        rest = [f"--config={rest[0]}", *rest[1:]]  # `genjax params CONFIG` == `genjax params --config=CONFIG`
    argv = [argv[0], cmd, *rest]
    global FLAGS
    try:
        with _LOCKS, _terminate_as_interrupt():
            spec = _config_arg(argv[2:])
            try:
                FLAGS = _define_flags([argv[0], *argv[2:]])
                args = FLAGS([argv[0], *argv[2:]])[1:]
            except (KeyError, AttributeError):  # an override of a field the config does not have
                raise UsageError(_unknown_override(argv)) from None
            if spec is not None and not isinstance(FLAGS.config, ConfigDict):
                got = type(FLAGS.config).__name__
                raise UsageError(f"--config {spec}: get_config returned {got}, not a ConfigDict.")
            global _FAMILY_SWITCHED
            _FAMILY_SWITCHED = _check_block_overrides(argv[2:], FLAGS.config)
            _setup_jax()
            return COMMANDS[cmd](args)
    except KeyboardInterrupt as e:  # outside the training loop (which checkpoints and returns 130/143)
        signum = e.args[0] if e.args and isinstance(e.args[0], int) else signal.SIGINT
        print(
            f"genjax: interrupted by {signal.Signals(signum).name}; committed checkpoints are intact.", file=sys.stderr
        )
        return 128 + signum
    except (flags.Error, ValueError, RuntimeError, OSError) as e:
        if os.environ.get("GENJAX_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        cause = e.__cause__ or e.__context__
        if msg.endswith(":") and cause is not None and str(cause).strip():  # absl: "Error whilst parsing ...:"
            msg = f"{msg} {str(cause).strip().splitlines()[-1]}"
        print(f"genjax: error: {msg}", file=sys.stderr)
        return 2


def _config_arg(args: list[str]) -> str | None:
    """The ``--config`` argument, its file checked (exists, parses) before absl loads it, so a
    missing file or a syntax error is one sentence naming the file."""
    for i, a in enumerate(args):
        if a.startswith("--config="):
            spec = a.split("=", 1)[1]
        elif a == "--config" and i + 1 < len(args):
            spec = args[i + 1]
        else:
            continue
        path = spec.split(":", 1)[0]
        if not os.path.isfile(path):
            raise UsageError(f"--config: no such file {path!r}.")
        try:
            compile(Path(path).read_text(), path, "exec")
        except (SyntaxError, ValueError, UnicodeDecodeError) as e:
            where = f" line {e.lineno}" if isinstance(e, SyntaxError) else ""
            raise UsageError(f"--config: {path}{where} is not valid Python ({getattr(e, 'msg', e)}).") from None
        return spec
    return None


_FAMILY_SWITCHED = False  # model.family was set on the command line: the config file's own block is not used


def _check_block_overrides(args: list[str], cfg) -> bool:
    """A ``--config.model.<family>.<field>`` override of a family that is not the active one
    would be ignored: refuse it. Returns whether ``--config.model.family`` switched the family
    (then the config file's blocks for other families are ignored, not refused)."""
    if not isinstance(cfg, ConfigDict):
        return False
    from genjax.models import FAMILIES

    active = cfg.model.family
    switched = False
    for a in args:
        if not a.startswith("--config.model."):
            continue
        path = a[len("--config.model.") :].split("=", 1)[0].split(".")
        if path[0] == "family":
            switched = True
        elif path[0] in FAMILIES and path[0] != active:
            raise UsageError(
                f"--config.model.{'.'.join(path)}: the active family is {active!r} (model.family), which never "
                f"reads model.{path[0]}; set model.{active}.{path[-1]} or --config.model.family={path[0]}."
            )
    return switched


def _unknown_override(argv: list[str]) -> str:
    """Name the ``--config.<path>`` override whose field the config has not."""
    base = [a for a in argv[2:] if not a.startswith("--config.")]
    fv = _define_flags([argv[0], *base])
    try:
        fv([argv[0], *base])
        cfg = fv.config
    except Exception:  # noqa: BLE001 - the config itself does not load: say so
        return "the config given with --config does not load."
    for a in argv[2:]:
        if not a.startswith("--config."):
            continue
        path = a[len("--config.") :].split("=", 1)[0]
        node = cfg
        for part in path.split("."):
            if not isinstance(node, ConfigDict) or part not in node:
                from genjax.fields import did_you_mean

                near = did_you_mean(part, node.keys()) if isinstance(node, ConfigDict) else ""
                return f"--config.{path}: the config has no field {part!r}{near}."
            node = node[part]
    return "a --config.<field> override names a field the config does not have."


_LOCKS = contextlib.ExitStack()  # the run-folder locks this command holds (released when it ends)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM raises ``KeyboardInterrupt(SIGTERM)`` like Ctrl-C does, so both end with one line
    and their exit status (the training loop defers both to the end of its epoch)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    sys.exit(main())
