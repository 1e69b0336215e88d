"""The predictor family: a conditional model p(y | x) of a target y given an input x, an MLP or
conv network (``genjax.nn.predictor``) with a likelihood head, trained by maximum likelihood
(or the focal loss) through the same engine as every generative family, so k-fold, sweeps and
early stopping apply unchanged. Data: inputs ``x`` with integer class labels or real targets
``y`` (``toy1d:hetero``, digits, ``npz`` / arrays with labels). ``log_prob(params, x, key, y)``
is the exact log p(y | x) (``Family.labelled``); the held-out NLL is -mean log p(y | x).

``model.predictor.likelihood`` (per example, in nats):

* ``gaussian`` — N(y | mu(x), sigma^2) with one learned variance per target dimension
  (homoscedastic): the mean is the least-squares (MSE) fit, the variance its residual variance;
* ``heteroscedastic`` — N(y | mu(x), sigma^2(x)), the network predicting the mean and the
  log-variance per input, floored at ``min_var`` (Nix & Weigend 1994);
* ``student_t`` — t_nu(y | mu(x), s(x)) with ``df`` = nu degrees of freedom (heavy tails);
* ``categorical`` — softmax(f(x))[y], trained on the cross-entropy;
* ``focal`` — the same categorical model trained on the focal loss (Lin et al. 2017)
  -alpha_y (1 - p_y)^gamma log p_y; ``gamma`` is a loss hyperparameter (sweepable) and
  ``class_weights`` the per-class alpha (empty: alpha = 1). Its ``log_prob`` is still the
  categorical log-likelihood: the focal loss is a training objective, not a likelihood.

``sample(params, key, n, cond=x)`` draws y ~ p(y | x) for the ``n`` inputs ``cond``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from genjax.fields import Choice, Float, Floats, Ints, defaults
from genjax.models.base import Curves, DataInfo, Family, Player, Predictor
from genjax.nn.layers import ACTIVATIONS, set_dropout_rate
from genjax.nn.predictor import PredictorNet
from genjax.objectives import likelihood as L

REAL = ("gaussian", "heteroscedastic", "student_t")
CLASS = ("categorical", "focal")


FIELDS = {
    "arch": Choice("mlp", "the network: an MLP, or convolutions then an MLP", ("mlp", "conv")),
    "hidden": Ints((64, 64), "MLP widths (after the convs for arch=conv)", ge=1),
    "channels": Ints((16, 32), "conv channels (arch=conv)", ge=1),
    "activation": Choice("relu", "hidden-layer activation", ACTIVATIONS),
    "dropout": Float(0.0, "dropout rate", ge=0.0, lt=1.0),
    "likelihood": Choice("heteroscedastic", "the head p(y | x) (module docstring)", REAL + CLASS),
    "min_var": Float(1e-4, "heteroscedastic / student_t: variance (squared scale) floor", ge=0.0),
    "df": Float(4.0, "student_t: degrees of freedom", gt=0.0),
    "gamma": Float(2.0, "focal: the focusing exponent (0: cross-entropy)", ge=0.0),
    "class_weights": Floats((), "focal: per-class alpha (empty: 1 for every class)", ge=0.0),
}


def default_config() -> ml_collections.ConfigDict:
    """``model.predictor``: the network and its likelihood head (``FIELDS``)."""
    return defaults(FIELDS)


LEGACY = None  # added after the config blocks: old flat configs hold none of its fields


class PredictorModule(nnx.Module):
    def __init__(self, mcfg, in_shape, n_out: int, n_var: int, *, rngs: nnx.Rngs):
        self.net = PredictorNet(mcfg.arch, in_shape, n_out, hidden=tuple(mcfg.hidden), channels=tuple(mcfg.channels),
                                act=mcfg.activation, dropout=float(mcfg.dropout), rngs=rngs)  # fmt: skip
        # the homoscedastic Gaussian's one log-variance per target dimension
        self.log_var = nnx.Param(jnp.zeros((n_var,), jnp.float32)) if n_var else None


def make_predictor(mcfg, data: DataInfo) -> Family:
    """The predictor family for inputs of shape ``data.shape`` and the data's labels or targets."""
    lik = mcfg.likelihood
    if lik in CLASS and data.n_classes < 2:
        raise ValueError(
            f"model.predictor.likelihood={lik!r} needs integer class labels (2 or more classes); "
            + ("these data have real-valued targets." if data.target_shape is not None else "these data have none.")
        )
    if lik in REAL and data.target_shape is None:
        raise ValueError(
            f"model.predictor.likelihood={lik!r} needs real-valued targets y; "
            + (
                "these data have class labels (use 'categorical' or 'focal')."
                if data.n_classes
                else "these data have none."
            )
        )
    weights = tuple(float(w) for w in mcfg.class_weights)
    if weights and len(weights) != data.n_classes:
        raise ValueError(
            f"model.predictor.class_weights must be {data.n_classes} non-negative numbers (one per class), "
            f"got {list(weights)}."
        )
    in_shape = tuple(int(s) for s in data.shape)
    d = math.prod(data.target_shape) if lik in REAL else 0
    n_out = {"gaussian": d, "heteroscedastic": 2 * d, "student_t": 2 * d}.get(lik, data.n_classes)
    n_var = d if lik == "gaussian" else 0
    min_var, df = float(mcfg.min_var), float(mcfg.df)
    alpha = jnp.asarray(weights, jnp.float32) if weights else None

    def new(rngs):
        return PredictorModule(mcfg, in_shape, n_out, n_var, rngs=rngs)

    graphdef, _ = nnx.split(nnx.eval_shape(lambda: new(nnx.Rngs(0))))

    def module(params) -> PredictorModule:
        return nnx.merge(graphdef, params["model"])

    def init(key, example=None):
        return {"model": nnx.split(new(nnx.Rngs(key)))[1]}

    def head(m, x, key=None):
        """The likelihood's parameters: (loc [B, d], log variance or log scale [B, d]) or logits [B, C]."""
        out = m.net(x, key).astype(jnp.float32)
        if lik == "gaussian":
            return out, jnp.broadcast_to(m.log_var[...], out.shape)
        if lik in REAL:
            return tuple(jnp.split(out, 2, axis=-1))
        return out

    def nll(m, x, y, key=None):
        """-log p(y | x) ``[B]``."""
        h = head(m, x, key)
        if lik in CLASS:
            return L.categorical_nll(h, y)
        y = y.reshape(y.shape[0], -1)
        if lik == "student_t":  # h[1]: log scale; the floor applies to the squared scale
            return L.student_t_nll(y, h[0], h[1], df, min_scale=math.sqrt(min_var))
        return L.heteroscedastic_gaussian_nll(y, h[0], h[1], min_var if lik == "heteroscedastic" else 0.0)

    def log_prob(params, x, key, y):
        return -nll(module(params), x, y)

    def loss(params, batch, key, ctx):
        m = module(params)
        x, y = batch["x"], batch["y"]
        if lik == "focal":
            fl = L.focal_loss(head(m, x, key), y, ctx.hp["gamma"], alpha)
            return jnp.mean(fl), {"nll": jnp.mean(nll(m, x, y))}
        v = jnp.mean(nll(m, x, y, key))
        return v, {"nll": v}

    def t_scale(h):
        """The Student-t scale s(x) = exp(log s) + sqrt(min_var), as ``nll`` uses it."""
        return jnp.exp(h[1]) + math.sqrt(min_var)

    def scale(h):
        """Predictive std of each target dimension (Student-t: s sqrt(nu / (nu - 2)), inf for nu <= 2)."""
        if lik == "student_t":
            return t_scale(h) * (math.sqrt(df / (df - 2)) if df > 2 else jnp.inf)
        return jnp.sqrt(jnp.exp(h[1]) + (min_var if lik == "heteroscedastic" else 0.0))

    def interval(params, x, level: float):
        """The central ``level`` interval of p(y | x): loc -+ q s, q the normal's (or t's) quantile."""
        from scipy import stats  # a host-side quantile; imported here, not with every family

        h = head(module(params), x)
        p = 0.5 + float(level) / 2
        if lik == "student_t":
            half = float(stats.t.ppf(p, df)) * t_scale(h)
        else:
            half = float(stats.norm.ppf(p)) * scale(h)
        return h[0] - half, h[0] + half

    def sample(params, key, n, cond=None):
        """y ~ p(y | x) for the ``n`` inputs ``cond``."""
        if cond is None:
            raise ValueError("the predictor samples y given inputs x: pass them as cond.")
        x = jnp.asarray(cond)[:n]
        h = head(module(params), x)
        if lik in CLASS:
            return jax.random.categorical(key, h)
        if lik == "student_t":
            return h[0] + t_scale(h) * jax.random.t(key, df, h[0].shape)
        return h[0] + scale(h) * jax.random.normal(key, h[0].shape)

    if lik in CLASS:
        pred = Predictor("class", probs=lambda params, x: jax.nn.softmax(head(module(params), x), -1))
    else:
        pred = Predictor(
            "real",
            mean=lambda params, x: head(module(params), x)[0],
            interval=interval,
            std=lambda params, x: scale(head(module(params), x)),
        )
    return Family(
        name="predictor",
        convolutional=mcfg.arch == "conv",
        init=init,
        players=(Player("model", loss),),
        sample=sample,
        log_prob=log_prob,
        log_prob_kind="exact",
        estimator="exact -log p(y | x)",
        hparams={"gamma": float(mcfg.gamma)} if lik == "focal" else {},
        modules=module,
        set_dropout=lambda params, rate: {n: set_dropout_rate(p, rate) for n, p in params.items()},
        progress=("loss",),
        curves=Curves("nll", 1.0, "train NLL  -log p(y|x)"),
        labelled=True,
        predictor=pred,
        event_dims=max(d, 1),
        info={"likelihood": lik},
    )
