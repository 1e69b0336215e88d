"""The base experiment config. Experiments start from ``base_config()`` and change fields;
the CLI overrides any field (``--config.train.epochs=5``).

Sections: ``data``, ``model`` (``family`` and one block per family), ``objective`` (the
penalties every family takes), ``optim``, ``train``, ``cv``, ``eval``.
"""

from __future__ import annotations

import ml_collections

from genjax.models import FAMILIES


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "run"  # used in the default run-folder name
    c.seed = 0  # model init and training keys; data splits use data.seed

    c.data = ml_collections.ConfigDict(
        dict(
            name="digits",  # digits | mnist5k | text:[<path>] | npz:<path> | tfds:<name> | toy2d:<name>
            data_dir="",  # TFDS data_dir ('' = TFDS default)
            seed=0,
            val_fraction=0.1,
            test_fraction=0.2,  # used only when the source has no test split of its own
            train_size=0,  # >0: keep only this many training examples
            binarize="none",  # none | static | dynamic
            dequantize=False,
            scale="01",  # 01 | -11
            toy_n=10000,  # toy2d: training-pool size (the test set is a fifth of it)
            block_size=64,  # text: tokens per example (a window of the stream)
            tokens="char",  # text: char | byte
            text_chars=1_000_000,  # text: keep the first this many characters (0 = all)
        )
    )
    # model.family picks the family; each family owns its block model.<family> (its
    # architecture, objective and estimator settings: genjax/models/<family>.py default_config)
    c.model = ml_collections.ConfigDict({"family": "vae"})
    for name, spec in FAMILIES.items():
        c.model[name] = spec.default_config()
    c.objective = ml_collections.ConfigDict(
        dict(
            l1=0.0,  # L1 penalty on kernels (weights), added to every player's loss
            l2=0.0,  # L2 penalty on kernels (not decoupled: see optim.name='adamw' for that)
        )
    )
    c.optim = ml_collections.ConfigDict(
        dict(
            name="adam",  # adam | adamw | sgd
            lr=1e-3,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
            weight_decay=1e-4,  # adamw only
            momentum=0.9,  # sgd only
            nesterov=False,
            clip_norm=0.0,  # >0: clip_by_global_norm
            # constant | warmup_cosine | linear | exponential | step | plateau (genjax.train.optim)
            schedule="constant",
            warmup_steps=0,  # linear warm-up from 0, before any schedule
            final_lr_ratio=0.0,  # warmup_cosine, linear, exponential: the last step's fraction of lr
            step_at=(0.5, 0.75),  # step: fractions of the (post-warm-up) steps where lr drops
            step_factor=0.1,  # step: the drop
            plateau_factor=0.5,  # plateau: lr scale x this after plateau_patience epochs without
            plateau_patience=2,  # a validation NLL better than the best by more than plateau_min_delta
            plateau_min_delta=0.0,
            plateau_min_scale=0.0,
        )
    )
    # per-player overrides of any optim field, e.g. {"disc": {"lr": 4e-4, "schedule": "constant"}}
    c.optim.players = ml_collections.ConfigDict()
    c.train = ml_collections.ConfigDict(
        dict(
            epochs=50,
            batch_size=100,
            patience=0,  # early stopping: epochs without improvement; 0 = off
            min_delta=0.0,
            # patience: stop after `patience` epochs without an improvement by more than min_delta;
            # rise (the notes' rule): stop once NLL_val(t) > NLL_val(t - patience) + min_delta
            stop_rule="patience",
            keep_best=True,  # evaluate/return the best-validation parameters, not the last
            val_batch_size=500,
            # checkpoints: after epoch 1, then every checkpoint_every epochs or checkpoint_minutes
            # minutes (0 = no time rule), whichever comes first, and at the end
            checkpoint_every=10,
            checkpoint_minutes=10.0,
            on_nonfinite="halt",  # halt | skip: a step with a non-finite loss term or gradient
            # warn (once) when the epoch's training loss exceeds its running minimum m by more
            # than loss_rise * |m| (0 = never)
            loss_rise=10.0,
            # compute dtype of the training step: float32 | bfloat16 (mixed precision: parameters,
            # optimizer state and the loss stay float32; the forward and backward passes run in bf16)
            dtype="float32",
            tb_images_every=10,  # epochs between sample grids in TensorBoard (runs/<run>/tb); 0 = none
            train_eval=False,  # also score a fixed training subset each epoch (train_nll)
            # device mesh: "" = all devices on the data axis; or e.g. "data=-1", "members=5,data=2"
            # (members: folds / seeds / settings; data: each member's batch split over devices)
            mesh="",
            # steps unrolled in the epoch's lax.scan (0 = all: no loop). On CPU, convolution
            # gradients inside an XLA loop run ~20x slower (jax-ml/jax#12868): conv models on
            # CPU train much faster with 0, at the price of compile time
            unroll=1,
            # players of a multi-player family (a GAN): alternating (each update sees the ones
            # before it) | simultaneous (all gradients at the same parameters, applied together)
            update_order="alternating",
            # curricula (genjax.train.curriculum). Resolution: image side lengths shown before
            # full resolution, curriculum_epochs epochs each, the first curriculum_fade epochs of
            # a stage blending in from the previous one; e.g. (2, 4) on 8x8 digits
            curriculum=(),
            curriculum_epochs=1,
            curriculum_fade=0,
            # easy first: "npy:<path>" (one score per training example, low = easy) or
            # "run:<run folder>" (that model's NLL on this run's training examples); epoch t
            # draws from the easiest min(1, easy_start + (1 - easy_start) t / easy_epochs)
            easy_first="",
            easy_start=0.25,
            easy_epochs=5,
        )
    )
    c.cv = ml_collections.ConfigDict(
        dict(
            folds=5,
            strategy="vmap",  # vmap | loop | shard
            stratify=True,  # stratify folds by label where the data have class labels
            seed=0,  # fold assignment
            # continuous fields -> lists of values, e.g. {"optim": {"lr": [1e-3, 3e-3]}}; they
            # are vmapped together with the folds. Shape-changing fields (model.hidden, ...) are
            # looped, each value compiled separately.
            sweep=ml_collections.ConfigDict(),
        )
    )
    c.eval = ml_collections.ConfigDict(
        dict(
            batch_size=100,
            n_samples=64,  # images in the sample grid
            max_samples=2500,  # sample metrics: at most this many test examples and samples (O(n^2) metrics)
            classifier_dir="runs/classifiers",  # domain classifiers for FID/IS/KID, trained once per dataset
            sample_metrics=True,  # genjax eval/train: FID/KID/IS, precision/recall, ... from samples
            per_class=50,  # class-conditional models: samples per class for the classifier check and diversity
        )
    )
    return c


