"""The base experiment config. Experiments start from ``base_config()`` and change fields;
the CLI overrides any field (``--config.train.epochs=5``).

Sections: ``data``, ``model`` (``family`` and one block per family), ``objective`` (the
penalties every family takes), ``optim``, ``train``, ``cv``, ``eval``. Every field is declared
once below (or, for a family's block, in ``genjax/models/<family>.py``) with its type, range or
choices and a description (``genjax.fields``): ``validate`` checks the whole config against the
declarations before anything is written, and ``genjax config`` prints them.
"""

from __future__ import annotations

import ml_collections

from genjax.fields import (
    Bool,
    Choice,
    Dict,
    Float,
    Floats,
    Int,
    Ints,
    Str,
    changeable,
    changed,
    check_block,
    describe,
    did_you_mean,
)
from genjax.models import FAMILIES

TOP = {
    "name": Str("run", "the run's name: the default run folder is runs/<name>-<time>"),
    "seed": Int(0, "model initialization and training keys (data splits use data.seed)", ge=0),
}

DATA = {
    "name": Str("digits", "the data source: digits | mnist5k | text:[<path>] | npz:<path> | tfds:<name> | "
                "toy2d:<name> | toy1d:<name> (genjax.data.sources) | pairs:<run folder> (a flow's (z, ODE(z)) "
                "pairs, for reflow: genjax.run.prepare.pairs_source)"),
    "data_dir": Str("", "TFDS data_dir ('' = TFDS default); genjax never downloads"),
    "seed": Int(0, "the train / validation / test split and the fixed binarization / dequantization draws", ge=0),
    "val_fraction": Float(0.1, "share of the training pool held out for validation", ge=0.0, lt=1.0),
    "test_fraction": Float(0.2, "share held out as test, only when the source has no test split of its own",
                           ge=0.0, lt=1.0),
    "train_size": Int(0, ">0: keep only this many training examples (small-data studies)", ge=0),
    "binarize": Choice("none", "images to {0, 1}: a fixed draw (static) or a fresh Bernoulli draw each epoch "
                       "(dynamic)", ("none", "static", "dynamic")),
    "dequantize": Bool(False, "add uniform noise within each grey level (continuous densities on discrete images)"),
    "scale": Choice("01", "the range image pixels live in: [0, 1] or [-1, 1]", ("01", "-11")),
    "toy_n": Int(10000, "toy2d / toy1d / pairs: training-pool size (the test set is a fifth of it)", ge=1),
    "latents": Choice("mean", "latents:<run> of a VAE: its posterior means, or one draw z ~ q(z|x) per example "
                      "(from data.seed; what a prior is scored on in the two-stage bound)", ("mean", "sample")),
    "block_size": Int(64, "text: tokens per example (a window of the stream)", ge=2),
    "tokens": Choice("char", "text: tokens are characters or UTF-8 bytes", ("char", "byte")),
    "text_chars": Int(1_000_000, "text: keep the first this many characters (0 = all)", ge=0),
}

OBJECTIVE = {
    "l1": Float(0.0, "L1 penalty on kernels (weights), added to every player's loss", ge=0.0),
    "l2": Float(0.0, "L2 penalty on kernels (not decoupled: optim.name='adamw' is)", ge=0.0),
}

SCHEDULES = ("constant", "warmup_cosine", "linear", "exponential", "step", "plateau")


def _increasing(at) -> str | None:
    return None if list(at) == sorted(at) else "it must be increasing"


OPTIM = {
    "name": Choice("adam", "the optimizer (adamw: decoupled weight decay on kernels)", ("adam", "adamw", "sgd")),
    "lr": Float(1e-3, "the (peak) learning rate", gt=0.0),
    "b1": Float(0.9, "adam / adamw: decay of the first-moment average", ge=0.0, lt=1.0),
    "b2": Float(0.999, "adam / adamw: decay of the second-moment average", ge=0.0, lt=1.0),
    "eps": Float(1e-8, "adam / adamw: added to the root second moment", gt=0.0),
    "weight_decay": Float(1e-4, "adamw only: decoupled weight decay on kernels", ge=0.0),
    "momentum": Float(0.9, "sgd only: momentum (0 = plain SGD)", ge=0.0, lt=1.0),
    "nesterov": Bool(False, "sgd only: Nesterov momentum"),
    "clip_norm": Float(0.0, ">0: clip gradients by their global norm", ge=0.0),
    "schedule": Choice("constant", "the learning-rate shape (genjax.train.optim)", SCHEDULES),
    "warmup_steps": Int(0, "linear warm-up from 0 over this many steps, before any schedule", ge=0),
    "final_lr_ratio": Float(0.0, "warmup_cosine, linear, exponential: the last step's fraction of lr",
                            ge=0.0, le=1.0),
    "step_at": Floats((0.5, 0.75), "step: fractions of the (post-warm-up) steps where lr drops",
                      gt=0.0, lt=1.0, check=_increasing),
    "step_factor": Float(0.1, "step: the factor of each drop", gt=0.0, lt=1.0),
    "plateau_factor": Float(0.5, "plateau: lr scale x this after plateau_patience epochs without improvement",
                            gt=0.0, lt=1.0),
    "plateau_patience": Int(2, "plateau: epochs without a validation NLL better than the best by more than "
                            "plateau_min_delta", ge=1),
    "plateau_min_delta": Float(0.0, "plateau: the improvement (nats) that counts", ge=0.0),
    "plateau_min_scale": Float(0.0, "plateau: the scale never drops below this", ge=0.0, le=1.0),
    "players": Dict("per-player overrides of any optim field, e.g. {'disc': {'lr': 4e-4}}"),
}

