"""The family protocol: everything the trainer, the CLI, the evaluation suite and the plots know
about a model family. They branch on the typed, optional capabilities below — never on a
family's name, never on string keys of a side dict.

A family is a handful of pure functions over a parameter pytree ``params`` — a dict
``{player_name: nnx.State}`` holding the whole state of that player's modules as ``nnx.split``
gives it (trainable ``nnx.Param``s and any other variables):

* ``init(key, example=None) -> params`` (``example``: a batch for data-dependent init)
* ``players`` — one ``Player`` per optimizer, updated in order each step;
  ``player.loss(params, batch, key, ctx) ->
  (loss, metrics)`` differentiates only the ``nnx.Param`` leaves of ``params[player.name]``.
  ``ctx`` is a ``Context``: the global step and the loss hyperparameters ``ctx.hp`` (scalars in
  the training state, so ``jax.vmap`` can train several values at once). A loss that changes
  non-trainable variables (spectral-norm vectors, ActNorm init) returns them in
  ``metrics["_vars"]``. A player with ``split_batch`` (a critic taking ``n_steps`` updates) gets a
  fresh slice of the step's batch for each update: the epoch then draws ``n_steps x batch_size``
  examples per step and every other player sees the first slice. A player with ``per_update = m``
  takes ``m x batch_size`` examples per update (a PacGAN discriminator packing m samples). ``post_update(params, ctx) ->
  params`` runs after the player's updates (e.g. an EMA copy of the generator's weights kept in
  ``params["gen_ema"]``, a params entry that is no player's). ``lr`` overrides ``optim.lr`` for
  this player (two time-scale GAN updates). ``params``: the entries of ``params`` the player
  differentiates when they are not just ``params[name]`` (an adversarial autoencoder's
  reconstruction player updates ``("enc", "dec")``, its regularization player ``("enc",)``).
* ``hparams`` — the loss hyperparameters and their configured values (a VAE's ``beta``); each is
  sweepable, vmapped with the folds, as ``model.<family>.<name>``.
* ``sample(params, key, n, cond=None) -> x``
* ``log_prob(params, x, key) -> [B]``: exact, or an estimate/bound, as ``log_prob_kind`` says;
  ``None`` for an implicit model (a GAN): then training has no validation NLL and no early
  stopping, and evaluation uses sample-based metrics only. A family with ``labelled = True``
  scores labelled examples: ``log_prob(params, x, key, y)`` (and so its ``val_log_prob`` and
  ``bound``) — log p(x | y) for a conditional generator, log p(y | x) for a predictor — and
  every held-out score (validation, k-fold, test) hands it the split's labels.

Families are built by ``make(fcfg, data: DataInfo)`` from their own config block
(``model.<family>``) and what the data say; they never read the data, optim or train sections.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Context(NamedTuple):
    """What a loss may read besides params, batch and key."""

    step: Any  # int32 global step
    hp: dict  # loss hyperparameters {name: scalar array}


class Player(NamedTuple):
    """One optimizer's worth of a model: its parameters ``params[name]`` and its loss."""

    name: str
    loss: Callable[..., Any]  # (params, batch, key, ctx) -> (loss, metrics)
    n_steps: int = 1  # updates per training step (a critic's n_critic)
    split_batch: bool = False  # each of the n_steps updates gets its own slice of the batch
    post_update: Callable[..., Any] | None = None  # (params, ctx) -> params, after the updates
    lr: float | None = None  # this player's learning rate (None: optim.lr)
    per_update: int = 1  # batches of train.batch_size one update takes (a packed discriminator's m)
    params: tuple[str, ...] = ()  # the params entries it updates, when not just params[name] (an AAE's encoder)


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a family may know about the data: per-example shape, value range, labels."""

    shape: tuple  # (H, W, C) for images, (D,) for vectors
    scale: str = "01"  # '01' | '-11': the range image pixels live in
    n_classes: int = 0  # classes of the labels (0: unlabelled)
    # the values are this many evenly spaced levels over the scale's range (0: continuous; None:
    # unknown, a family built for a shape alone: then no data-fit rule can be checked)
    levels: int | None = None
    vocab: int = 0  # token data (text): examples are int token ids in 0..vocab-1 (0: not token data)
    target_shape: tuple | None = None  # real-valued targets y: their per-example shape (None: none)
    max_norm: float = 0.0  # the largest Euclidean norm of a training example (0: unknown)

    @classmethod
    def of(cls, splits) -> DataInfo:
        """From ``genjax.data.DataSplits``: its shape, scale, the classes of its labels and its
        discrete levels (2 for binary or binarized images, the source's grey levels for images
        that are not dequantized, 0 for continuous data) and, for text, its vocabulary size."""
        labels = [d["y"] for d in (splits.train, splits.test) if "y" in d]
        real = "y" in splits.train and not np.issubdtype(np.asarray(splits.train["y"]).dtype, np.integer)
        n_classes = 1 + max(int(y.max()) for y in labels) if "y" in splits.train and not real else 0
        target = tuple(int(s) for s in np.shape(splits.train["y"])[1:]) if real else None
        levels = 0 if splits.epoch_transform == "dequantize" else (2 if splits.discrete else int(splits.levels or 0))
        vocab = len(splits.vocab) if getattr(splits, "vocab", None) is not None else 0
        x = np.asarray(splits.train["x"])
        sq = np.sum(np.square(x.reshape(len(x), -1), dtype=np.float64), axis=1) if len(x) and not vocab else [0.0]
        norm = float(np.sqrt(np.max(sq)))
        return cls(tuple(int(s) for s in splits.shape), str(splits.scale), n_classes, levels, vocab, target, norm)

    @property
    def image(self) -> bool:
        return len(self.shape) == 3

    @property
    def num_dims(self) -> int:
        return math.prod(self.shape)


@dataclasses.dataclass(frozen=True)
class Latent:
    """A latent-variable model's encoder and decoder (figures: reconstructions, interpolation;
    the posterior-collapse diagnostics). A conditional model's functions take the labels ``y``
    as a last argument (``conditional``)."""

    dim: int
    encode: Callable[..., Any]  # (params, x[, y]) -> (mean [B, dim], log_var [B, dim])
    decode_mean: Callable[..., Any]  # (params, z [B, dim][, y]) -> E[x | z]
    recon: Callable[..., Any] | None = None  # (params, x[, y]) -> reconstruction (default: decode(encode))
    conditional: bool = False

    def reconstruct(self, params, x, *y):
        """The model's reconstruction: by default the decoder mean at the posterior mean."""
        if self.recon is not None:
            return self.recon(params, x, *y)
        return self.decode_mean(params, self.encode(params, x, *y)[0], *y)


