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

from genjax.models.base import Curves, DataInfo, Family, Player
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
from genjax.objectives.likelihood import standard_normal_log_prob

FLOWS = ("realnvp", "nice", "spline", "maf", "iaf", "glow", "realnvp_ms")


def default_config() -> ml_collections.ConfigDict:
    """``model.flow``: the flow and its conditioners."""
    return ml_collections.ConfigDict(
        dict(
            kind="realnvp",  # realnvp | nice | spline | maf | iaf | glow | realnvp_ms
            hidden=(256, 128),  # conditioner MLP widths (vector flows)
            activation="relu",
            n_layers=8,
            bins=8,  # spline bins
            bound=4.0,  # spline range [-bound, bound]; identity outside
            actnorm=True,
            logit_alpha=0.05,  # images: logit(a + (1 - 2a) x) before the flow
            levels=2,  # glow / realnvp_ms: scales
            steps=4,  # glow / realnvp_ms: flow steps per scale
            channels=64,  # glow / realnvp_ms: conv conditioner width
        )
    )


# where each field lived in the flat configs of run folders saved before model.flow was a block
LEGACY = {"kind": "model.flow", "channels": "model.flow_channels"}


def data_init(layers, h) -> None:
    """Data-dependent initialization: pass the batch ``h`` through ``layers`` in order, letting
    each layer that has ``initialize`` (ActNorm, MultiScale) set itself from its input."""
    for layer in layers:
        if hasattr(layer, "initialize"):
            layer.initialize(h)
        h = jax.vmap(lambda v, layer=layer: layer.forward(v)[0])(h)


def build_flow(mcfg, shape, *, rngs: nnx.Rngs) -> Flow:
    kind, hidden, n = mcfg.kind, tuple(mcfg.hidden), int(mcfg.n_layers)
    dim, image = math.prod(shape), len(shape) == 3
    if kind not in FLOWS:
        raise ValueError(f"model.flow.kind must be one of {', '.join(FLOWS)}, got {kind!r}.")
    if kind in ("glow", "realnvp_ms"):
        if not image:
            raise ValueError(f"model.flow.kind={kind!r} needs image data (H, W, C), got shape {shape}.")
        ms = MultiScale(
            shape, mcfg.levels, mcfg.steps, mcfg.channels, style="glow" if kind == "glow" else "realnvp", rngs=rngs
        )
        return Flow([LogitTransform(mcfg.logit_alpha), ms])
    layers = [LogitTransform(mcfg.logit_alpha), Reshape(shape, (dim,))] if image else []
    for i in range(n):
        if mcfg.actnorm:
            layers.append(ActNorm(dim))
        if kind in ("maf", "iaf"):
            layers.append(MAF(dim, hidden, inverse_autoregressive=kind == "iaf", rngs=rngs))
            if i < n - 1:
                layers.append(Permute(dim, reverse=True))
        else:
            coupling = {"realnvp": "affine", "nice": "additive", "spline": "spline"}[kind]
            layers.append(
                Coupling(
                    alternating_mask(dim, i % 2),
                    hidden,
                    coupling,
                    bins=mcfg.bins,
                    bound=mcfg.bound,
                    act=mcfg.activation,
                    rngs=rngs,
                )
            )
    return Flow(layers)


def make_flow(mcfg, data: DataInfo) -> Family:
    """The flow family for data of shape ``data.shape`` (vectors, or images flattened)."""
    data_shape = tuple(int(s) for s in data.shape)
    if int(mcfg.n_layers) < 1:
        raise ValueError(f"model.flow.n_layers must be >= 1, got {mcfg.n_layers}.")
    dim = math.prod(data_shape)
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: build_flow(mcfg, data_shape, rngs=nnx.Rngs(0))))

    def module(params) -> Flow:
        return nnx.merge(graphdef, params["model"])

    def init(key, example=None):
        flow = build_flow(mcfg, data_shape, rngs=nnx.Rngs(key))
        if example is not None:
            data_init(flow.layers, jnp.asarray(example))
        return {"model": nnx.split(flow)[1]}

    def log_prob(params, x, key=None):
        """Exact log p(x) ``[B]``."""
        flow = module(params)
        z, logdet = jax.vmap(lambda v: flow.forward(v))(x)
        return standard_normal_log_prob(z) + logdet

    def loss(params, batch, key, ctx):
        lp = log_prob(params, batch["x"])
        return -jnp.mean(lp), {"nll": -jnp.mean(lp)}

    def sample(params, key, n, cond=None):
        flow = module(params)
        x, _ = jax.vmap(lambda z: flow.inverse(z))(jax.random.normal(key, (n, dim)))
        return x

    return Family(
        name="flow",
        init=init,
        players=(Player("model", loss),),
        sample=sample,
        log_prob=log_prob,
        log_prob_kind="exact",
        modules=module,
        progress=("loss",),
        curves=Curves("nll", 1.0, "train NLL"),
    )