TRAIN = {
    "epochs": Int(50, "passes over the training split", ge=1),
    "batch_size": Int(100, "examples per step", ge=1),
    "patience": Int(0, "early stopping: epochs without improvement (0 = off)", ge=0),
    "min_delta": Float(0.0, "early stopping: the improvement in validation NLL (nats) that counts", ge=0.0),
    "stop_rule": Choice("patience", "patience: stop after `patience` epochs without an improvement by more than "
                        "min_delta; rise (the notes' rule): stop once NLL_val(t) > NLL_val(t - patience) + "
                        "min_delta", ("patience", "rise")),
    "keep_best": Bool(True, "evaluate / return the best-validation parameters, not the last"),
    "val_batch_size": Int(500, "validation examples per batch", ge=1),
    "checkpoint_every": Int(10, "checkpoint after epoch 1, then every this many epochs (and at the end)", ge=1),
    "checkpoint_minutes": Float(10.0, "also checkpoint when this many minutes have passed (0 = no time rule)",
                                ge=0.0),
    "grad_norm": Bool(False, "log each player's gradient global L2 norm (mean over the epoch's steps) as grad_norm; "
                      "it costs one more read of the gradients per step (3-7% of a small MLP's step on a CPU), so it "
                      "is off by default (the non-finite guard checks the gradients either way)"),
    "on_nonfinite": Choice("halt", "a step with a non-finite loss term or gradient: stop the run (halt) or drop "
                           "the step (skip)", ("halt", "skip")),
    "loss_rise": Float(10.0, "warn once when the epoch's training loss exceeds its running minimum m by more "
                       "than loss_rise x |m| (0 = never)", ge=0.0),
    "dtype": Choice("float32", "compute dtype of the training step (bfloat16: mixed precision; parameters, "
                    "optimizer state and the loss stay float32)", ("float32", "bfloat16")),
    "tb_images_every": Int(10, "epochs between sample grids in TensorBoard (0 = none)", ge=0),
    "train_eval": Bool(False, "also score a fixed training subset each epoch (train_nll)"),
    "mesh": Str("", "device mesh: '' = every device on the data axis, or e.g. 'data=-1', 'members=5,data=2'"),
    "unroll": Int(1, "steps unrolled in the epoch's lax.scan (0 = all: no loop; conv models on CPU train "
                  "much faster unrolled, jax-ml/jax#12868)", ge=0),
    "loop": Choice("auto", "how an epoch runs its steps: one lax.scan (scan), or a host loop dispatching one compiled "
                   "step per step (host: convolution networks on a CPU, where an XLA loop slows convolution "
                   "gradients ~20x and full unrolling compiles for minutes); auto = host for a convolutional "
                   "family on a CPU with train.unroll = 1, else scan", ("auto", "scan", "host")),
    "update_order": Choice("alternating", "players of a multi-player family: each update sees the ones before "
                           "it (alternating) or all gradients at the same parameters (simultaneous)",
                           ("alternating", "simultaneous")),
    "curriculum": Ints((), "resolution curriculum: image side lengths shown before full resolution, e.g. (2, 4)",
                       ge=1),
    "curriculum_epochs": Int(1, "resolution curriculum: epochs per stage", ge=1),
    "curriculum_fade": Int(0, "resolution curriculum: the first epochs of a stage that blend in from the "
                           "previous one", ge=0),
    "easy_first": Str("", "easy-first curriculum: 'npy:<path>' (a score per training example, low = easy) or "
                      "'run:<run folder>' (that model's NLL)"),
    "easy_start": Float(0.25, "easy first: the share of the easiest examples drawn from at epoch 0",
                        gt=0.0, le=1.0),
    "easy_epochs": Int(5, "easy first: epochs until every example is drawn", ge=1),
}

