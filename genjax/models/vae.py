"""The variational autoencoder family and its relatives (Kingma & Welling 2014; Burda et al. 2016).

Generative model p(z) = N(0, I), p(x|z) Bernoulli(sigmoid(f(z))) or N(f(z), sigma^2);
inference model q(z|x) = N(mu(x), diag(sigma^2(x))), sampled by reparameterization.

``model.vae.objective`` (per example, minimized as its negative mean):

* ``elbo``: E_q[log p(x|z)] - beta_t KL(q(z|x) || p(z)), beta_t from ``kl_schedule``; with
  ``free_bits = lambda > 0`` the KL term is sum_k max(lambda, E_batch KL_k) (Kingma et al. 2016);
* ``iwae``: L_k = log (1/k) sum_i p(x, z_i) / q(z_i|x);
* ``infovae`` (Zhao et al. 2019, InfoVAE): E_q[log p(x|z)] - (1 - alpha) KL(q(z|x) || p(z))
  - (alpha + lambda - 1) MMD(q(z), p(z)), the MMD between the batch's posterior draws and as
  many prior draws with the ``mmd_kernel`` (alpha = 1: the MMD-VAE);
* ``ae``: a deterministic autoencoder, -log p(x | z = mu(x)) (no KL, no likelihood of x);
* ``dae``: a denoising autoencoder (Vincent et al. 2008), -log p(x | z = mu(x~)) with x~ the
  input corrupted by ``corruption`` (``mask``: each pixel zeroed with probability ``noise``;
  ``gaussian``: plus N(0, noise^2));
* ``aae``: an adversarial autoencoder (Makhzani et al. 2016) — three players: ``ae`` (encoder and
  decoder) minimizes the reconstruction term -log p(x | z = mu(x)); ``disc``, a latent
  discriminator D(z), tells prior draws z ~ p(z) from codes mu(x) (-log D(z_p) - log(1 -
  D(mu(x)))); ``reg`` moves the encoder alone to fool it (-log D(mu(x))), matching the
  aggregate posterior q(z) to p(z).

``conditional = True`` makes every variant conditional (CVAE, Sohn et al. 2015): the condition c
— the label one-hot, or the data's real-valued targets as a vector — enters the encoder
(concatenated to a flat input, or as constant channels of an image) and the decoder
(concatenated to z): q(z|x, c), p(x|z, c). Its ``log_prob(params, x, key, y)`` is log p(x | c)
(``Family.labelled``), and ``sample(..., cond)`` draws for given classes.

``latent_dim2 > 0`` adds a second stochastic layer (Burda et al. 2016's two-layer model):
p(h2) p(h1|h2) p(x|h1), q(h1|x) q(h2|h1), each conditional a diagonal Gaussian from an MLP of
``hidden2`` units; its ELBO is the one-sample estimate of log w.

``arch = "pool"`` (conv layers with 2x2 max pooling, max-unpooling in the decoder) is for the
deterministic autoencoders: reconstructions put values back at the encoder's switches.

``log_prob`` is the importance-sampled estimate log p(x) ~ L_k with ``k = nll_samples``
(1000 by default), computed in chunks of ``nll_chunk`` samples so memory stays bounded; the
per-epoch validation NLL uses ``val_samples``. The autoencoders (ae, dae, aae) define no
density: ``log_prob`` is ``None`` (train with ``train.patience = 0``). All fields live in the
config block ``model.vae`` (``default_config``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from genjax.fields import Bool, Choice, Float, Int, Ints, changeable, defaults
from genjax.models.base import Codes, Curves, DataInfo, Family, Latent, Player, condition_vector, require_data
from genjax.nn import build_decoder, build_encoder
from genjax.nn.encoders import MLPEncoder
from genjax.nn.gan import MLPDiscriminator
from genjax.nn.layers import ACTIVATIONS, set_dropout_rate
from genjax.objectives import adversarial as adv
from genjax.objectives import elbo as elbo_lib
from genjax.objectives.likelihood import bernoulli_log_prob, decoder_draw, gaussian_log_prob, standard_normal_log_prob

OBJECTIVES = ("elbo", "iwae", "infovae", "ae", "dae", "aae")
AUTOENCODERS = ("ae", "dae", "aae")  # no density: log_prob is None
DENSITY = tuple(o for o in OBJECTIVES if o not in AUTOENCODERS)  # a likelihood log p(x)


class VAEModule(nnx.Module):
    """Encoder, decoder, (for a Gaussian decoder with learned variance) a per-pixel log std and,
    with a second stochastic layer, its inference and generative networks."""

    def __init__(self, mcfg, data_shape, cond_dim: int = 0, *, rngs: nnx.Rngs):
        common = dict(
            hidden=tuple(mcfg.hidden),
            channels=tuple(mcfg.channels),
            act=mcfg.activation,
            dropout=float(mcfg.dropout),
            rngs=rngs,
        )
        k1, k2 = int(mcfg.latent_dim), int(mcfg.latent_dim2)
        image = len(data_shape) == 3
        if cond_dim and mcfg.arch == "mlp":  # the condition joins the flattened input
            enc_in = (math.prod(data_shape) + cond_dim,)
        elif cond_dim:  # ... or the image as constant channels
            enc_in = (*data_shape[:-1], data_shape[-1] + cond_dim)
        else:
            enc_in = data_shape
        self.encoder = build_encoder(mcfg.arch, enc_in, k1, **common)
        self.decoder = build_decoder(mcfg.arch, k1 + (cond_dim if not k2 else 0), data_shape, **common)
        if k2:
            h2 = tuple(mcfg.hidden2)
            self.encoder2 = MLPEncoder((k1,), h2, k2, mcfg.activation, rngs=rngs)  # q(h2 | h1)
            self.prior1 = MLPEncoder((k2 + cond_dim,), tuple(reversed(h2)), k1, mcfg.activation, rngs=rngs)  # p(h1|h2)
        if mcfg.likelihood == "gaussian":
            log_std = jnp.full(data_shape, math.log(mcfg.gaussian_std), jnp.float32)
            self.log_std = nnx.Param(log_std) if mcfg.learn_std else nnx.Variable(log_std)
        elif mcfg.likelihood != "bernoulli":
            raise ValueError(f"model.vae.likelihood must be 'bernoulli' or 'gaussian', got {mcfg.likelihood!r}.")
        self.likelihood = mcfg.likelihood
        self.event_ndims = len(data_shape)
        self.flat_cond = cond_dim > 0 and (mcfg.arch == "mlp" or not image)

    def log_px_z(self, x: jax.Array, out: jax.Array) -> jax.Array:
        """log p(x|z) for decoder output ``out`` ``[..., B, *data_shape]`` -> ``[..., B]``.

        Computed on flattened events ``[..., B, D]``: on CPU, XLA runs the elementwise terms and
        the sum ~10% faster than on ``[B, H, W, 1]`` (benchmarks/train_step.py)."""
        n = self.event_ndims
        x = x.reshape(*x.shape[: x.ndim - n], -1)
        out = out.reshape(*out.shape[: out.ndim - n], -1)
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(out, x, event_ndims=1)
        return gaussian_log_prob(x, out, 2.0 * self.log_std[...].reshape(-1), event_ndims=1)

    def mean(self, out: jax.Array) -> jax.Array:
        """E[x|z] from the decoder output."""
        return jax.nn.sigmoid(out) if self.likelihood == "bernoulli" else out

    def draw(self, key, out: jax.Array) -> jax.Array:
        """x ~ p(x|z) from the decoder output."""
        std = jnp.exp(self.log_std[...]) if self.likelihood == "gaussian" else 1.0
        return decoder_draw(key, out, self.likelihood, std)

    def encoder_input(self, x, c):
        """x with the condition ``c [B, C]`` joined (flat, or as image channels)."""
        if c is None:
            return x
        if self.flat_cond:
            return jnp.concatenate([x.reshape(x.shape[0], -1), c.astype(x.dtype)], -1)
        tiled = jnp.broadcast_to(c[:, None, None, :].astype(x.dtype), (*x.shape[:-1], c.shape[-1]))
        return jnp.concatenate([x, tiled], -1)


def with_cond(z, c):
    """z ``[..., B, K]`` with the condition ``c [B, C]`` appended (broadcast over leading axes)."""
    if c is None:
        return z
    return jnp.concatenate([z, jnp.broadcast_to(c.astype(z.dtype), (*z.shape[:-1], c.shape[-1]))], -1)


FIELDS = {
    "arch": Choice("mlp", "mlp | conv (strided conv / ConvTranspose) | pool (max pooling / max-unpooling: ae, dae)",
                   ("mlp", "conv", "pool")),
    "hidden": Ints((256, 128), "MLP widths, encoder side (the decoder mirrors them)", ge=1),
    "channels": Ints((32, 64), "conv channels, encoder side", ge=1),
    "activation": Choice("relu", "hidden-layer activation", ACTIVATIONS),
    "dropout": Float(0.0, "dropout rate in the encoder and decoder", ge=0.0, lt=1.0),
    "latent_dim": Int(16, "size of z", ge=1),
    "latent_dim2": Int(0, ">0: a second stochastic layer h2 of this size (Burda et al.'s 2-layer model)", ge=0),
    "hidden2": Ints((100, 100), "the second layer's MLP widths, q(h2|h1) side (p(h1|h2) mirrors them)", ge=1),
    "likelihood": Choice("bernoulli", "the decoder p(x|z): Bernoulli (binary data) or Gaussian (continuous data)",
                         ("bernoulli", "gaussian")),
    "gaussian_std": Float(0.1, "gaussian decoder: the fixed std, or the initial one if learned", gt=0.0),
    "learn_std": Bool(False, "gaussian decoder: learn one std per output"),
    "objective": Choice("elbo", "the training objective (module docstring)", OBJECTIVES),
    "beta": Float(1.0, "beta-VAE weight on the KL (its final value under a schedule)", ge=0.0),
    "free_bits": Float(0.0, "elbo: nats per latent dimension below which the KL is free (0: off)", ge=0.0),
    "k": Int(5, "iwae: importance samples", ge=1),
    "kl_schedule": Choice("constant", "the KL weight's shape over steps", ("constant", "linear", "cyclical")),
    "warmup_steps": Int(0, "linear: steps to reach beta", ge=0),
    "cycle_period": Int(1000, "cyclical: steps per cycle", ge=1),
    "cycle_ratio": Float(0.5, "cyclical: share of a cycle spent rising", gt=0.0, le=1.0),
    "info_alpha": Float(1.0, "infovae: alpha (1: no KL term, the MMD-VAE)"),
    "info_lambda": Float(100.0, "infovae: lambda, the weight of the divergence of q(z) from p(z)", ge=0.0),
    "mmd_kernel": Choice("rbf", "infovae: the MMD kernel", tuple(elbo_lib.KERNELS)),
    "corruption": Choice("mask", "dae: mask (zero each pixel with probability noise) | gaussian (add N(0, noise^2))",
                         ("mask", "gaussian")),
    "noise": Float(0.25, "dae: masking probability, or the Gaussian noise's std", ge=0.0),
    "disc_hidden": Ints((256, 256), "aae: latent discriminator widths", ge=1),
    "conditional": Bool(False, "condition encoder and decoder on the labels (CVAE)"),
    "nll_samples": Int(1000, "importance samples for the held-out NLL", ge=1),
    "nll_chunk": Int(100, "importance samples per chunk (bounds memory); divides nll_samples", ge=1),
    "val_samples": Int(10, "importance samples for the validation NLL each epoch", ge=1),
}


def default_config() -> ml_collections.ConfigDict:
    """``model.vae``: architecture, objective and likelihood-estimator settings (``FIELDS``)."""
    return defaults(FIELDS)


# where each field lived in the flat configs of run folders saved before model.vae existed
FIELDS = changeable("eval", FIELDS, "nll_samples", "nll_chunk")
LEGACY = {"objective": "objective.name", "nll_samples": "eval.nll_samples", "nll_chunk": "eval.nll_chunk",
          "val_samples": "train.val_samples"}  # fmt: skip
# fields added after the flat layout: they take their defaults (never another family's model.<field>)
LEGACY |= dict.fromkeys(("latent_dim2", "hidden2", "free_bits", "info_alpha", "info_lambda", "mmd_kernel", "corruption",
                         "noise", "disc_hidden", "conditional"))  # fmt: skip


def make_kl_schedule(mcfg):
    """The shape of beta_t from ``model.vae.kl_schedule`` (constant | linear | cyclical), rising
    to 1; the loss multiplies it by the hyperparameter ``beta``."""
    if mcfg.kl_schedule == "constant":
        return elbo_lib.constant_beta(1.0)
    if mcfg.kl_schedule == "linear":
        return elbo_lib.linear_warmup(mcfg.warmup_steps, 1.0)
    if mcfg.kl_schedule == "cyclical":
        return elbo_lib.cyclical(mcfg.cycle_period, mcfg.cycle_ratio, 1.0)
    raise ValueError(f"model.vae.kl_schedule must be constant, linear or cyclical, got {mcfg.kl_schedule!r}.")


def _check(mcfg, data: DataInfo):
    """The cross-field and data rules (each field's own range: ``FIELDS``, ``genjax.config.validate``)."""
    if mcfg.corruption == "mask" and not mcfg.noise < 1:
        raise ValueError(f"model.vae.noise is a masking probability under corruption='mask'; it must be < 1, got "
                         f"{mcfg.noise!r}.")  # fmt: skip
    obj = mcfg.objective
    if mcfg.arch == "pool" and obj not in ("ae", "dae"):
        raise ValueError(
            f"model.vae.arch='pool' reconstructs through the encoder's pooling switches, which a density model "
            f"cannot use; it is for objective 'ae' or 'dae', not {obj!r}."
        )
    if mcfg.latent_dim2 and (obj not in ("elbo", "iwae") or mcfg.arch == "pool"):
        raise ValueError(f"model.vae.latent_dim2 > 0 (two stochastic layers) takes objective elbo or iwae, not {obj}.")
    if mcfg.latent_dim2 and mcfg.free_bits > 0:
        raise ValueError("model.vae.free_bits applies to one stochastic layer's analytic KL; set latent_dim2=0.")
    if mcfg.conditional and mcfg.arch == "pool":
        raise ValueError("model.vae.arch='pool' has no conditional decoder; use 'mlp' or 'conv' with conditional=True.")
    if mcfg.conditional and not data.n_classes and data.target_shape is None:
        raise ValueError("model.vae.conditional=True needs labels (classes or real targets); these data have none.")
    if obj in DENSITY:  # the held-out NLL is log p(x) under the decoder: it must fit the data
        need = "binary" if mcfg.likelihood == "bernoulli" else "continuous"
        require_data(data, need, f"model.vae.likelihood={mcfg.likelihood!r}")
    if mcfg.nll_samples % min(mcfg.nll_chunk, mcfg.nll_samples):
        raise ValueError(f"model.vae.nll_samples ({mcfg.nll_samples}) must be a multiple of model.vae.nll_chunk "
                         f"({mcfg.nll_chunk}).")  # fmt: skip


def make_vae(mcfg, data: DataInfo) -> Family:
    """Bind the VAE modules to the objectives; see the module docstring for the math."""
    _check(mcfg, data)
    data_shape = tuple(int(s) for s in data.shape)
    obj, two = mcfg.objective, int(mcfg.latent_dim2) > 0
    n_classes = int(data.n_classes) if mcfg.conditional else 0
    cond_dim = (n_classes or math.prod(data.target_shape)) if mcfg.conditional else 0
    k_top = int(mcfg.latent_dim2) if two else int(mcfg.latent_dim)
    beta_t = make_kl_schedule(mcfg)
    free_bits = float(mcfg.free_bits)
    new = lambda rngs: VAEModule(mcfg, data_shape, cond_dim, rngs=rngs)  # noqa: E731
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: new(nnx.Rngs(0))))
    aae = obj == "aae"
    disc_def = None
    if aae:
        new_disc = lambda rngs: MLPDiscriminator((k_top,), tuple(mcfg.disc_hidden), rngs=rngs)  # noqa: E731
        disc_def, _ = nnx.split(nnx.eval_shape(lambda: new_disc(nnx.Rngs(0))))

    def module(params) -> VAEModule:
        if aae:  # the encoder and the rest are separate entries (separate players update them)
            return nnx.merge(graphdef, nnx.State({"encoder": params["enc"], **params["dec"]}))
        return nnx.merge(graphdef, params["model"])

    def init(key, example=None):
        k_m, k_d = jax.random.split(key) if aae else (key, None)  # a VAE's init as it always was
        state = nnx.split(new(nnx.Rngs(k_m)))[1]
        if not aae:
            return {"model": state}
        rest = nnx.State({k: v for k, v in state.items() if k != "encoder"})
        return {"enc": state["encoder"], "dec": rest, "disc": nnx.split(new_disc(nnx.Rngs(k_d)))[1]}

    def cond_of(y):
        """The condition vector ``[B, C]`` of labels ``y`` (None for an unconditional model)."""
        if not cond_dim:
            return None
        if y is None:
            raise ValueError("model.vae.conditional=True: this call needs the condition (labels y).")
        return condition_vector(y, n_classes)

    def labels(batch):
        return cond_of(batch["y"]) if cond_dim else None

    def encode_stats(m, x, c, key=None):
        return m.encoder(m.encoder_input(x, c), key)

    def decode(m, z, c, key=None):
        return m.decoder(with_cond(z, c), key)

    # ---------------------------------------------------------------- one stochastic layer

    def elbo_loss(params, batch, key, ctx):
        m = module(params)
        x, c = batch["x"], labels(batch)
        k_enc, k_z, k_dec = jax.random.split(key, 3)
        mean, log_var = encode_stats(m, x, c, k_enc)
        z = elbo_lib.reparameterize(k_z, mean, log_var)
        log_px_z = m.log_px_z(x, decode(m, z, c, k_dec))
        kl_dims = elbo_lib.gaussian_kl_per_dim(mean, log_var)
        kl = jnp.sum(kl_dims, -1)
        kl_term = elbo_lib.free_bits_kl(kl_dims, ctx.hp["free_bits"]) if "free_bits" in ctx.hp else kl
        beta = ctx.hp["beta"] * beta_t(ctx.step)
        loss = -jnp.mean(elbo_lib.elbo(log_px_z, kl_term, beta))
        metrics = {"rec": -jnp.mean(log_px_z), "kl": jnp.mean(kl), "elbo": jnp.mean(log_px_z - kl), "beta": beta,
                   "au": _batch_active_units(mean)}  # fmt: skip
        return loss, metrics

    def infovae_loss(params, batch, key, ctx):
        m = module(params)
        x, c = batch["x"], labels(batch)
        k_enc, k_z, k_dec, k_p = jax.random.split(key, 4)
        mean, log_var = encode_stats(m, x, c, k_enc)
        z = elbo_lib.reparameterize(k_z, mean, log_var)
        log_px_z = m.log_px_z(x, decode(m, z, c, k_dec))
        kl = elbo_lib.gaussian_kl(mean, log_var)
        prior = jax.random.normal(k_p, z.shape).astype(z.dtype)
        mmd = elbo_lib.mmd(z.astype(jnp.float32), prior.astype(jnp.float32), mcfg.mmd_kernel)
        alpha, lam = ctx.hp["info_alpha"], ctx.hp["info_lambda"]
        loss = elbo_lib.infovae_objective(log_px_z, kl, mmd, alpha, lam)
        return loss, {"rec": -jnp.mean(log_px_z), "kl": jnp.mean(kl), "mmd": mmd, "elbo": jnp.mean(log_px_z - kl),
                      "au": _batch_active_units(mean)}  # fmt: skip

    # ---------------------------------------------------------------- log importance weights

    def log_w(m, x, c, key, k, dropout_key=None):
        """log w = log p(x, z) - log q(z | x) ``[k, B]`` for k samples of q (both layers)."""
        k_enc, k_dec = jax.random.split(dropout_key) if dropout_key is not None else (None, None)
        mean, log_var = encode_stats(m, x, c, k_enc)
        k1, k2 = jax.random.split(key) if two else (key, None)  # one layer: the key as it always was
        h1 = elbo_lib.reparameterize(k1, mean, log_var, n=k)  # [k, B, K1]
        b = x.shape[0]
        if not two:
            out = decode(m, h1.reshape(-1, h1.shape[-1]), jnp.tile(c, (k, 1)) if c is not None else None, k_dec)
            return elbo_lib.log_weights(h1, mean, log_var, m.log_px_z(x, out.reshape(k, b, *x.shape[1:])))
        flat1 = h1.reshape(-1, h1.shape[-1])
        m2, lv2 = m.encoder2(flat1)
        h2 = m2 + jnp.exp(0.5 * lv2) * jax.random.normal(k2, m2.shape).astype(m2.dtype)
        cc = jnp.tile(c, (k, 1)) if c is not None else None
        pm, plv = m.prior1(with_cond(h2, cc))
        out = m.decoder(h1.reshape(-1, h1.shape[-1]), k_dec).reshape(k, b, *x.shape[1:])
        log_p = (
            m.log_px_z(x, out)
            + gaussian_log_prob(flat1, pm, plv).reshape(k, b)
            + standard_normal_log_prob(h2).reshape(k, b)
        )
        log_q = gaussian_log_prob(h1, mean, log_var) + gaussian_log_prob(h2, m2, lv2).reshape(k, b)
        return log_p - log_q

    def iwae_loss(params, batch, key, ctx):
        m = module(params)
        k_z, k_drop = jax.random.split(key)
        lw = log_w(m, batch["x"], labels(batch), k_z, mcfg.k, k_drop)
        bound = elbo_lib.iwae_from_log_weights(lw)
        return -jnp.mean(bound), {"iwae": jnp.mean(bound), "elbo": jnp.mean(lw)}

    def mc_elbo_loss(params, batch, key, ctx):
        """Two stochastic layers: the one-sample ELBO estimate, -log w."""
        m = module(params)
        k_z, k_drop = jax.random.split(key)
        lw = log_w(m, batch["x"], labels(batch), k_z, 1, k_drop)[0]
        return -jnp.mean(lw), {"elbo": jnp.mean(lw)}

    def log_prob(params, x, key, y=None, k=None, chunk=None):
        """Importance-sampled log p(x) (log p(x | c) when conditional) ~ L_k, ``k`` samples in
        chunks of ``chunk`` -> ``[B]``."""
        k = int(k or mcfg.nll_samples)
        chunk = int(min(chunk or mcfg.nll_chunk, k))
        if k % chunk:
            raise ValueError(f"model.vae.nll_samples ({k}) must be a multiple of model.vae.nll_chunk ({chunk}).")
        m, c = module(params), cond_of(y)

        def body(acc, kc):
            lse = jax.nn.logsumexp(log_w(m, x, c, kc, chunk), axis=0)
            return jnp.logaddexp(acc, lse), None

        init_acc = jnp.full((x.shape[0],), -jnp.inf)
        total, _ = jax.lax.scan(body, init_acc, jax.random.split(key, k // chunk))
        return total - math.log(k)

    def elbo_eval(params, x, key, y=None):
        """Per-example ELBO (beta = 1) with one sample, no dropout -> ``[B]``."""
        return jnp.mean(log_w(module(params), x, cond_of(y), key, 1), axis=0)

    # ---------------------------------------------------------------- autoencoders

    def corrupt(x, key):
        if obj != "dae":
            return x
        if mcfg.corruption == "mask":
            return jnp.where(jax.random.bernoulli(key, mcfg.noise, x.shape), 0.0, x).astype(x.dtype)
        return x + mcfg.noise * jax.random.normal(key, x.shape).astype(x.dtype)

    def ae_reconstruct(m, x, c, key=None, switches: bool = True):
        """Decoder output at z = mu(x) (the encoder's switches passed on for arch=pool)."""
        inp = m.encoder_input(x, c)
        k_enc, k_dec = jax.random.split(key) if key is not None else (None, None)
        if mcfg.arch == "pool":
            mean, _, sw = m.encoder(inp, k_enc, return_switches=True)
            return m.decoder(mean, k_dec, sw if switches else None), mean
        mean, _ = m.encoder(inp, k_enc)
        return decode(m, mean, c, k_dec), mean

    def ae_loss(params, batch, key, ctx):
        m = module(params)
        x, c = batch["x"], labels(batch)
        k_c, k_net = jax.random.split(key)
        out, mean = ae_reconstruct(m, corrupt(x, k_c), c, k_net)
        rec = -jnp.mean(m.log_px_z(x, out))
        return rec, {"rec": rec, "au": _batch_active_units(mean)}

    def aae_disc_loss(params, batch, key, ctx):
        m, d = module(params), nnx.merge(disc_def, params["disc"])
        x, c = batch["x"], labels(batch)
        code = jax.lax.stop_gradient(encode_stats(m, x, c)[0])
        prior = jax.random.normal(key, code.shape).astype(code.dtype)
        real, fake = d(prior), d(code)
        return jnp.mean(adv.d_minimax(real, fake)), {"d_prior": jnp.mean(real), "d_code": jnp.mean(fake)}

    def aae_reg_loss(params, batch, key, ctx):
        m, d = module(params), nnx.merge(disc_def, params["disc"])
        code = encode_stats(m, batch["x"], labels(batch), key)[0]
        return jnp.mean(adv.g_nonsaturating(d(code))), {}

    # ---------------------------------------------------------------- sampling and the latent space

    def classes_or(cond, key, n):
        if not cond_dim:
            return None
        if cond is None and n_classes:
            cond = jax.random.randint(key, (n,), 0, n_classes)
        return cond_of(cond)

    def decode_mean(params, z, y=None):
        """E[x | z] (z the top latent layer; the second layer's h1 at its mean)."""
        m, c = module(params), cond_of(y)
        if two:
            z = m.prior1(with_cond(z, c))[0]
            return m.mean(m.decoder(z))
        return m.mean(decode(m, z, c))

    def encode(params, x, y=None):
        """(mean, log_var) of q(z | x) (two layers: of q(h2 | h1 = mu_1(x)))."""
        m = module(params)
        stats = encode_stats(m, x, cond_of(y))
        return m.encoder2(stats[0]) if two else stats

    def reconstruct(params, x, y=None):
        if obj in AUTOENCODERS:
            m = module(params)
            return m.mean(ae_reconstruct(m, x, cond_of(y))[0])
        return decode_mean(params, encode(params, x, y)[0], y)

    def sample(params, key, n, cond=None):
        """x ~ p(x | z) (p(x | z, c): ``cond`` the classes, random ones when None), z ~ N(0, I):
        Bernoulli or Gaussian draws."""
        m = module(params)
        k_y, k_z, k_x, k_h = jax.random.split(key, 4)
        c = classes_or(cond, k_y, n)
        z = jax.random.normal(k_z, (n, k_top))
        if two:
            pm, plv = m.prior1(with_cond(z, c))
            out = m.decoder(pm + jnp.exp(0.5 * plv) * jax.random.normal(k_h, pm.shape))
        elif mcfg.arch == "pool":
            out = m.decoder(z)
        else:
            out = decode(m, z, c)
        return m.draw(k_x, out)

    def code_of(params, x, key=None):
        """A first stage's code of x: the posterior mean (``key`` None) or a draw z ~ q(z | x)."""
        mean, log_var = encode_stats(module(params), x, None)
        return mean if key is None else elbo_lib.reparameterize(key, mean, log_var)

    def code_log_px(params, x, z):
        m = module(params)
        return m.log_px_z(x, m.decoder(z))

    def code_log_q(params, x, z):
        mean, log_var = encode_stats(module(params), x, None)
        return gaussian_log_prob(z, mean, log_var)

    def code_draw(params, z, key):
        m = module(params)
        return m.draw(key, m.decoder(z))

    codes = None
    if not (two or cond_dim or aae or mcfg.arch == "pool"):  # one stochastic layer, unconditional
        codes = Codes("continuous", (k_top,), 0, code_of, lambda params, z: decode_mean(params, z), code_log_px,
                      code_log_q if obj in DENSITY else None, code_draw)  # an autoencoder's code: a point mass
    hparams = {"beta": float(mcfg.beta)} if obj in ("elbo", "iwae", "infovae") else {}
    if obj == "elbo" and free_bits > 0:
        hparams["free_bits"] = free_bits
    if obj == "infovae":
        hparams |= {"info_alpha": float(mcfg.info_alpha), "info_lambda": float(mcfg.info_lambda)}
    density = obj not in AUTOENCODERS
    if obj == "elbo":
        players, terms = (Player("model", mc_elbo_loss if two else elbo_loss),), ("rec", "kl") if not two else ()
    elif obj == "iwae":
        players, terms = (Player("model", iwae_loss),), ()
    elif obj == "infovae":
        players, terms = (Player("model", infovae_loss),), ("rec", "kl", "mmd")
    elif obj in ("ae", "dae"):
        players, terms = (Player("model", ae_loss),), ()
    else:
        players = (
            Player("ae", ae_loss, params=("enc", "dec")),
            Player("disc", aae_disc_loss),
            Player("reg", aae_reg_loss, params=("enc",)),
        )
        terms = ("disc/loss", "reg/loss")
    lp = log_prob if density else None
    val_lp = (lambda params, x, key, *y: log_prob(params, x, key, *y, k=mcfg.val_samples)) if density else None  # noqa: E731
    if density:
        curves = Curves("elbo", -1.0, "train -ELBO", terms, "ELBO terms (train)")
    elif aae:
        curves = Curves("ae/rec", 1.0, "train reconstruction NLL", terms, "adversarial terms (train)")
    else:
        curves = Curves("rec", 1.0, "train reconstruction NLL")
    return Family(
        name="vae",
        convolutional=mcfg.arch in ("conv", "pool"),
        init=init,
        players=players,
        sample=sample,
        log_prob=lp,
        log_prob_kind="importance-sampled estimate" if density else "none",
        estimator=(f"importance-sampled estimate with k = {int(mcfg.nll_samples)} (IWAE; its expectation "
                   "overestimates the NLL, less so as k grows)") if density else "",
        val_estimator=(f"importance-sampled estimate with k = {int(mcfg.val_samples)}" if density
                       and int(mcfg.val_samples) != int(mcfg.nll_samples) else ""),
        hparams=hparams,
        val_log_prob=val_lp,
        bound=elbo_eval if density else None,
        bound_name="elbo",
        latent=Latent(k_top, encode, decode_mean, reconstruct, conditional=bool(cond_dim)),
        codes=codes,
        modules=module,
        set_dropout=lambda params, rate: {n: set_dropout_rate(p, rate) for n, p in params.items()},
        progress=("loss", *terms) if not aae else ("ae/loss", "disc/loss", "reg/loss"),
        curves=curves,
        info={"nll_samples": int(mcfg.nll_samples)} if density else {"objective": obj},
        labelled=bool(cond_dim) and density,
        classes=n_classes,
    )


def _batch_active_units(mean, threshold: float = 0.01):
    """Burda et al.'s active-unit count on one batch's posterior means (a per-step estimate;
    ``genjax.eval.latent`` computes it over a whole split)."""
    return jnp.sum(jnp.var(mean.astype(jnp.float32), axis=0) > threshold).astype(jnp.float32)
