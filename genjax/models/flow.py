"""Normalizing flows: exact likelihood by the change of variables (Dinh et al. 2017;
Papamakarios et al. 2021, "Normalizing Flows for Probabilistic Modeling and Inference").

    log p(x) = log N(f(x); 0, I) + log|det df/dx|,      x = f^{-1}(z), z ~ N(0, I)

trained by maximum likelihood (the forward KL from the data). All fields live in the config
block ``model.flow`` (``default_config``); ``kind``:

* ``realnvp`` — affine couplings with alternating masks (+ ActNorm);
* ``nice`` — additive couplings;
* ``spline`` — rational-quadratic spline couplings with identity tails outside
  [-bound, bound] (Durkan et al. 2019);
* ``maf`` — masked autoregressive layers with reversals between them (Papamakarios et al. 2017);
* ``iaf`` — inverse autoregressive layers (cheap sampling, D passes to evaluate a density);
* ``glow`` / ``realnvp_ms`` — images only: the multi-scale architecture (``levels``
  scales of ``steps`` steps, conv conditioners of ``channels`` channels).

``conditional = True`` gives a conditional flow p(x | c) (Winkler et al. 2019): the context c
— the label one-hot, or the data's real-valued targets — is wired from the data's labels into
every coupling network (concatenated to its input; broadcast over an image as constant channels)
and every MADE (added to its first hidden layer), so the base N(0, I) is pushed to a different
density for each c, each exactly normalized. ``log_prob(params, x, key, y)`` is log p(x | c)
(``Family.labelled``); ``sample(..., cond)`` draws for given classes.

The vector flows flatten images. Images pass first through the logit transform
y = logit(a + (1 - 2a) x) with its Jacobian counted, so ``log_prob`` is a density over the
(dequantized) data in [0, 1] and bits/dim converts it to the 256-level (or 17-level) pixel space.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from genjax.fields import Bool, Choice, Float, Int, Ints, defaults
from genjax.models.base import Curves, DataInfo, Family, Player, condition_vector, require_data
from genjax.nn.flows import (
    MAF,
    ActNorm,
    Coupling,
    Flow,
    LogitTransform,
    MultiScale,
    Permute,
    Reshape,
    alternating_mask,
)
from genjax.nn.layers import ACTIVATIONS
from genjax.objectives.likelihood import standard_normal_log_prob

FLOWS = ("realnvp", "nice", "spline", "maf", "iaf", "glow", "realnvp_ms")


FIELDS = {
    "kind": Choice("realnvp", "the flow (module docstring); glow and realnvp_ms take images only", FLOWS),
    "hidden": Ints((256, 128), "conditioner MLP widths (vector flows)", ge=1),
    "activation": Choice("relu", "conditioner activation", ACTIVATIONS),
    "n_layers": Int(8, "coupling / autoregressive layers (vector flows)", ge=1),
    "bins": Int(8, "spline: bins per dimension", ge=2),
    "bound": Float(4.0, "spline: the range [-bound, bound]; identity outside", gt=0.0),
    "actnorm": Bool(True, "an ActNorm layer before each coupling (data-dependent init)"),
    "logit_alpha": Float(0.05, "images: logit(a + (1 - 2a) x) before the flow", gt=0.0, lt=0.5),
    "levels": Int(2, "glow / realnvp_ms: scales", ge=1),
    "steps": Int(4, "glow / realnvp_ms: flow steps per scale", ge=1),
    "channels": Int(64, "glow / realnvp_ms: conv conditioner width", ge=1),
    "conditional": Bool(False, "condition every layer on the labels (one-hot) or real targets"),
}


def default_config() -> ml_collections.ConfigDict:
    """``model.flow``: the flow and its conditioners (``FIELDS``)."""
    return defaults(FIELDS)


# where each field lived in the flat configs of run folders saved before model.flow was a block
LEGACY = {"kind": "model.flow", "channels": "model.flow_channels", "conditional": None}  # None: added later


def data_init(flow: Flow, h, ctx=None) -> None:
    """Data-dependent initialization: pass the batch ``h`` (with contexts ``ctx [B, C]``)
    through the flow's layers in order, letting each layer that has ``initialize`` (ActNorm,
    MultiScale) set itself from its input."""
    for layer in flow.layers:
        if hasattr(layer, "initialize"):
            layer.initialize(h) if ctx is None or isinstance(layer, ActNorm) else layer.initialize(h, ctx)
        forward = lambda v, c, layer=layer: layer.forward(v, c)[0]  # noqa: E731
        h = forward(h, ctx) if flow.batched else jax.vmap(forward)(h, ctx)


def build_flow(mcfg, shape, context_dim: int = 0, *, rngs: nnx.Rngs) -> Flow:
    kind, hidden, n = mcfg.kind, tuple(mcfg.hidden), int(mcfg.n_layers)
    dim, image = math.prod(shape), len(shape) == 3
    if kind not in FLOWS:
        raise ValueError(f"model.flow.kind must be one of {', '.join(FLOWS)}, got {kind!r}.")
    if kind in ("glow", "realnvp_ms"):
        if not image:
            raise ValueError(f"model.flow.kind={kind!r} needs image data (H, W, C), got shape {shape}.")
        style = "glow" if kind == "glow" else "realnvp"
        ms = MultiScale(shape, mcfg.levels, mcfg.steps, mcfg.channels, style=style, context_dim=context_dim, rngs=rngs)
        return Flow([LogitTransform(mcfg.logit_alpha, event_ndim=3), ms], batched=True)
    layers = [LogitTransform(mcfg.logit_alpha), Reshape(shape, (dim,))] if image else []
    scan = kind == "spline"  # repeated couplings as one scan: Flow's docstring
    for i in range(n):
        if mcfg.actnorm:
            layers.append(ActNorm(dim))
        if kind in ("maf", "iaf"):
            layers.append(MAF(dim, hidden, context_dim, inverse_autoregressive=kind == "iaf", rngs=rngs))
            if i < n - 1:
                layers.append(Permute(dim, reverse=True))
        else:
            coupling = {"realnvp": "affine", "nice": "additive", "spline": "spline"}[kind]
            layers.append(
                Coupling(
                    alternating_mask(dim, i % 2),
                    hidden,
                    coupling,
                    context_dim,
                    bins=mcfg.bins,
                    bound=mcfg.bound,
                    act=mcfg.activation,
                    constant_mask=not scan,  # a scanned flow's masks are variables (Coupling)
                    rngs=rngs,
                )
            )
    return Flow(layers, scan=scan)


def make_flow(mcfg, data: DataInfo) -> Family:
    """The flow family for data of shape ``data.shape`` (vectors, or images flattened)."""
    data_shape = tuple(int(s) for s in data.shape)
    dim = math.prod(data_shape)
    require_data(data, "continuous", f"model.family='flow' (kind={mcfg.kind!r})")
    if data.image and data.scale != "01":
        raise ValueError(f"model.flow on images maps pixels in [0, 1] through logit(a + (1 - 2a) x); these are "
                         f"scaled to [-1, 1]: set data.scale='01' (got {data.scale!r}).")  # fmt: skip
    if mcfg.conditional and not data.n_classes and data.target_shape is None:
        raise ValueError("model.flow.conditional=True needs labels (classes or real targets); these data have none.")
    n_classes = int(data.n_classes) if mcfg.conditional else 0
    context_dim = (n_classes or math.prod(data.target_shape)) if mcfg.conditional else 0
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: build_flow(mcfg, data_shape, context_dim, rngs=nnx.Rngs(0))))

    def module(params) -> Flow:
        return nnx.merge(graphdef, params["model"])

    def context(y):
        """The context vectors ``[B, C]`` of labels ``y`` (None for an unconditional flow)."""
        if not context_dim:
            return None
        if y is None:
            raise ValueError("model.flow.conditional=True: this call needs the condition (labels y).")
        return condition_vector(y, n_classes)

    def init(key, example=None):
        flow = build_flow(mcfg, data_shape, context_dim, rngs=nnx.Rngs(key))
        if example is not None:
            example = jnp.asarray(example)
            # every coupling starts as the identity, so the context does not change this pass
            ctx = jnp.zeros((example.shape[0], context_dim)) if context_dim else None
            data_init(flow, example, ctx)
        return {"model": nnx.split(flow)[1]}

    def log_prob(params, x, key=None, y=None):
        """Exact log p(x) (log p(x | c) for a conditional flow) ``[B]``."""
        flow = module(params)
        z, logdet = flow.over_batch("forward", x, context(y))
        return standard_normal_log_prob(z) + logdet

    def loss(params, batch, key, ctx):
        lp = log_prob(params, batch["x"], None, batch.get("y") if context_dim else None)
        return -jnp.mean(lp), {"nll": -jnp.mean(lp)}

    def sample(params, key, n, cond=None):
        """x = f^{-1}(z), z ~ N(0, I) (given ``cond``: classes, random ones when None)."""
        flow = module(params)
        k_y, k_z = jax.random.split(key) if context_dim else (None, key)
        if n_classes and cond is None:
            cond = jax.random.randint(k_y, (n,), 0, n_classes)
        x, _ = flow.over_batch("inverse", jax.random.normal(k_z, (n, dim)), context(cond))
        return x

    return Family(
        name="flow",
        convolutional=mcfg.kind in ("glow", "realnvp_ms"),
        init=init,
        players=(Player("model", loss),),
        sample=sample,
        log_prob=log_prob,
        log_prob_kind="exact",
        estimator="exact (change of variables)",
        modules=module,
        progress=("loss",),
        curves=Curves("nll", 1.0, "train NLL"),
        labelled=bool(context_dim),
        classes=n_classes,
    )