CV = {
    "folds": Int(5, "k of k-fold cross-validation", ge=2),
    "strategy": Choice("vmap", "folds and settings trained at once (vmap), one after another (loop) or split "
                       "over devices (shard)", ("vmap", "loop", "shard")),
    "stratify": Bool(True, "stratify folds by label where the data have class labels"),
    "seed": Int(0, "the fold assignment", ge=0),
    "sweep": Dict("fields -> lists of values, e.g. {'optim': {'lr': [1e-3, 3e-3]}}; continuous ones are vmapped "
                  "with the folds, shape-changing ones looped"),
}

EVAL = {
    "batch_size": Int(100, "test examples per batch", ge=1),
    "n_samples": Int(64, "images in the sample grid", ge=1),
    "max_samples": Int(2500, "sample metrics: at most this many test examples and samples (O(n^2) metrics)",
                       ge=1),
    "classifier_dir": Str("runs/classifiers", "the domain classifiers behind FID / KID / IS, one per data "
                          "fingerprint"),
    "sample_metrics": Bool(True, "FID / KID / IS, precision / recall, ... from samples at evaluation"),
    "per_class": Int(50, "class-conditional models: samples per class for the classifier check and diversity",
                     ge=1),
    "features": Str("classifier", "images: the feature network of FID / KID / IS / precision-recall: 'classifier' "
                    "(the data's domain classifier, trained once) or 'inception:<weights .npz>' (the standard FID "
                    "Inception, genjax.eval.inception)"),
    "fid_stats": Str("", "with inception features: reference statistics (.npz with mu, sigma) to score FID "
                     "against as well ('': the test split's alone)"),
    "fid_seeds": Int(1, "with inception features: sample sets (seeds) FID is computed on; their mean and spread "
                     "are reported (EDM reports 3)", ge=1),
}

DATA = changeable("sample", DATA, "data_dir")  # where the data live, not what they are
TRAIN = changeable("resume", TRAIN, "epochs", "patience", "min_delta", "checkpoint_every", "checkpoint_minutes",
                   "on_nonfinite", "loss_rise", "tb_images_every", "val_batch_size", "grad_norm")  # fmt: skip
EVAL = changeable("eval", EVAL, *EVAL)

SECTIONS = {"data": DATA, "objective": OBJECTIVE, "optim": OPTIM, "train": TRAIN, "cv": CV, "eval": EVAL}


def model_fields() -> dict:
    """``model``: ``family`` and one block per family (each family declares its own)."""
    return {"family": Choice("vae", "the model family; its block model.<family> configures it", tuple(FAMILIES))}


def base_config() -> ml_collections.ConfigDict:
    """Every field at its declared default, the config locked: assigning a field that does not
    exist raises, naming the closest one ("Did you mean "epochs" instead of "epoch"?");
    ``with cfg.unlocked():`` adds fields on purpose (``cv.sweep`` and ``optim.players`` take any)."""
    c = ml_collections.ConfigDict({k: f.default for k, f in TOP.items()})
    for name, fields in SECTIONS.items():
        if name == "objective":
            c.model = _model_defaults()
        c[name] = _defaults(fields)
    c.lock()
    c.cv.sweep.unlock()
    c.optim.players.unlock()
    return c


def _defaults(fields) -> ml_collections.ConfigDict:
    from genjax.fields import defaults

    return defaults(fields)


def _model_defaults() -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict({"family": "vae"})
    for name, spec in FAMILIES.items():
        m[name] = _defaults(spec.fields)
    return m


def field(path: str):
    """The declaration of the field at ``path`` (``"optim.lr"``, ``"model.vae.beta"``), or ``None``."""
    parts = path.split(".")
    if len(parts) == 1:
        return TOP.get(parts[0])
    if parts[0] == "model":
        if len(parts) == 2:
            return model_fields().get(parts[1])
        spec = FAMILIES.get(parts[1])
        return spec.fields.get(parts[2]) if spec is not None and len(parts) == 3 else None
    section = SECTIONS.get(parts[0])
    return section.get(parts[1]) if section is not None and len(parts) == 2 else None


