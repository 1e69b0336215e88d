"""genjax command line.

    genjax train [--config] experiments/vae_digits/config.py[:smoke] [--config.train.epochs=5]
                 [--workdir DIR] [--overwrite] [--stop_after N]
    genjax train --resume RUN_DIR [--config.train.epochs=N]
    genjax eval RUN_DIR [--config.eval.<field>=...] [--seed 0]
    genjax sample RUN_DIR [--config.model.<family>.<sampling field>=...] [--n 64] [--seed 0]
    genjax cv [--config] CONFIG [--config.cv.folds=5] [--config.cv.strategy=vmap|loop|shard]
              [--sweep='{"optim": {"lr": [1e-3, 3e-3]}}'] [--workdir DIR]
    genjax params [--config] CONFIG
    genjax config [--config] CONFIG
    genjax bench [--config] CONFIG [--epochs 3]
    genjax --version
    genjax COMMAND --help    (its flags, and the config fields it may change)

A run folder holds config.json (the resolved config), run.json (versions, devices, command),
metrics.jsonl (one line per epoch), checkpoints/, tb/ (TensorBoard), eval.json and PNG figures.
A run folder is never overwritten unless --overwrite is given, and only one process at a time
uses it (a lock beside it: ``genjax.run.folder``). Everything is checked before anything is written;
bad input ends with one sentence on stderr and exit status 2; set GENJAX_DEBUG=1 for the
traceback. Ctrl-C / SIGTERM checkpoint the epoch under way and exit 130 / 143 with the
--resume command.

Several hosts: start the same command on every host with GENJAX_COORDINATOR=host:port,
GENJAX_NUM_PROCESSES and GENJAX_PROCESS_ID set (genjax.train.sharding); process 0 alone writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from absl import flags
from ml_collections import ConfigDict, config_flags

from genjax.run import prepare as prepare_mod
from genjax.run import report as report_mod
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
    """print, on process 0 only, flushed at once (progress lines show as the work happens,
    also when stdout is a pipe or a file)."""
    if _main():
        print(*a, **{"flush": True} | kw)


def versions_line() -> str:
    from genjax.run.folder import versions

    return ", ".join(f"{k} {v}" for k, v in versions().items() if v is not None)


def cmd_train(args: list[str]) -> int:
    from genjax.train import Interrupted, fit
    from genjax.train.driver import fault_point

    if args:
        raise UsageError(f"train takes no positional arguments, got {args}.")
    if FLAGS.resume:
        if FLAGS.config is not None:
            raise UsageError("--resume continues a run with its saved config; do not pass --config as well.")
        run_dir = _run_dir_arg([FLAGS.resume], "--resume")
        cfg, changes = _saved_config(run_dir, "resume")
        if changes:
            prepare_mod.check_extension(run_dir, cfg, changes)
        splits, family = prepare_mod.prepare(cfg, saved=run_dir)
        scores = prepare_mod.easy_scores(cfg, splits)
        _lock(run_dir)
        if changes and _main():
            from genjax.run import folder

            folder.record_changes(run_dir, cfg, changes, "genjax train --resume")
        _say_changes(changes, "resume")
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
    m = report_mod.evaluate(cfg, splits, family, res.params, run_dir, FLAGS.seed, main=_main(), log=say)
    if FLAGS.plots and _main():
        from genjax.train.driver import tensorboard_figures

        history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        figs = report_mod.figures(cfg, splits, family, res.params, history, run_dir, FLAGS.seed)
        tensorboard_figures(run_dir, figs, ep)
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
    from genjax.run.folder import is_cv_folder

    if is_cv_folder(run_dir):
        raise UsageError(f"{cmd}: {str(run_dir)!r} is a cross-validation folder (genjax cv): it keeps results "
                         "(cv.json, sweep.md), no model; train the setting you chose with genjax train.")  # fmt: skip
    if not os.access(run_dir, os.W_OK):
        raise UsageError(f"{cmd}: the run folder {str(run_dir)!r} is not writable.")
    return run_dir


def _lock(run_dir: Path) -> None:
    """Hold ``run_dir``'s lock until the command ends (``genjax.run.folder.lock``)."""
    from genjax.run import folder

    if _main():
        try:
            _LOCKS.enter_context(folder.lock(run_dir))
        except folder.RunFolderError as e:
            raise UsageError(str(e)) from None