@dataclasses.dataclass(frozen=True)
class Codes:
    """A first stage a second model can be trained on (``data.name = 'latents:<run>'``): the
    codes of x and the decoder back to data space.

    ``kind`` ``"discrete"``: ``encode`` gives indices in 0..vocab-1 on a grid ``shape`` (h, w) of
    code positions; ``"continuous"``: vectors of ``shape`` (dim,). ``log_px(params, x, c)`` is
    the decoder's log p(x | c) ``[B]`` (None: the decoder defines no likelihood); ``log_q(params,
    x, c)`` the encoder's log q(c | x) ``[B]`` for codes drawn by ``encode(params, x, key)``
    (None: the encoder is a point mass — on discrete codes its entropy is 0 and the two-stage ELBO
    log p(x | c(x)) + log p(c(x)) still bounds log p(x); on continuous codes it bounds nothing)."""

    kind: str
    shape: tuple
    vocab: int
    encode: Callable[..., Any]  # (params, x, key=None) -> codes [B, *shape] (key None: q's mode)
    decode: Callable[..., Any]  # (params, codes) -> E[x | codes], data space
    log_px: Callable[..., Any] | None = None
    log_q: Callable[..., Any] | None = None
    draw: Callable[..., Any] | None = None  # (params, codes, key) -> x ~ p(x | codes) (None: the mean)


