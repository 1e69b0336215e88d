"""The base experiment config. Experiments start from ``base_config()`` and change fields;
the CLI overrides any field (``--config.train.epochs=5``).

Sections: ``data``, ``model``, ``objective``, ``optim``, ``train``, ``eval``.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "run"  # used in the default run-folder name
    c.seed = 0  # model init and training keys; data splits use data.seed

    c.data = ml_collections.ConfigDict(
        dict(
            name="digits",  # digits | npz:<path> | tfds:<name> | toy2d:<name>
            data_dir="",  # TFDS data_dir ('' = TFDS default)
            seed=0,
            val_fraction=0.1,
            test_fraction=0.2,  # used only when the source has no test split of its own
            train_size=0,  # >0: keep only this many training examples
            binarize="none",  # none | static | dynamic
            dequantize=False,
            scale="01",  # 01 | -11
            toy_n=10000,  # toy2d: training-pool size (the test set is a fifth of it)
        )
    )
    c.model = ml_collections.ConfigDict(
        dict(
            family="vae",  # vae | flow | gan
            arch="mlp",  # mlp | conv
            hidden=(256, 128),  # MLP widths, encoder side (the decoder mirrors them)
            channels=(32, 64),  # conv channels, encoder side
            activation="relu",
            dropout=0.0,
            latent_dim=16,
            likelihood="bernoulli",  # bernoulli | gaussian
            gaussian_std=0.1,  # gaussian decoder: the fixed std, or the initial one if learned
            learn_std=False,
            # flows (family='flow'); hidden and activation above are the conditioners'
            flow="realnvp",  # realnvp | nice | spline | maf | iaf
            n_layers=8,
            bins=8,  # spline bins
            bound=4.0,  # spline range [-bound, bound]; identity outside
            actnorm=True,
            logit_alpha=0.05,  # images: logit(a + (1 - 2a) x) before the flow
            levels=2,  # glow / realnvp_ms: scales
            steps=4,  # glow / realnvp_ms: flow steps per scale
            flow_channels=64,  # glow / realnvp_ms: conv conditioner width
            # GANs (family='gan'): hidden = generator widths; channels = discriminator side (the
            # generator mirrors them); latent_dim = z size; dropout applies to the discriminator
            disc_hidden=(256, 256),  # MLP discriminator widths
            disc_activation="leaky_relu",
            spectral_norm=False,  # every discriminator layer spectrally normalized
            conditional=False,  # class-conditional G and (projection) D
            n_classes=10,
            ema=0.0,  # >0: decay of the generator-weight moving average used for sampling
            output="auto",  # generator output: auto | linear | tanh | sigmoid
        )
    )
    c.objective = ml_collections.ConfigDict(
        dict(
            name="elbo",  # vae: elbo | iwae; gan: gan | nsgan | wgan | hinge
            beta=1.0,  # beta-VAE weight on the KL (its final value under a schedule)
            k=5,  # iwae: importance samples
            kl_schedule="constant",  # constant | linear | cyclical
            warmup_steps=0,  # linear: steps to reach beta
            cycle_period=1000,  # cyclical: steps per cycle
            cycle_ratio=0.5,  # cyclical: share of a cycle spent rising
            l1=0.0,  # L1 penalty on kernels (weights), added to every player's loss
            l2=0.0,  # L2 penalty on kernels (not decoupled: see optim.name='adamw' for that)
            n_critic=1,  # gan: discriminator updates per generator update
            gp=0.0,  # gan: gradient-penalty weight (WGAN-GP: 10)
            r1=0.0,  # gan: R1 weight gamma (penalty gamma/2 ||grad D(x)||^2)
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
            schedule="constant",  # constant | warmup_cosine
            warmup_steps=0,
            final_lr_ratio=0.0,
            disc_lr=0.0,  # gan: the discriminator's own learning rate (0 = lr)
        )
    )
    c.train = ml_collections.ConfigDict(
        dict(
            epochs=50,
            batch_size=100,
            patience=0,  # early stopping: epochs without improvement; 0 = off
            min_delta=0.0,
            keep_best=True,  # evaluate/return the best-validation parameters, not the last
            val_samples=10,  # importance samples for the validation NLL each epoch
            val_batch_size=500,
            checkpoint_every=10,  # epochs; a checkpoint is also written at the end
            train_eval=False,  # also score a fixed training subset each epoch (train_nll)
        )
    )
    c.cv = ml_collections.ConfigDict(
        dict(
            folds=5,
            strategy="vmap",  # vmap | loop | shard
            stratify=True,  # stratify folds by label where the data have labels
            seed=0,  # fold assignment
            # continuous fields -> lists of values, e.g. {"optim": {"lr": [1e-3, 3e-3]}}; they
            # are vmapped together with the folds. Shape-changing fields (model.hidden, ...) are
            # looped, each value compiled separately.
            sweep=ml_collections.ConfigDict(),
        )
    )
    c.eval = ml_collections.ConfigDict(
        dict(
            nll_samples=1000,  # importance samples for the held-out NLL
            nll_chunk=100,  # samples per chunk (bounds memory)
            batch_size=100,
            n_samples=64,  # images in the sample grid
            max_samples=2500,  # sample metrics: at most this many test examples and samples (O(n^2) metrics)
            classifier_dir="runs/classifiers",  # domain classifiers for FID/IS/KID, trained once per dataset
            sample_metrics=True,  # genjax eval/train: FID/KID/IS, precision/recall, ... from samples
        )
    )
    return c


def validate(cfg) -> None:
    """Fail with one sentence on an impossible config."""
    checks = [
        ("train.epochs", cfg.train.epochs, cfg.train.epochs >= 1),
        ("train.batch_size", cfg.train.batch_size, cfg.train.batch_size >= 1),
        ("train.patience", cfg.train.patience, cfg.train.patience >= 0),
        ("train.min_delta", cfg.train.min_delta, cfg.train.min_delta >= 0),
        ("train.val_samples", cfg.train.val_samples, cfg.train.val_samples >= 1),
        ("train.checkpoint_every", cfg.train.checkpoint_every, cfg.train.checkpoint_every >= 1),
        ("model.latent_dim", cfg.model.latent_dim, cfg.model.latent_dim >= 1),
        ("model.dropout", cfg.model.dropout, 0.0 <= cfg.model.dropout < 1.0),
        ("model.gaussian_std", cfg.model.gaussian_std, cfg.model.gaussian_std > 0),
        ("objective.beta", cfg.objective.beta, cfg.objective.beta >= 0),
        ("objective.l1", cfg.objective.l1, cfg.objective.l1 >= 0),
        ("objective.l2", cfg.objective.l2, cfg.objective.l2 >= 0),
        ("eval.nll_samples", cfg.eval.nll_samples, cfg.eval.nll_samples >= 1),
        ("eval.nll_chunk", cfg.eval.nll_chunk, cfg.eval.nll_chunk >= 1),
        ("cv.folds", cfg.cv.folds, cfg.cv.folds >= 2),
        ("cv.strategy", cfg.cv.strategy, cfg.cv.strategy in ("vmap", "loop", "shard")),
    ]
    for field, value, ok in checks:
        if not ok:
            raise ValueError(f"config field {field} has the impossible value {value!r}.")
