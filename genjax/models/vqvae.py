"""Discrete autoencoders: the VQ-VAE (van den Oord et al. 2017) and FSQ (Mentzer et al. 2024).

An encoder maps x to a code vector per position of a grid (``arch = "conv"``: H/2^n x W/2^n
positions for n conv stages; ``"mlp"``: ``positions`` of them), a quantizer maps each to one of
K codes, and a decoder p(x | c) reads the quantized grid (Bernoulli or Gaussian, as the VAE's).
The quantizers (``genjax.objectives.quantize``, where the math is written out):

* ``quantizer = "vq"``: nearest of K = ``codebook_size`` learned vectors of ``code_dim``,
  straight-through gradient; per-example loss

      -log p(x | z_q) + beta ||z_e - sg(z_q)||^2 [+ ||sg(z_e) - z_q||^2 when codebook_update="grad"]

  (squared norms summed over the grid), the codebook learned by that gradient or by exponential
  moving averages (``codebook_update = "ema"``, decay ``ema_decay``, Laplace smoothing), dead codes
  (EMA count below ``restart_threshold``) restarted on batch encoder outputs;
* ``quantizer = "fsq"``: each of d = len(``fsq_levels``) dimensions bounded and rounded to its
  levels, K = prod L_i implicit codes; loss -log p(x | z^), nothing else.

Likelihood bookkeeping: the encoder is a point mass on one code grid c(x), so with a prior p(c)
over the K^P grids of P positions, log p(x) >= log p(x | c(x)) + log p(c(x)) (the ELBO of a
one-hot posterior: its entropy is 0). Alone, the model's prior is uniform: ``log_prob`` is the
bound log p(x | c(x)) - P log K. A second model trained on the codes (``data.name =
'latents:<run>'``) is a learned prior and tightens it (``genjax eval`` of that run reports it).
``sample`` decodes uniform code grids to decoder means (a first stage is not meant to sample
alone). Metrics: the batch's code perplexity exp(H) (K when every code is equally used) and the
share of codes used. Block ``model.vqvae``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from genjax.fields import Choice, Float, Int, Ints, defaults
from genjax.models.base import Codes, Curves, DataInfo, Family, Player, require_data
from genjax.nn.encoders import GridDecoder, GridEncoder
from genjax.nn.layers import ACTIVATIONS
from genjax.objectives import quantize as q
from genjax.objectives.likelihood import bernoulli_log_prob, decoder_draw, gaussian_log_prob

FIELDS = {
    "arch": Choice(
        "conv", "conv (strided convolutions: a code per feature-map position) | mlp (positions codes)", ("conv", "mlp")
    ),
    "channels": Ints((32, 64), "conv channels, encoder side (each stage halves the side)", ge=1),
    "hidden": Ints((256,), "mlp widths, encoder side", ge=1),
    "positions": Int(4, "mlp: code positions per example", ge=1),
    "activation": Choice("relu", "hidden-layer activation", ACTIVATIONS),
    "quantizer": Choice("vq", "vq (a learned codebook) | fsq (finite scalar quantization)", ("vq", "fsq")),
    "codebook_size": Int(64, "vq: codes K", ge=2),
    "code_dim": Int(16, "vq: code vector size", ge=1),
    "fsq_levels": Ints((5, 5, 3), "fsq: levels per dimension (K = their product)", ge=2),
    "beta": Float(0.25, "vq: commitment weight", ge=0.0),
    "codebook_update": Choice("ema", "vq: ema (moving averages) | grad (the codebook loss)", ("ema", "grad")),
    "ema_decay": Float(0.99, "vq, ema: the moving averages' decay gamma", gt=0.0, lt=1.0),
    "ema_eps": Float(1e-5, "vq, ema: Laplace smoothing of the counts", gt=0.0),
    "restart_threshold": Float(1.0, "vq, ema: restart codes whose EMA count falls below this (0: never)", ge=0.0),
    "likelihood": Choice(
        "gaussian", "the decoder p(x|c): gaussian (continuous data) | bernoulli (binary)", ("gaussian", "bernoulli")
    ),
    "gaussian_std": Float(0.1, "gaussian decoder: its fixed std", gt=0.0),
}


def default_config() -> ml_collections.ConfigDict:
    """``model.vqvae``: the encoder, quantizer and decoder (``FIELDS``)."""
    return defaults(FIELDS)


class VQModule(nnx.Module):
    def __init__(self, mcfg, data_shape, code_dim: int, *, rngs: nnx.Rngs):
        kw = dict(channels=tuple(mcfg.channels), hidden=tuple(mcfg.hidden), positions=int(mcfg.positions),
                  act=mcfg.activation, rngs=rngs)  # fmt: skip
        self.encoder = GridEncoder(mcfg.arch, data_shape, code_dim, **kw)
        self.decoder = GridDecoder(mcfg.arch, code_dim, data_shape, **kw)
        if mcfg.quantizer == "vq":
            book = jax.random.normal(rngs.params(), (int(mcfg.codebook_size), code_dim))
            if mcfg.codebook_update == "grad":
                self.codebook = nnx.Param(book)
            else:  # moving averages: no gradient reaches them
                self.codebook = nnx.Variable(book)
                # one count per code to start (e_k = m_k / N_k from the first step on; with zero
                # counts, Laplace smoothing would divide an unused code's sum by eps)
                self.counts = nnx.Variable(jnp.ones((int(mcfg.codebook_size),), jnp.float32))
                self.sums = nnx.Variable(book)


def _check(mcfg, data: DataInfo):
    if not data.image and mcfg.arch == "conv":
        raise ValueError(f"model.vqvae.arch='conv' takes images; these data have shape {data.shape}: use arch='mlp'.")
    if mcfg.restart_threshold > 0 and mcfg.quantizer == "vq" and mcfg.codebook_update == "grad":
        raise ValueError("model.vqvae.restart_threshold > 0 restarts codes by their moving-average counts; set "
                         "codebook_update='ema', or restart_threshold=0 with codebook_update='grad'.")  # fmt: skip
    need = "binary" if mcfg.likelihood == "bernoulli" else "continuous"
    require_data(data, need, f"model.vqvae.likelihood={mcfg.likelihood!r}")


def make_vqvae(mcfg, data: DataInfo) -> Family:
    """Bind the modules to the quantizer and its losses; see the module docstring for the math."""
    _check(mcfg, data)
    shape = tuple(int(s) for s in data.shape)
    vq = mcfg.quantizer == "vq"
    fsq = None if vq else q.FSQ(tuple(mcfg.fsq_levels))
    code_dim = int(mcfg.code_dim) if vq else fsq.dim
    k = int(mcfg.codebook_size) if vq else fsq.size
    ema = vq and mcfg.codebook_update == "ema"
    decay, eps, threshold = float(mcfg.ema_decay), float(mcfg.ema_eps), float(mcfg.restart_threshold)
    new = lambda rngs: VQModule(mcfg, shape, code_dim, rngs=rngs)  # noqa: E731
    abstract = nnx.eval_shape(lambda: new(nnx.Rngs(0)))
    graphdef, _ = nnx.split(abstract)
    grid = tuple(abstract.encoder.grid)
    positions = math.prod(grid)
    log_std = math.log(float(mcfg.gaussian_std))

    def module(params) -> VQModule:
        return nnx.merge(graphdef, params["model"], copy=True)  # the EMA update must not write into params

    def log_px(x, out):
        """log p(x | c) ``[B]`` from the decoder output."""
        x, out = x.reshape(x.shape[0], -1), out.reshape(out.shape[0], -1)
        if mcfg.likelihood == "bernoulli":
            return bernoulli_log_prob(out, x, event_ndims=1)
        return gaussian_log_prob(x, out, jnp.full_like(out, 2.0 * log_std), event_ndims=1)

    def mean(out):
        return jax.nn.sigmoid(out) if mcfg.likelihood == "bernoulli" else out

    def quantized(m, idx):
        """The code vectors ``[B, *grid, code_dim]`` of indices ``idx [B, *grid]``."""
        return m.codebook[...][idx] if vq else fsq.code(idx)

    def encode_idx(m, x):
        z_e = m.encoder(x)
        if vq:
            return z_e, q.nearest(z_e, m.codebook[...])
        return z_e, fsq.index(fsq.quantize(z_e))

    def loss(params, batch, key, ctx):
        m = module(params)
        x = batch["x"]
        z_e = m.encoder(x)
        if vq:
            book = m.codebook[...]
            idx = q.nearest(z_e, book)
            z_q = book[idx]
            codebook_loss, commit = q.vq_losses(z_e, z_q, len(grid) + 1)
            rec = -log_px(x, m.decoder(q.straight_through(z_e, z_q)))
            per = rec + ctx.hp["beta"] * commit + (0.0 if ema else codebook_loss)
        else:
            z_hat = fsq.quantize(z_e)
            idx = fsq.index(z_hat)
            rec = -log_px(x, m.decoder(z_hat))
            per = rec
        perplexity, used = q.usage(idx, k)
        metrics = {"rec": jnp.mean(rec), "perplexity": perplexity, "used": used}
        if vq:
            metrics["commit"] = jnp.mean(commit)
        if ema:
            sg = jax.lax.stop_gradient(z_e)
            counts, sums, book = q.ema_update(m.counts[...], m.sums[...], sg, idx, decay, eps)
            if threshold > 0:
                counts, sums, book, metrics["restarts"] = q.restart_dead(key, counts, sums, book, sg, threshold)
            m.counts[...], m.sums[...], m.codebook[...] = counts, sums, book
            metrics["_vars"] = nnx.split_state(nnx.split(m)[1], nnx.Param, ...)[1]
        return jnp.mean(per), metrics

    def decoded(params, idx):
        """The decoder output at the code grid of indices ``idx``."""
        m = module(params)
        return m.decoder(quantized(m, jnp.asarray(idx, jnp.int32)))

    def encode(params, x, key=None):
        return encode_idx(module(params), x)[1]

    def code_log_px(params, x, idx):
        return log_px(x, decoded(params, idx))

    def log_prob(params, x, key=None):
        """The bound log p(x | c(x)) - P log K ``[B]`` (uniform prior over the code grids)."""
        return code_log_px(params, x, encode(params, x)) - positions * math.log(k)

    def decode(params, idx):
        return mean(decoded(params, idx))

    def draw(params, idx, key):
        """x ~ p(x | c): Bernoulli or Gaussian draws around the decoder output."""
        return decoder_draw(key, decoded(params, idx), mcfg.likelihood, math.exp(log_std))

    def sample(params, key, n, cond=None):
        """Decoder means of uniformly drawn code grids."""
        return decode(params, jax.random.randint(key, (n, *grid), 0, k))

    name = "VQ-VAE" if vq else "FSQ autoencoder"
    return Family(
        name="vqvae",
        convolutional=mcfg.arch == "conv",
        init=lambda key, example=None: {"model": nnx.split(new(nnx.Rngs(key)))[1]},
        players=(Player("model", loss),),
        sample=sample,
        log_prob=log_prob,
        log_prob_kind="bound",
        estimator=(
            f"the {name}'s bound with a uniform prior over its {k}^{positions} code grids: "
            f"log p(x | c(x)) - {positions} ln {k} (a learned prior on the codes tightens it)"
        ),  # fmt: skip
        hparams={"beta": float(mcfg.beta)} if vq else {},
        codes=Codes("discrete", grid, k, encode, decode, code_log_px, None, draw),
        modules=module,
        progress=("loss", "rec", "perplexity"),
        curves=Curves("rec", 1.0, "train reconstruction NLL", ("perplexity",), "code perplexity (train)"),
        info={"quantizer": str(mcfg.quantizer), "codes": k, "grid": list(grid)},
    )