def cmd_eval(args: list[str]) -> int:
    from genjax.train import select_params

    run_dir = _run_dir_arg(args, "eval")
    cfg, changes = _saved_config(run_dir, "eval")
    splits, family = prepare_mod.prepare(cfg, saved=run_dir)
    _lock(run_dir)
    _say_changes(changes, "eval")
    say(f"restoring {run_dir} ...")
    state = prepare_mod.restore(cfg, run_dir, splits, family)
    m = report_mod.evaluate(cfg, splits, family, select_params(state, cfg.train.keep_best), run_dir, FLAGS.seed,
                            main=_main(), log=say, changes=changes)
    _print_eval(m)
    return 0


def cmd_sample(args: list[str]) -> int:
    from genjax.train import select_params

    if FLAGS.n < 1:
        raise UsageError(f"--n must be positive, got {FLAGS.n}.")
    run_dir = _run_dir_arg(args, "sample")
    cfg, changes = _saved_config(run_dir, "sample")
    splits, family = prepare_mod.prepare(cfg, saved=run_dir)
    _lock(run_dir)
    _say_changes(changes, "sample")
    params = select_params(prepare_mod.restore(cfg, run_dir, splits, family), cfg.train.keep_best)
    for line in report_mod.write_samples(cfg, splits, family, params, run_dir, FLAGS.n, FLAGS.seed, changes):
        print(line)
    return 0


def _new_run_dir(cfg, suffix: str, hint: str = "pass --overwrite to replace it") -> Path:
    """``--workdir`` or ``runs/<name>[-suffix]-<time>``; refuses a non-empty folder unless --overwrite."""
    from genjax.run import folder

    try:
        return folder.new_run_dir(cfg, FLAGS.workdir, FLAGS.overwrite, suffix, hint)
    except folder.RunFolderError as e:
        raise UsageError(str(e)) from None


def _open_run_dir(run_dir: Path, cfg, hint: str = "pass --overwrite to replace it", splits=None,
                  kind: str = "train") -> None:  # fmt: skip
    """``genjax.run.folder.open_run_dir`` on process 0, its lock held until the command ends."""
    from genjax.run import folder

    if not _main():
        return
    try:
        folder.open_run_dir(run_dir, cfg, _LOCKS, FLAGS.overwrite, splits, hint, kind)
    except folder.RunFolderError as e:
        raise UsageError(str(e)) from None


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
    _open_run_dir(run_dir, cfg, kind="cv")
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
    module = family.modules(jax.eval_shape(family.init, jax.random.key(0)))  # shapes only: nothing computed
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

    if args and FLAGS.config is None:  # a run folder: the config it was trained with
        if len(args) != 1:
            raise UsageError(f"config RUN_DIR takes no other arguments, got {args[1:]}.")
        print(explain(prepare_mod.load_config(Path(args[0]))))
        return 0
    if args or FLAGS.config is None:
        raise UsageError("config needs --config=path/to/config.py (or the path as its argument).")
    cfg = _with_sweep_flag(FLAGS.config)
    validate(cfg, ignore_inactive=_FAMILY_SWITCHED)
    print(explain(cfg))
    return 0


HELP = {
    "train": (["genjax train [--config] CONFIG [--config.<field>=VALUE ...] [--workdir DIR] [--overwrite] "
               "[--stop_after N]", "genjax train --resume RUN_DIR [--config.train.epochs=N ...]"],
              "Train the model CONFIG describes, evaluate it and draw its figures, in a new run folder. "
              "--resume continues a run from its newest good checkpoint; with --config.train.epochs=N (and the "
              "other fields listed below) it extends a finished one. `genjax config CONFIG` lists every field.",
              ["config", "workdir", "overwrite", "stop_after", "resume", "progress", "plots", "seed"], "resume"),
    "eval": (["genjax eval RUN_DIR [--config.<field>=VALUE ...] [--seed S]"],
             "Evaluate a run's model on the test split (held-out NLL, bits/dim, sample metrics, ...): eval.json, "
             "figures and the printed summary. The fields below may be set for this evaluation (recorded in "
             "eval.json).", ["seed"], "eval"),
    "sample": (["genjax sample RUN_DIR [--config.<field>=VALUE ...] [--n N] [--seed S]"],
               "Draw samples from a run's model: samples-seedS.npy and a figure (or text). The sampling fields "
               "below may be set for this command (recorded in samples-seedS.json).", ["n", "seed"], "sample"),
    "cv": (["genjax cv [--config] CONFIG [--config.cv.folds=K] [--sweep JSON] [--workdir DIR] [--overwrite]"],
           "k-fold cross-validation, every fold and every setting of the sweep trained at once: cv.json, "
           "the curves, and for a sweep sweep.md and sweep.png with the best setting's lead over the runner-up.",
           ["config", "sweep", "workdir", "overwrite", "progress"], None),
    "params": (["genjax params [--config] CONFIG"], "The parameter count of every module of CONFIG's model.",
               ["config"], None),
    "config": (["genjax config [--config] CONFIG [--config.<field>=VALUE ...]", "genjax config RUN_DIR"],
               "The resolved config, validated as train validates it: every field with its value, its meaning, "
               "its allowed values and which later command may change it (for a run folder: the config it was "
               "trained with). Nothing is loaded or written.",
               ["config", "sweep"], None),
    "bench": (["genjax bench [--config] CONFIG [--epochs E] [--notwin] [--whole] [--json DIR]"],
              "Time what genjax train runs for CONFIG: compile time apart from steady state, per-epoch time "
              "beside a plain-JAX twin of the same math where benchmarks/ has one.",
              ["config", "epochs", "twin", "whole", "json"], None),
}


