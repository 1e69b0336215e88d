"""A plain-JAX GPT training step (no Flax, no genjax), the baseline for ``benchmarks/gpt_step.py``.

Same math as ``genjax.nn.autoregressive.Transformer`` with tied embeddings and no dropout:
h = E[inp] + P; per block h += W_o attn(LN(h)) (causal, ``jax.nn.dot_product_attention``),
h += W_2 gelu(W_1 LN(h)); logits = LN(h) E[:V]^T; loss = mean token NLL x T (nats per sequence).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def init(key, vocab: int, n_start: int, t: int, d: int, layers: int, mlp_ratio: int = 4) -> dict:
    ks = iter(jax.random.split(key, 4 + 4 * layers))
    dense = lambda a, b: {"w": jax.random.normal(next(ks), (a, b)) / jnp.sqrt(a), "b": jnp.zeros((b,))}  # noqa: E731
    ln = lambda: {"g": jnp.ones((d,)), "b": jnp.zeros((d,))}  # noqa: E731
    return {
        "tok": 0.02 * jax.random.normal(next(ks), (vocab + n_start, d)),
        "pos": 0.02 * jax.random.normal(next(ks), (t, d)),
        "blocks": [
            {
                "ln1": ln(),
                "ln2": ln(),
                "qkv": dense(d, 3 * d),
                "proj": dense(d, d),
                "fc1": dense(d, mlp_ratio * d),
                "fc2": dense(mlp_ratio * d, d),
            }  # fmt: skip
            for _ in range(layers)
        ],
        "ln": ln(),
    }


def _ln(p, x):
    mu = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean((x - mu) ** 2, -1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-6) * p["g"] + p["b"]


def loss(params, tok, vocab: int, heads: int):
    """Mean over the batch of the sequence NLL, start token ``vocab`` then tokens 0..T-2 as input."""
    b, t = tok.shape
    inp = jnp.concatenate([jnp.full((b, 1), vocab, tok.dtype), tok[:, :-1]], axis=1)
    h = params["tok"][inp] + params["pos"][:t]
    d = h.shape[-1]
    for blk in params["blocks"]:
        qkv = _ln(blk["ln1"], h) @ blk["qkv"]["w"] + blk["qkv"]["b"]
        q, k, v = [a.reshape(b, t, heads, d // heads) for a in jnp.split(qkv, 3, axis=-1)]
        att = jax.nn.dot_product_attention(q, k, v, is_causal=True).reshape(b, t, d)
        h = h + att @ blk["proj"]["w"] + blk["proj"]["b"]
        m = jax.nn.gelu(_ln(blk["ln2"], h) @ blk["fc1"]["w"] + blk["fc1"]["b"])
        h = h + m @ blk["fc2"]["w"] + blk["fc2"]["b"]
    logits = (_ln(params["ln"], h) @ params["tok"][:vocab].T).astype(jnp.float32)
    lp = jnp.take_along_axis(jax.nn.log_softmax(logits), tok[..., None], axis=-1)[..., 0]
    return -jnp.mean(jnp.sum(lp, -1))


def make_train(tx: optax.GradientTransformation, vocab: int, heads: int):
    """``train(params, opt_state, batches [S, B, T]) -> (params, opt_state, losses [S])``."""

    def step(carry, tok):
        params, opt_state = carry
        val, g = jax.value_and_grad(loss)(params, tok, vocab, heads)
        updates, opt_state = tx.update(g, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), val

    def train(params, opt_state, batches):
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), batches)
        return params, opt_state, losses

    return train
