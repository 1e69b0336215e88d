"""The Dirac-GAN (Mescheder et al. 2018, "Which training methods for GANs do actually converge?").

The data are one point, x = 0; the generator is one point, G = theta; the discriminator is
linear, D_psi(x) = psi x. The unique equilibrium is (theta, psi) = (0, 0). With the Wasserstein
losses (``model.gan.objective = wgan``) the gradient field is linear, and plain gradient steps of
size h map (theta, psi) by a fixed matrix:

    simultaneous   [[1, h], [-h, 1 - h gamma]]                       (both gradients at the old point)
    alternating    [[1 - h^2, h (1 - h gamma)], [-h, 1 - h gamma]]   (D first, then G at the new psi)

with R1 weight gamma (``model.gan.r1``: the penalty gamma/2 ||grad_x D(x)||^2 = gamma/2 psi^2 on
the data). Without the penalty the simultaneous map has |eigenvalues| = sqrt(1 + h^2) > 1: the
iterates spiral outward, ||(theta, psi)|| growing by exactly that factor per step; the alternating
map has determinant 1 and trace 2 - h^2: eigenvalues on the unit circle, an orbit that stays
bounded but never converges. With gamma > h both converge. The players below are the GAN
family's own loss terms (``genjax.models.gan.LOSSES``, ``genjax.objectives.adversarial``) on
this model, so ``genjax.train.engine.make_step`` runs them in either ``update_order``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from genjax.models.base import Player
from genjax.models.gan import LOSSES
from genjax.objectives import adversarial as adv


class Scalar(nnx.Module):
    def __init__(self, value: float):
        self.v = nnx.Param(jnp.asarray(value, jnp.float32))


def init_params(theta: float, psi: float) -> dict:
    return {"disc": nnx.split(Scalar(psi))[1], "gen": nnx.split(Scalar(theta))[1]}


def point(params) -> tuple[jax.Array, jax.Array]:
    """(theta, psi)."""
    return params["gen"]["v"][...], params["disc"]["v"][...]


def players(objective: str = "wgan", r1: float = 0.0, gp: float = 0.0) -> tuple[Player, Player]:
    """The discriminator and generator players; the batch is ``{"x": zeros [B, 1]}`` (the data).
    ``r1``: gamma of the R1 penalty gamma/2 ||grad_x D(x)||^2 on the data; ``gp``: lambda of the
    WGAN-GP penalty lambda (||grad_x D(x_hat)|| - 1)^2 on interpolates (here |psi| - 1)."""
    d_term, g_term = LOSSES[objective]

    def disc_loss(params, batch, key, ctx):
        theta, psi = point(params)
        x = batch["x"]
        critic = lambda v: psi * v[:, 0]  # noqa: E731
        fake = jnp.full((x.shape[0], 1), theta)
        loss = jnp.mean(d_term(critic(x), critic(fake)))
        loss = loss + 0.5 * r1 * jnp.mean(adv.r1_penalty(critic, x))
        return loss + gp * jnp.mean(adv.gradient_penalty(critic, x, fake, key)), {}

    def gen_loss(params, batch, key, ctx):
        theta, psi = point(params)
        return jnp.mean(g_term(jnp.full((batch["x"].shape[0],), psi * theta))), {}

    return Player("disc", disc_loss), Player("gen", gen_loss)


def linear_map(h: float, gamma: float, order: str) -> np.ndarray:
    """The matrix taking (theta, psi) one step on, for the Wasserstein losses (module docstring)."""
    if order == "simultaneous":
        return np.array([[1.0, h], [-h, 1.0 - h * gamma]])
    return np.array([[1.0 - h * h, h * (1.0 - h * gamma)], [-h, 1.0 - h * gamma]])