def validate(cfg, ignore_inactive: bool = False) -> None:
    """Fail with one sentence on an impossible config, naming the field and its value: an
    unknown section or field (with a did-you-mean), a value its declaration does not allow, a
    field set in a family block that is not the active one (it would be silently ignored; not
    checked with ``ignore_inactive``: a config whose family was switched on the command line, or
    a saved run's), a bad ``optim.players`` override or a ``cv.sweep`` value its field would
    refuse. The family's cross-field and data rules run when it is built
    (``genjax.models.build_family``)."""
    known = list(TOP) + ["model"] + list(SECTIONS)
    for k in cfg.keys():
        if k not in known:
            raise ValueError(f"config section {k!r} does not exist{did_you_mean(k, known)}; the config has "
                             f"{', '.join(known)}.")  # fmt: skip
    check_block({k: cfg[k] for k in TOP if k in cfg}, TOP, "")
    for name, fields in SECTIONS.items():
        if name in cfg:
            check_block(cfg[name], fields, name + ".")
    model = cfg.model
    mf = model_fields()
    for k in model.keys():
        if k not in mf and k not in FAMILIES:
            raise ValueError(f"config field model.{k} does not exist{did_you_mean(k, [*mf, *FAMILIES])}; model has "
                             f"family and one block per family ({', '.join(FAMILIES)}).")  # fmt: skip
    check_block({"family": model.family}, mf, "model.")
    active = model.family
    for name, spec in FAMILIES.items():
        if name not in model or (name != active and ignore_inactive):
            continue
        check_block(model[name], spec.fields, f"model.{name}.")
        if name != active:
            extra = changed(model[name], spec.fields)
            if extra:
                raise ValueError(
                    f"config field model.{name}.{extra[0]} is set to {model[name][extra[0]]!r}, but the active "
                    f"family is {active!r} (model.family), which never reads model.{name}; set it in "
                    f"model.{active} or choose model.family={name!r}."
                )
    players = cfg.optim.get("players") or {}
    for player, over in dict(players).items():
        if not hasattr(over, "keys"):
            raise ValueError(f"config field optim.players.{player} has the value {over!r}; it must be a mapping of "
                             "optim fields to values.")  # fmt: skip
        fields = {k: f for k, f in OPTIM.items() if k != "players"}
        check_block(over, fields, f"optim.players.{player}.")
    check_sweep(cfg)
    check_features(cfg)


def check_features(cfg) -> None:
    """``eval.features`` names a feature network that exists; ``eval.fid_stats`` a file."""
    from pathlib import Path

    feats = str(cfg.eval.features)
    kind, _, path = feats.partition(":")
    if feats != "classifier" and not (kind == "inception" and path):
        raise ValueError(f"eval.features must be 'classifier' or 'inception:<weights .npz>', got {feats!r}.")
    if kind == "inception" and not Path(path).expanduser().is_file():
        raise ValueError(f"eval.features={feats!r}: no such file (convert the published FID Inception weights with "
                         "tools/convert_inception.py).")  # fmt: skip
    stats = str(cfg.eval.fid_stats)
    if stats and kind != "inception":
        raise ValueError(f"eval.fid_stats={stats!r} holds Inception statistics; it needs "
                         "eval.features='inception:<weights .npz>'.")  # fmt: skip
    if stats and not Path(stats).expanduser().is_file():
        raise ValueError(f"eval.fid_stats={stats!r}: no such file.")


