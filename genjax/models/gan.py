"""The GAN family: a generator G(z, y) and a discriminator/critic D(x, y) as two players.

All fields live in the config block ``model.gan`` (``default_config``). Each training step
updates the discriminator ``n_critic`` times — each update on its
own slice of real data (the epoch draws ``n_critic x batch_size`` examples per step) — and then
the generator once, each with its own optax chain (``disc_lr`` > 0 gives the
discriminator its own rate: two time-scale updates, Heusel et al. 2017). With D's logit / critic
value f and per-example terms from ``genjax.objectives.adversarial``:

    ``objective``        discriminator loss                      generator loss
    ``gan``              -log D(x) - log(1 - D(G(z)))            log(1 - D(G(z)))  (saturating)
    ``nsgan``            same                                    -log D(G(z))
    ``wgan``             f(G(z)) - f(x)                          -f(G(z))
    ``hinge``            relu(1 - f(x)) + relu(1 + f(G(z)))      -f(G(z))

plus ``gp`` (x) the gradient penalty (||grad f(x_hat)|| - 1)^2 on interpolates (WGAN-GP with
``wgan``, ``gp = 10``, ``n_critic = 5``) and ``r1 / 2`` (x) ||grad f(x)||^2 on real data.
``pack = m`` (PacGAN, Lin et al. 2018) gives the discriminator m samples at once: m real
examples, or m generated ones, concatenated along the last axis (features of a vector,
channels of an image), so D sees inputs of m x the data's last dimension and judges the
group; each update takes m x ``batch_size`` examples (``Player.per_update``) and every loss and
penalty above applies to the packed groups unchanged.
``spectral_norm`` normalizes every discriminator layer (SN-GAN; its power-iteration
vectors are state, advanced once per discriminator update). ``gp`` and ``r1`` are loss
hyperparameters in the training state, so seeds or settings vmap.

``ema > 0`` keeps an exponential moving average of the generator's weights in
``params["gen_ema"]`` (``genjax.models.ema``: updated after every generator step,
ema <- d ema + (1 - d) theta with d = min(ema, (1 + t) / (10 + t)) at step t);
``sample`` then draws from the average (``samplers["online"]`` from the raw weights).

A GAN has no likelihood: ``log_prob`` is ``None`` (training runs without validation NLL or
early stopping; ``genjax eval`` scores samples).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from genjax.fields import Bool, Choice, Float, Int, Ints, defaults
from genjax.models.base import Curves, DataInfo, Family, Player
from genjax.models.ema import ema_init, ema_update
from genjax.nn.gan import build_discriminator, build_generator
from genjax.nn.layers import ACTIVATIONS
from genjax.objectives import adversarial as adv


class GANModules(nnx.Module):
    """Both networks in one module (for the parameter table)."""

    def __init__(self, generator, discriminator):
        self.generator, self.discriminator = generator, discriminator


LOSSES = {
    "gan": (adv.d_minimax, adv.g_saturating),
    "nsgan": (adv.d_minimax, adv.g_nonsaturating),
    "wgan": (adv.d_wasserstein, adv.g_wasserstein),
    "hinge": (adv.d_hinge, adv.g_hinge),
}


FIELDS = {
    "arch": Choice("mlp", "both networks: MLPs or convolutions", ("mlp", "conv")),
    "hidden": Ints((256, 128), "MLP generator widths", ge=1),
    "channels": Ints((32, 64), "conv discriminator channels (the generator mirrors them)", ge=1),
    "activation": Choice("relu", "generator activation", ACTIVATIONS),
    "latent_dim": Int(16, "size of z", ge=1),
    "disc_hidden": Ints((256, 256), "MLP discriminator widths", ge=1),
    "disc_activation": Choice("leaky_relu", "discriminator activation", ACTIVATIONS),
    "dropout": Float(0.0, "dropout rate in the discriminator", ge=0.0, lt=1.0),
    "spectral_norm": Bool(False, "every discriminator layer spectrally normalized (Miyato et al. 2018)"),
    "conditional": Bool(False, "class-conditional generator and (projection) discriminator"),
    "n_classes": Int(10, "conditional: the number of classes", ge=2),
    "ema": Float(0.0, ">0: decay of the generator-weight moving average used for sampling", ge=0.0, lt=1.0),
    "output": Choice("auto", "generator output: auto (linear for vectors, tanh for [-1, 1] images, sigmoid for "
                     "[0, 1] images) | linear | tanh | sigmoid", ("auto", "linear", "tanh", "sigmoid")),
    "objective": Choice("nsgan", "gan (minimax) | nsgan (non-saturating) | wgan | hinge", tuple(LOSSES)),
    "n_critic": Int(1, "discriminator updates per generator update", ge=1),
    "gp": Float(0.0, "gradient-penalty weight (WGAN-GP: 10)", ge=0.0),
    "r1": Float(0.0, "R1 weight gamma (penalty gamma/2 ||grad D(x)||^2)", ge=0.0),
    "disc_lr": Float(0.0, "the discriminator's own learning rate (0 = optim.lr)", ge=0.0),
    "pack": Int(1, "PacGAN: samples the discriminator judges together (1 = no packing)", ge=1),
}


def default_config() -> ml_collections.ConfigDict:
    """``model.gan``: both networks, the adversarial objective and the generator average (``FIELDS``)."""
    return defaults(FIELDS)


# where each field lived in the flat configs of run folders saved before model.gan existed
LEGACY = {"objective": "objective.name", "disc_lr": "optim.disc_lr"}


def output_activation(mcfg, data: DataInfo) -> str | None:
    """``output``: ``auto`` is linear for vector (2-D toy) data, tanh for images scaled to
    [-1, 1], sigmoid for images in [0, 1]."""
    out = mcfg.output
    if out == "auto":
        if not data.image:
            return None
        return "tanh" if data.scale == "-11" else "sigmoid"
    if out == "linear":
        return None
    if out not in ("tanh", "sigmoid"):
        raise ValueError(f"model.gan.output must be auto, linear, tanh or sigmoid, got {out!r}.")
    return out


def pack(x: jax.Array, m: int) -> jax.Array:
    """PacGAN packing: ``[m B, ..., C] -> [B, ..., m C]``, group ``i`` being examples
    ``i m, ..., i m + m - 1`` concatenated along the last axis."""
    if m == 1:
        return x
    b = x.shape[0] // m
    g = x.reshape(b, m, *x.shape[1:])
    return jnp.moveaxis(g, 1, -2).reshape(b, *x.shape[1:-1], m * x.shape[-1])


def make_gan(mcfg, data: DataInfo) -> Family:
    ocfg = mcfg
    data_shape = tuple(int(s) for s in data.shape)
    m = int(mcfg.pack)
    if m > 1 and mcfg.conditional:
        raise ValueError(f"model.gan.pack={m} packs unlabelled samples; it cannot be combined with conditional=True.")
    d_term, g_term = LOSSES[ocfg.objective]
    n_classes = int(mcfg.n_classes) if mcfg.conditional else 0
    latent, ema = int(mcfg.latent_dim), float(mcfg.ema)
    out_act = output_activation(mcfg, data)

    def new_gen(rngs):
        return build_generator(
            mcfg.arch, latent, data_shape, hidden=tuple(mcfg.hidden), channels=tuple(reversed(mcfg.channels)),
            act=mcfg.activation, out_act=out_act, n_classes=n_classes, rngs=rngs,
        )  # fmt: skip

    def new_disc(rngs):
        return build_discriminator(
            mcfg.arch, disc_shape, hidden=tuple(mcfg.disc_hidden), channels=tuple(mcfg.channels),
            act=mcfg.disc_activation, dropout=float(mcfg.dropout), n_classes=n_classes,
            sn=bool(mcfg.spectral_norm), rngs=rngs,
        )  # fmt: skip

    disc_shape = data_shape[:-1] + (m * data_shape[-1],)  # what D sees: m samples packed
    gen_def, _ = nnx.split(nnx.eval_shape(lambda: new_gen(nnx.Rngs(0))))
    disc_def, _ = nnx.split(nnx.eval_shape(lambda: new_disc(nnx.Rngs(0))))

    def init(key, example=None):
        kg, kd = jax.random.split(key)
        params = {"disc": nnx.split(new_disc(nnx.Rngs(kd)))[1], "gen": nnx.split(new_gen(nnx.Rngs(kg)))[1]}
        return ema_init(params, "gen", "gen_ema") if ema > 0 else params

    def labels(batch):
        if not n_classes:
            return None
        if "y" not in batch:
            raise ValueError("model.gan.conditional=True needs class labels, and this dataset has none.")
        return batch["y"]

    def generate(gen_state, key, n, y=None):
        z = jax.random.normal(key, (n, latent))
        return nnx.merge(gen_def, gen_state)(z, y)

    def disc_loss(params, batch, key, ctx):
        d = nnx.merge(disc_def, params["disc"])
        x, y = batch["x"], labels(batch)
        k_z, k_d1, k_d2, k_gp = jax.random.split(key, 4)
        fake = pack(jax.lax.stop_gradient(generate(params["gen"], k_z, x.shape[0], y)), m)
        x = pack(x, m)
        real_logit = d(x, y, k_d1, update=True)
        fake_logit = d(fake, y, k_d2)
        loss = jnp.mean(d_term(real_logit, fake_logit))
        logs = {"d_real": jnp.mean(real_logit), "d_fake": jnp.mean(fake_logit)}
        critic = lambda v: d(v, y)  # evaluation mode: no dropout, no power-iteration step
        # each penalty is computed where its weight (a state hyperparameter: a sweep may set it
        # per member) is positive; under vmap over members the cond becomes a select
        zero = lambda: jnp.zeros((), jnp.float32)  # noqa: E731
        mean32 = lambda v: jnp.mean(v.astype(jnp.float32))  # noqa: E731  (float32 under train.dtype=bfloat16 too)
        gp = jax.lax.cond(ctx.hp["gp"] > 0, lambda: mean32(adv.gradient_penalty(critic, x, fake, k_gp)), zero)
        r1 = jax.lax.cond(ctx.hp["r1"] > 0, lambda: mean32(adv.r1_penalty(critic, x)), zero)
        loss = loss + ctx.hp["gp"] * gp + 0.5 * ctx.hp["r1"] * r1
        logs |= {"gp": gp, "r1": r1}
        if mcfg.spectral_norm:
            logs["_vars"] = nnx.split_state(nnx.split(d)[1], nnx.Param, ...)[1]
        return loss, logs

    def gen_loss(params, batch, key, ctx):
        d = nnx.merge(disc_def, params["disc"])
        y = labels(batch)
        k_z, k_d = jax.random.split(key)
        fake_logit = d(pack(generate(params["gen"], k_z, batch["x"].shape[0], y), m), y, k_d)
        return jnp.mean(g_term(fake_logit)), {}

    def sampler(which):
        def sample(params, key, n, cond=None):
            k_y, k_z = jax.random.split(key)
            y = None
            if n_classes:
                y = jax.random.randint(k_y, (n,), 0, n_classes) if cond is None else jnp.asarray(cond)
            return generate(params[which], k_z, n, y)

        return sample

    disc_lr = float(mcfg.disc_lr)
    players = (
        Player(
            "disc",
            disc_loss,
            n_steps=int(ocfg.n_critic),
            split_batch=True,
            lr=disc_lr if disc_lr > 0 else None,
            per_update=m,
        ),
        Player("gen", gen_loss, post_update=ema_update("gen", "gen_ema", ema) if ema > 0 else None, per_update=m),
    )
    return Family(
        name="gan",
        convolutional=mcfg.arch == "conv",
        init=init,
        players=players,
        sample=sampler("gen_ema" if ema > 0 else "gen"),
        log_prob=None,
        log_prob_kind="none",
        hparams={"gp": float(ocfg.gp), "r1": float(ocfg.r1)},
        modules=lambda params: GANModules(nnx.merge(gen_def, params["gen"]), nnx.merge(disc_def, params["disc"])),
        progress=("disc/loss", "gen/loss"),
        curves=Curves("gen/loss", 1.0, "generator loss", ("disc/loss",), "discriminator loss"),
        samplers={"online": sampler("gen")} if ema > 0 else {},
        classes=n_classes,
    )
