"""A plain-JAX MLP VAE training step (no Flax, no genjax), the baseline for
``benchmarks/train_step.py`` and an independent oracle for the genjax VAE in the tests.

Same math as ``genjax.models.vae`` with ``model.vae.objective = 'elbo'``, a Bernoulli decoder and
ReLU MLPs: loss = -mean_b [log p(x_b | z_b) - KL(q(z|x_b) || N(0, I))], z = mu + sigma * eps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def init_mlp(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"kernel": jax.random.normal(k, (a, b)) * jnp.sqrt(1.0 / a), "bias": jnp.zeros((b,))}
        for k, a, b in zip(keys, sizes[:-1], sizes[1:])
    ]


def mlp(layers, x):
    for i, layer in enumerate(layers):
        x = x @ layer["kernel"] + layer["bias"]
        if i < len(layers) - 1:
            x = jax.nn.relu(x)
    return x


def init(key, x_dim: int, hidden, latent: int):
    k1, k2 = jax.random.split(key)
    return {
        "enc": init_mlp(k1, [x_dim, *hidden, 2 * latent]),
        "dec": init_mlp(k2, [latent, *reversed(hidden), x_dim]),
    }


def loss(params, x_bxd, eps_bxk):
    """Negative ELBO (beta = 1) averaged over the batch, with given noise ``eps``."""
    h = mlp(params["enc"], x_bxd)
    mean, log_var = jnp.split(h, 2, axis=-1)
    z = mean + jnp.exp(0.5 * log_var) * eps_bxk
    logits = mlp(params["dec"], z)
    log_px_z = jnp.sum(x_bxd * logits - jax.nn.softplus(logits), axis=-1)
    kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)
    return -jnp.mean(log_px_z - kl)


def make_train(tx: optax.GradientTransformation, latent: int):
    """``train(params, opt_state, batches [S, B, D], key) -> (params, opt_state, losses [S])``:
    ``S`` steps in one ``lax.scan``."""

    def step(carry, inp):
        params, opt_state = carry
        x, k = inp
        eps = jax.random.normal(k, (x.shape[0], latent))
        val, g = jax.value_and_grad(loss)(params, x, eps)
        updates, opt_state = tx.update(g, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), val

    def train(params, opt_state, batches, key):
        keys = jax.random.split(key, batches.shape[0])
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (batches, keys))
        return params, opt_state, losses

    return train


def from_genjax(state) -> dict:
    """The plain parameter dict holding the same arrays as a genjax MLP VAE's ``nnx.State``."""
    pure = state.to_pure_dict()

    def layers(mlp_state):
        return [
            {"kernel": mlp_state["layers"][i]["kernel"], "bias": mlp_state["layers"][i]["bias"]}
            for i in sorted(mlp_state["layers"])
        ]

    return {"enc": layers(pure["encoder"]["mlp"]), "dec": layers(pure["decoder"]["mlp"])}