def _leaves(d, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if hasattr(v, "items"):
            out |= _leaves(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_sweep(cfg) -> None:
    """Every ``cv.sweep`` field exists (a model field in the active family's block), and each of
    its values passes exactly the check the field itself has."""
    for path, values in _leaves(cfg.cv.sweep).items():
        decl = field(path)
        sections = ("model", "objective", "optim", "train")
        if decl is None or decl.kind == "dict" or path.partition(".")[0] not in sections:
            near = did_you_mean(path, _sweepable_paths(cfg))
            raise ValueError(f"cv.sweep field {path!r} is not a model/objective/optim/train field of the config{near}.")
        parts = path.split(".")
        if parts[0] == "model" and (len(parts) != 3 or parts[1] != cfg.model.family):
            raise ValueError(f"cv.sweep field {path!r} is not in the active family's block "
                             f"model.{cfg.model.family}.")  # fmt: skip
        values = list(values) if isinstance(values, tuple | list) else [values]
        if not values:
            raise ValueError(f"cv.sweep field {path!r} has no values.")
        for v in values:
            why = decl.problem(list(v) if isinstance(v, tuple) else v)
            if why:
                raise ValueError(f"cv.sweep value {path}={v!r} is refused: {why}.")


def _sweepable_paths(cfg) -> list[str]:
    out = [f"{s}.{k}" for s in ("objective", "optim", "train") for k in SECTIONS[s]]
    return out + [f"model.{cfg.model.family}.{k}" for k in FAMILIES[cfg.model.family].fields]


def explain(cfg) -> str:
    """The resolved config, every field with its value, its description and its allowed values
    (``genjax config``). Only the active family's block is shown."""
    lines = describe(cfg, TOP, "")
    lines += describe(cfg.model, model_fields(), "model.")
    fam = cfg.model.family
    lines += describe(cfg.model[fam], FAMILIES[fam].fields, f"model.{fam}.")
    for name, fields in SECTIONS.items():
        lines += describe(cfg[name], fields, name + ".")
    return "\n".join(lines)


def _all_paths(cfg) -> list[str]:
    out = list(TOP) + ["model.family"] + [f"{s}.{k}" for s, fields in SECTIONS.items() for k in fields]
    return out + [f"model.{cfg.model.family}.{k}" for k in FAMILIES[cfg.model.family].fields]


def parse_value(decl, text: str):
    """A command-line string as the value of a field declared ``decl`` (``Field``)."""
    import ast

    t = text.strip()
    if decl.kind == "bool":
        low = t.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError("it must be true or false")
    if decl.kind == "str":
        return text
    try:
        if decl.kind == "int":
            return int(t)
        if decl.kind == "float":
            return float(t)
        if decl.kind in ("ints", "floats"):
            v = ast.literal_eval(t if t.startswith(("(", "[")) else f"({t},)")
            return tuple(v) if isinstance(v, tuple | list) else (v,)
    except (ValueError, SyntaxError):
        pass
    raise ValueError(f"it must be {decl.rule()}")


def override(cfg, args: list[str], when: str):
    """A saved run's config with ``--config.<path>=<value>`` overrides applied, each refused
    unless its field may change ``when`` (``Field.when``: ``sample`` for ``genjax sample``,
    ``eval`` for ``genjax eval``, ``resume`` for ``genjax train --resume``) and its value passes
    the field's check. Returns (the new config, ``{path: (old, new)}``); ``cfg`` is untouched."""
    from genjax.fields import WHEN, WHEN_COMMAND

    command = WHEN_COMMAND[when]
    new = cfg.copy_and_resolve_references()
    changes: dict = {}
    i = 0
    while i < len(args):
        a = args[i]
        if "=" in a:
            path, text = a[len("--config.") :].split("=", 1)
            i += 1
        elif i + 1 < len(args):
            path, text = a[len("--config.") :], args[i + 1]
            i += 2
        else:
            raise ValueError(f"{a} needs a value ({a}=VALUE).")
        decl = field(path)
        parts = path.split(".")
        if parts[0] == "model" and len(parts) == 3 and parts[1] in FAMILIES and parts[1] != cfg.model.family:
            raise ValueError(f"--config.{path}: the run's family is {cfg.model.family!r}, which never reads "
                             f"model.{parts[1]}.")  # fmt: skip
        if decl is None or decl.kind == "dict":
            raise ValueError(f"--config.{path}: the config has no such field{did_you_mean(path, _all_paths(cfg))}.")
        if WHEN.index(decl.when) > WHEN.index(when):
            may = [c for c in ("sample", "eval", "resume") if WHEN.index(decl.when) <= WHEN.index(c)]
            why = (f"only {' and '.join(WHEN_COMMAND[c] for c in may)} may" if may else
                   "it is fixed once the run began: it shapes the model or its training")  # fmt: skip
            raise ValueError(f"--config.{path}: {command} cannot change it; {why}.")
        try:
            value = parse_value(decl, text)
        except ValueError as e:
            raise ValueError(f"--config.{path} has the value {text!r}; {e}.") from None
        why = decl.problem(value)
        if why:
            raise ValueError(f"--config.{path} has the value {value!r}; {why}.")
        node = new
        for p in parts[:-1]:
            node = node[p]
        old = node[parts[-1]]
        node[parts[-1]] = value
        if old != value:
            changes[path] = (old, value)
    return new, changes


def changeable_paths(when: str) -> list[tuple[str, object]]:
    """``(path, Field)`` of every field a command at moment ``when`` may change (``Field.when``),
    the family blocks' included (``genjax sample --help`` lists them)."""
    from genjax.fields import WHEN

    ok = lambda f: WHEN.index(f.when) <= WHEN.index(when)  # noqa: E731
    out = [(k, f) for k, f in TOP.items() if ok(f)]
    out += [(f"{s}.{k}", f) for s, fields in SECTIONS.items() for k, f in fields.items() if ok(f)]
    out += [(f"model.{n}.{k}", f) for n, spec in FAMILIES.items() for k, f in spec.fields.items() if ok(f)]
    return out