@dataclasses.dataclass(frozen=True)
class Curves:
    """How the training-curve figure reads the logged metrics: the training curve (``sign`` x
    ``metric``, named ``label``) and the terms drawn in a side panel."""

    metric: str = "loss"
    sign: float = 1.0
    label: str = "train loss"
    terms: tuple[str, ...] = ()
    terms_title: str = ""


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A model of a target y given an input x, p(y | x) (``genjax.eval.predictive`` scores it).

    ``kind``: ``"class"`` (``probs(params, x) -> [B, C]``) or ``"real"`` (``mean(params, x)``
    and ``interval(params, x, level) -> (lo, hi)``, the central ``level`` predictive interval,
    both shaped like y)."""

    kind: str
    probs: Callable[..., Any] | None = None
    mean: Callable[..., Any] | None = None
    interval: Callable[..., Any] | None = None
    std: Callable[..., Any] | None = None  # (params, x) -> predictive std, shaped like y


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    init: Callable[..., Any]
    players: tuple[Player, ...]
    sample: Callable[..., Any]
    log_prob: Callable[..., Any] | None
    log_prob_kind: str  # "exact" | "importance-sampled estimate" | "bound" | "none"
    hparams: dict[str, float] = dataclasses.field(default_factory=dict)
    # --- optional capabilities ---
    val_log_prob: Callable[..., Any] | None = None  # a cheaper estimator for per-epoch validation
    bound: Callable[..., Any] | None = None  # (params, x, key) -> [B] lower bound on log p(x)
    bound_name: str = "elbo"  # how eval.json names the bound
    latent: Latent | None = None
    codes: Codes | None = None  # a first stage for a second model over its codes (latents:<run>)
    modules: Callable[..., Any] | None = None  # params -> nnx.Module (the parameter table)
    set_dropout: Callable[..., Any] | None = None  # (params, rate) -> params: rate as a setting
    progress: tuple[str, ...] = ("loss",)  # metrics shown on the progress bar
    curves: Curves = Curves()
    samplers: Mapping[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)  # other samplers
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # recorded with eval results
    tokens: bool = False  # models sequences of token ids (text data, DataInfo.vocab > 0)
    labelled: bool = False  # log_prob / val_log_prob / bound take the labels: (params, x, key, y)
    classes: int = 0  # >0: sample(params, key, n, cond) draws class cond[i] (int [n]) for row i
    predictor: Predictor | None = None  # a model of y given x (cond = x in sample)
    event_dims: int = 0  # dimensions of what log_prob scores, for bits/dim (0: the data's)
    convolutional: bool = False  # the training step runs convolutions (train.loop='auto' picks a host loop on CPU)
    # sampling with settings given at call time: (params, key, n, cond=None, *, temperature=None,
    # top_k=None, prompt=None) -> samples (a token model: prompt = the first token ids)
    generate: Callable[..., Any] | None = None
    # a deterministic sampler as a map of its standard-normal draw: (params, z [n, ...], cond=None)
    # -> samples; sample(params, key, n) draws z ~ N(0, I) and applies it (the pairs reflow trains on)
    decode_noise: Callable[..., Any] | None = None
    # what log_prob computes, in words for the reports (default: log_prob_kind), and what the
    # per-epoch validation estimator is when it is another one than log_prob ("": the same)
    estimator: str = ""
    val_estimator: str = ""

    @property
    def batch_multiple(self) -> int:
        """Examples drawn per step, in units of ``train.batch_size`` (``batch_multiple``)."""
        return batch_multiple(self.players)

    @property
    def validation_log_prob(self) -> Callable[..., Any] | None:
        """The estimator the epoch scores validation data with (``val_log_prob`` or ``log_prob``)."""
        return self.val_log_prob or self.log_prob

    def sweepable(self) -> tuple[str, ...]:
        """The family's fields (in its config block) that vmap: its loss hyperparameters and,
        where it can set it per member, ``dropout``."""
        return tuple(self.hparams) + (("dropout",) if self.set_dropout is not None else ())


def require_data(data: DataInfo, need: str, what: str) -> None:
    """Refuse data a likelihood does not fit, in one sentence that names the conversion: ``need``
    is ``"binary"`` (a Bernoulli likelihood: values in {0, 1}) or ``"continuous"`` (a density:
    continuous or dequantized data; on discrete values its NLL is no likelihood of them).
    ``what`` names the setting, e.g. ``"model.vae.likelihood='bernoulli'"``."""
    if data.vocab or data.levels is None:  # token data (build_family names that mismatch), or unknown data
        return
    levels = int(data.levels)
    if need == "binary":
        if levels == 2 and data.scale == "01":
            return
        if levels == 2:
            raise ValueError(f"{what} scores values in {{0, 1}}; these binary images are scaled to [-1, 1]: set "
                             "data.scale='01'.")  # fmt: skip
        if levels > 2:
            raise ValueError(f"{what} scores binary data, but these images take {levels} grey levels; binarize them "
                             "(data.binarize='dynamic' or 'static'), or use a density on dequantized data "
                             "(a Gaussian likelihood with data.dequantize=True).")  # fmt: skip
        raise ValueError(f"{what} scores binary data, but these data are continuous; its NLL would be meaningless. "
                         "Use a continuous likelihood (e.g. 'gaussian'), or binarize images "
                         "(data.binarize).")  # fmt: skip
    if need == "continuous" and levels:
        kind = "binary" if levels == 2 else f"on {levels} discrete levels"
        fix = ("a Bernoulli / discrete likelihood" if levels == 2 else
               "data.dequantize=True (uniform noise within each level; bits/dim then count the levels)")  # fmt: skip
        raise ValueError(f"{what} is a density over continuous values, but these data are {kind}; a density at "
                         f"discrete points is not their likelihood. Use {fix}.")  # fmt: skip


def condition_vector(y, n_classes: int):
    """The condition ``[B, C]`` a conditional model reads from labels ``y``: their one-hot for
    ``n_classes > 0`` class labels, else the real-valued targets flattened per example."""
    if n_classes:
        return jax.nn.one_hot(jnp.asarray(y, jnp.int32), n_classes)
    return jnp.asarray(y, jnp.float32).reshape(jnp.shape(y)[0], -1)


def batch_multiple(players) -> int:
    """Batches of ``train.batch_size`` drawn per training step: the most any player uses, a
    split-batch player ``n_steps x per_update``, any other ``per_update``."""
    return max(p.per_update * (p.n_steps if p.split_batch else 1) for p in players)