def command_help(cmd: str) -> str:
    """``genjax CMD --help``: usage, what it does, its flags and the config fields it may change."""
    import textwrap

    from genjax.config import changeable_paths

    usage, what, names, when = HELP[cmd]
    fv = _define_flags(["genjax"])
    lines = ["usage: " + usage[0], *("       " + u for u in usage[1:]), "", textwrap.fill(what, 100), "", "flags:"]
    for name in names:
        f = fv[name]
        default = "" if f.default is None or name == "config" else f" (default {f.default})"
        lines.append(f"  --{name:<12} {f.help}{default}")
    if when is not None:
        lines += ["", "config fields this command may change (--config.<field>=VALUE):"]
        lines += [f"  {path:<34} {f.doc} [{f.rule()}]" for path, f in changeable_paths(when)]
    return "\n".join(lines)


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
        from genjax.fields import did_you_mean

        print(f"genjax: error: unknown command {cmd!r}{did_you_mean(cmd, COMMANDS)}; choose one of "
              f"{', '.join(COMMANDS)} (genjax COMMAND --help).", file=sys.stderr)  # fmt: skip
        return 2
    rest = argv[2:]
    if any(a in ("-h", "--help", "-help", "--helpfull") for a in rest):
        print(command_help(cmd))
        return 0
    if cmd in ("train", "cv", "params", "config", "bench") and rest and not rest[0].startswith("-") and not (
            cmd == "config" and os.path.isdir(rest[0])):  # `genjax config RUN_DIR` stays positional
        rest = [f"--config={rest[0]}", *rest[1:]]  # `genjax params CONFIG` == `genjax params --config=CONFIG`
    global FLAGS, _OVERRIDES
    _OVERRIDES = []
    if cmd in ("eval", "sample") or (cmd == "train" and any(a.split("=")[0] == "--resume" for a in rest)):
        rest, _OVERRIDES = _split_overrides(rest)  # applied to the run's saved config (genjax.config.override)
    argv = [argv[0], cmd, *rest]
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


_OVERRIDES: list[str] = []  # --config.<field> arguments of a command that opens a saved run


def _split_overrides(args: list[str]) -> tuple[list[str], list[str]]:
    """(the other arguments, the ``--config.<path>[=]<value>`` ones)."""
    rest, over = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--config."):
            take = 1 if "=" in a or i + 1 == len(args) or args[i + 1].startswith("--") else 2
            over += args[i : i + take]
            i += take
        else:
            rest.append(a)
            i += 1
    return rest, over


def _saved_config(run_dir: Path, when: str):
    """The run's saved config with this command's ``--config`` overrides (``genjax.config.override``);
    returns (config, {path: (old, new)})."""
    from genjax.config import override

    cfg = prepare_mod.load_config(run_dir)
    if not _OVERRIDES:
        return cfg, {}
    return override(cfg, _OVERRIDES, when)


def _say_changes(changes: dict, when: str) -> None:
    for path, (old, new) in changes.items():
        say(f"{path}: {old!r} -> {new!r}" + (" (for this command only; the run's config.json keeps it)"
                                             if when != "resume" else " (config.json updated)"))  # fmt: skip


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