def _type_errors(cfg, base, prefix: str = ""):
    """Fields whose value has not the type of ``base_config()``'s default: a tuple of integers
    holding text, a number field holding a string (ml_collections checks scalars set through
    overrides; this also catches configs written by hand)."""
    for k, default in base.items():
        if k not in cfg:
            continue
        v, name = cfg[k], f"{prefix}{k}"
        if isinstance(default, ml_collections.ConfigDict):
            if isinstance(v, ml_collections.ConfigDict) and k not in ("sweep", "players"):
                yield from _type_errors(v, default, name + ".")
        elif isinstance(default, tuple | list) and default and all(isinstance(a, int | float) for a in default):
            number = lambda a: isinstance(a, int | float) and not isinstance(a, bool)  # noqa: E731
            if not isinstance(v, tuple | list) or not all(number(a) for a in v):
                yield name, v, "a tuple of numbers"
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                yield name, v, "true or false"
        elif isinstance(default, int | float):
            if isinstance(v, bool) or not isinstance(v, int | float):
                yield name, v, "a number"


def validate(cfg) -> None:
    """Fail with one sentence on an impossible config, naming the field and its value. (The
    optimizer's name, schedule and learning rate and ``train.on_nonfinite`` are checked where
    they are used, ``make_optimizer`` and ``make_epoch``, which every run builds before it
    writes anything.)"""
    for field, value, want in _type_errors(cfg, base_config()):
        raise ValueError(f"config field {field} has the value {value!r}; expected {want}.")
    checks = [
        ("data.train_size", cfg.data.train_size, cfg.data.train_size >= 0),
        ("data.scale", cfg.data.scale, cfg.data.scale in ("01", "-11")),
        ("train.epochs", cfg.train.epochs, cfg.train.epochs >= 1),
        ("train.batch_size", cfg.train.batch_size, cfg.train.batch_size >= 1),
        ("train.val_batch_size", cfg.train.val_batch_size, cfg.train.val_batch_size >= 1),
        ("train.patience", cfg.train.patience, cfg.train.patience >= 0),
        ("train.min_delta", cfg.train.min_delta, cfg.train.min_delta >= 0),
        ("train.stop_rule", cfg.train.stop_rule, cfg.train.stop_rule in ("patience", "rise")),
        ("train.checkpoint_every", cfg.train.checkpoint_every, cfg.train.checkpoint_every >= 1),
        ("train.checkpoint_minutes", cfg.train.checkpoint_minutes, cfg.train.checkpoint_minutes >= 0),
        ("train.loss_rise", cfg.train.loss_rise, cfg.train.loss_rise >= 0),
        ("train.tb_images_every", cfg.train.tb_images_every, cfg.train.tb_images_every >= 0),
        ("train.unroll", cfg.train.unroll, cfg.train.unroll >= 0),
        ("train.dtype", cfg.train.dtype, cfg.train.dtype in ("float32", "bfloat16")),
        ("train.update_order", cfg.train.update_order, cfg.train.update_order in ("alternating", "simultaneous")),
        ("optim.clip_norm", cfg.optim.clip_norm, cfg.optim.clip_norm >= 0),
        ("optim.weight_decay", cfg.optim.weight_decay, cfg.optim.weight_decay >= 0),
        ("optim.warmup_steps", cfg.optim.warmup_steps, cfg.optim.warmup_steps >= 0),
        ("objective.l1", cfg.objective.l1, cfg.objective.l1 >= 0),
        ("objective.l2", cfg.objective.l2, cfg.objective.l2 >= 0),
        ("model.family", cfg.model.family, cfg.model.family in FAMILIES),
        ("cv.folds", cfg.cv.folds, cfg.cv.folds >= 2),
        ("cv.strategy", cfg.cv.strategy, cfg.cv.strategy in ("vmap", "loop", "shard")),
        ("eval.batch_size", cfg.eval.batch_size, cfg.eval.batch_size >= 1),
        ("eval.n_samples", cfg.eval.n_samples, cfg.eval.n_samples >= 1),
        ("eval.max_samples", cfg.eval.max_samples, cfg.eval.max_samples >= 1),
    ]
    for field, value, ok in checks:
        if not ok:
            raise ValueError(f"config field {field} has the impossible value {value!r}.")
