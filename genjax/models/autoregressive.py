"""Autoregressive models over discrete data: exact likelihood by the chain rule,

    log p(x) = sum_d log p(x_d | x_<d),      NLL per token in bits = -log p(x) / (D ln 2),

trained by maximum likelihood (teacher forcing: every conditional of a sequence in one pass),
sampled one position at a time. The data are tokens: text token ids (``DataInfo.vocab``), or
image pixels on ``levels`` evenly spaced values (2 for binarized images, 17 for the digits,
256 for 8-bit images) mapped to ids 0..K-1; images are read in raster order. Block
``model.autoregressive``, ``arch``:

* ``made`` — a masked MLP (Germain et al. 2015); ``n_orders > 1`` trains that many orderings
  (one drawn per step) and averages them at test time: p(x) = (1/K) sum_k p_k(x), exact for the
  mixture;
* ``pixelcnn`` — masked convolutions (``gated``: without the blind spot), images with 1 channel;
* ``bigram`` — a table of next-token logits (the first step toward the GPT, and its baseline);
* ``transformer`` — a GPT-style causal transformer, sampled with a key-value cache.

For K = 2, MADE and PixelCNN output one logit per position (Bernoulli); otherwise (and the token
models always) K logits (categorical).
``conditional=True`` (labelled data): the class enters every network (MADE: a context vector;
PixelCNN: a class embedding in every layer; bigram / transformer: the start token is the class's
own), the loss is -log p(x | y), and ``log_prob`` is the exact likelihood of the joint model with a
uniform class prior, log p(x) = logsumexp_y log p(x | y) - log C, so its NLL compares with the
unconditional models'. Samples: temperature and top-k (``temperature``, ``top_k``); conditional
samples take the class per row (``cond``), random classes by default.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from genjax.fields import Bool, Choice, Float, Int, Ints, changeable, defaults
from genjax.models.base import Curves, DataInfo, Family, Player
from genjax.nn.autoregressive import MADE, Bigram, PixelCNN, Transformer

ARCHS = ("made", "pixelcnn", "bigram", "transformer")


FIELDS = {
    "arch": Choice("transformer", "made | pixelcnn | bigram | transformer (module docstring)", ARCHS),
    "hidden": Ints((512,), "made: hidden widths", ge=1),
    "n_orders": Int(1, "made: orderings trained (one per step) and averaged at test time", ge=1),
    "random_order": Bool(False, "made: the first ordering random too (else natural)"),
    "channels": Int(64, "pixelcnn: feature maps", ge=1),
    "n_layers": Int(4, "pixelcnn: residual / gated blocks; transformer: blocks", ge=1),
    "gated": Bool(False, "pixelcnn: gated blocks with vertical + horizontal stacks (no blind spot)"),
    "d_model": Int(128, "transformer width", ge=1),
    "n_heads": Int(4, "transformer attention heads (divides d_model)", ge=1),
    "mlp_ratio": Int(4, "transformer: MLP width / d_model", ge=1),
    "dropout": Float(0.0, "transformer: on embeddings, attention output and MLP output", ge=0.0, lt=1.0),
    "tie": Bool(True, "transformer: output layer = token embeddings (weight tying)"),
    "conditional": Bool(False, "class-conditional (labelled data)"),
    "temperature": Float(1.0, "sampling: logits / temperature", gt=0.0),
    "top_k": Int(0, "sampling: keep the k most likely tokens (0 = all)", ge=0),
    "seed": Int(0, "made: the random orderings and hidden degrees", ge=0),
}


def default_config() -> ml_collections.ConfigDict:
    """``model.autoregressive``: the network and its sampler (``FIELDS``)."""
    return defaults(FIELDS)


# added after the family blocks: no flat config ever held these fields (see upgrade_legacy)
FIELDS = changeable("sample", FIELDS, "temperature", "top_k")
LEGACY = None


def adjust_logits(logits, temperature: float = 1.0, top_k: int = 0):
    """``logits / temperature``, with every token outside the ``top_k`` largest at -inf."""
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return logits


def token_log_probs(out, tokens):
    """``log p(token)`` per position from a network output: categorical over ``out [..., K]``,
    or a Bernoulli of a single logit ``out [..., 1]`` (the logits [0, l]): t l - softplus(l),
    computed directly (no two-way softmax and gather)."""
    out = out.astype(jnp.float32)
    if out.shape[-1] == 1:
        logit = out[..., 0]
        return tokens.astype(jnp.float32) * logit - jax.nn.softplus(logit)
    lp = jax.nn.log_softmax(out, axis=-1)
    return jnp.take_along_axis(lp, tokens[..., None], axis=-1)[..., 0]


def full_logits(out):
    """The logits of a position from a network output, in float32: ``[0, l]`` for a single
    Bernoulli logit ``l``."""
    out = out.astype(jnp.float32)
    return jnp.concatenate([jnp.zeros_like(out), out], axis=-1) if out.shape[-1] == 1 else out


def make_autoregressive(mcfg, data: DataInfo) -> Family:
    arch = str(mcfg.arch)
    shape = tuple(int(s) for s in data.shape)
    d = math.prod(shape)
    k = int(data.vocab or data.levels or 0)
    if k < 2:
        raise ValueError(
            "model.family='autoregressive' models discrete data (token ids or images on a fixed number of grey "
            "levels); these data are continuous: binarize them (data.binarize) or turn data.dequantize off."
        )
    n_cls = int(data.n_classes) if mcfg.conditional else 0
    if mcfg.conditional and n_cls < 2:
        raise ValueError("model.autoregressive.conditional=True needs class labels, and this dataset has none.")
    if arch == "pixelcnn" and not (len(shape) == 3 and shape[-1] == 1):
        raise ValueError(f"model.autoregressive.arch='pixelcnn' takes images with one channel, got shape {shape}.")
    n_out = 1 if k == 2 else k
    temperature, top_k = float(mcfg.temperature), int(mcfg.top_k)

    def build(rngs):
        if arch == "made":
            return MADE(
                d, tuple(mcfg.hidden), n_out, n_orders=int(mcfg.n_orders), random_order=bool(mcfg.random_order),
                context_dim=n_cls, seed=int(mcfg.seed), rngs=rngs,
            )  # fmt: skip
        if arch == "pixelcnn":
            c, n = int(mcfg.channels), int(mcfg.n_layers)
            return PixelCNN(n_out, c, n, gated=bool(mcfg.gated), n_classes=n_cls, rngs=rngs)
        if arch == "bigram":
            return Bigram(k, max(n_cls, 1), rngs=rngs)
        return Transformer(
            k, max(n_cls, 1), d, int(mcfg.d_model), int(mcfg.n_layers), int(mcfg.n_heads), int(mcfg.mlp_ratio),
            float(mcfg.dropout), bool(mcfg.tie), rngs=rngs,
        )  # fmt: skip

    graphdef, _ = nnx.split(nnx.eval_shape(lambda: build(nnx.Rngs(0))))

    def module(params):
        return nnx.merge(graphdef, params["model"])

    def to_tokens(x):
        """``[B, *shape]`` data -> token ids ``[B, D]``."""
        if data.vocab:
            return x.reshape(x.shape[0], d).astype(jnp.int32)
        u = (x + 1.0) / 2.0 if data.scale == "-11" else x
        return jnp.clip(jnp.round(u.reshape(u.shape[0], d) * (k - 1)), 0, k - 1).astype(jnp.int32)

    def from_tokens(tok):
        if data.vocab:
            return tok.reshape(-1, *shape)
        u = (tok.astype(jnp.float32) / (k - 1)).reshape(-1, *shape)
        return 2.0 * u - 1.0 if data.scale == "-11" else u

    def start_of(y, b):
        """Start token ids: the class's own (conditional) or the one start token."""
        return k + (jnp.zeros((b,), jnp.int32) if y is None else y.astype(jnp.int32))

    def net_out(net, tok, y, key=None, which=0):
        """Network output per position ``[B, D, n_out]`` (teacher forcing)."""
        b = tok.shape[0]
        if arch == "made":
            ctx = None if not n_cls else jax.nn.one_hot(y, n_cls)
            return net(tok.astype(jnp.float32) / (k - 1), ctx, which)
        if arch == "pixelcnn":
            img = (tok.astype(jnp.float32) / (k - 1)).reshape(b, *shape)
            return net(img, y).reshape(b, d, n_out)
        inp = jnp.concatenate([start_of(y, b)[:, None], tok[:, :-1]], axis=1)
        return net(inp) if arch == "bigram" else net(inp, key)

    def cond_log_prob(net, tok, y, key=None, which=0):
        return jnp.sum(token_log_probs(net_out(net, tok, y, key, which), tok), axis=-1)

    def mixture_log_prob(net, tok, y):
        """log p(x | y), averaged over MADE's orderings: log (1/K) sum_k p_k(x | y)."""
        n = net.n_orders if arch == "made" else 1
        if n == 1:
            return cond_log_prob(net, tok, y)
        lps = jnp.stack([cond_log_prob(net, tok, y, which=i) for i in range(n)])
        return jax.nn.logsumexp(lps, axis=0) - math.log(n)

    def log_prob(params, x, key=None):
        """Exact log p(x) ``[B]`` in nats (conditional models: with a uniform class prior)."""
        net = module(params)
        tok = to_tokens(x)
        if not n_cls:
            return mixture_log_prob(net, tok, None)
        b = tok.shape[0]
        per_class = jnp.stack([mixture_log_prob(net, tok, jnp.full((b,), c, jnp.int32)) for c in range(n_cls)])
        return jax.nn.logsumexp(per_class, axis=0) - math.log(n_cls)

    def loss(params, batch, key, ctx):
        net = module(params)
        tok = to_tokens(batch["x"])
        y = batch["y"] if n_cls else None
        # MADE with several orderings trains one drawn per step; with one, its masks are static
        which = 0
        if arch == "made" and net.n_orders > 1:
            which = jax.random.randint(jax.random.fold_in(key, 1), (), 0, net.n_orders)
        nll = -jnp.mean(cond_log_prob(net, tok, y, key, which))
        return nll, {"nll": nll, "bits_per_token": nll / (d * math.log(2.0))}

    def labels(key, n, cond):
        if not n_cls:
            return None
        return jax.random.randint(key, (n,), 0, n_cls) if cond is None else jnp.asarray(cond, jnp.int32)

    cached = arch in ("bigram", "transformer", "made")

    def drawer(temp, k_top, prompt):
        """``draw(key, logits, i) -> tokens``: a categorical draw of the adjusted logits at
        position ``i``, or the prompt's token there (``prompt [n, P]``: the first P positions)."""

        def draw(key, logits, i):
            t = jax.random.categorical(key, adjust_logits(logits, temp, k_top)).astype(jnp.int32)
            if prompt is None:
                return t
            p = prompt.shape[-1]
            return jnp.where(i < p, prompt[:, jnp.minimum(i, p - 1)], t)

        return draw

    def full(params, key, n, cond=None, temp=temperature, k_top=top_k, prompt=None):
        """One whole-network pass per position (MADE in its first ordering, PixelCNN in raster
        order; the transformer without its cache)."""
        net = module(params)
        k_y, key = jax.random.split(key)
        y = labels(k_y, n, cond)
        positions = jnp.argsort(net.orders[...][0]) if arch == "made" else jnp.arange(d)
        draw = drawer(temp, k_top, prompt)

        def body(i, tok):
            p = positions[i]
            out = net_out(net, tok, y)[:, p]
            return tok.at[:, p].set(draw(jax.random.fold_in(key, i), full_logits(out), i))

        return from_tokens(jax.lax.fori_loop(0, d, body, jnp.zeros((n, d), jnp.int32)))

    def cached_(params, key, n, cond=None, temp=temperature, k_top=top_k, prompt=None):
        """Transformer: one position per step of a ``lax.scan``, keys and values of the earlier
        positions cached; bigram: the table row of the previous token; MADE: its first layer's
        pre-activation updated by each drawn input and only the drawn position's outputs computed
        (``MADE.sampler``; the same keys, order and draws as ``full``)."""
        net = module(params)
        k_y, key = jax.random.split(key)
        y = labels(k_y, n, cond)
        draw = drawer(temp, k_top, prompt)
        if arch == "made":
            positions = jnp.argsort(net.orders[...][0])
            a, add, out = net.sampler(n, None if not n_cls else jax.nn.one_hot(y, n_cls))

            def made_body(i, carry):
                tok, a = carry
                p = positions[i]
                t = draw(jax.random.fold_in(key, i), full_logits(out(a, p)), i)
                return tok.at[:, p].set(t), add(a, p, t.astype(jnp.float32) / (k - 1))

            tok, _ = jax.lax.fori_loop(0, d, made_body, (jnp.zeros((n, d), jnp.int32), a))
            return from_tokens(tok)
        first = start_of(y, n)

        if arch == "bigram":

            def body(prev, i):
                t = draw(jax.random.fold_in(key, i), net(prev), i)
                return t, t

            _, toks = jax.lax.scan(body, first, jnp.arange(d))
        else:
            dtype = net.tok.embedding[...].dtype

            def body(carry, i):
                prev, cache = carry
                logits, cache = net.step(prev, cache, i)
                t = draw(jax.random.fold_in(key, i), logits.astype(jnp.float32), i)
                return (t, cache), t

            _, toks = jax.lax.scan(body, (first, net.init_cache(n, dtype)), jnp.arange(d))
        return from_tokens(toks.T)

    def sample_full(params, key, n, cond=None):
        return full(params, key, n, cond)

    def sample_cached(params, key, n, cond=None):
        return cached_(params, key, n, cond)

    def generate(params, key, n, cond=None, *, temperature=None, top_k=None, prompt=None):
        """``sample`` with the sampling settings given at call time (``None``: the config's):
        ``temperature`` > 0, ``top_k`` >= 0 (0: every token), ``prompt`` — token ids ``[P]`` or
        ``[n, P]`` that the first P positions take (every later one is drawn given them)."""
        temp = float(mcfg.temperature if temperature is None else temperature)
        k_top = int(mcfg.top_k if top_k is None else top_k)
        if not (math.isfinite(temp) and temp > 0):
            raise ValueError(f"the sampling temperature must be a positive number, got {temperature!r}.")
        if k_top < 0:
            raise ValueError(f"top_k must be >= 0 (0: every token), got {top_k!r}.")
        if prompt is not None:
            prompt = jnp.asarray(prompt, jnp.int32)
            prompt = jnp.broadcast_to(prompt, (n, prompt.shape[-1])) if prompt.ndim == 1 else prompt
            if prompt.shape[0] != n or not 0 < prompt.shape[1] <= d:
                raise ValueError(f"the prompt must hold 1 to {d} token ids (per row of the {n} samples), got shape "
                                 f"{tuple(prompt.shape)}.")  # fmt: skip
            if int(jnp.min(prompt)) < 0 or int(jnp.max(prompt)) >= k:
                raise ValueError(f"the prompt's token ids must lie in 0..{k - 1}.")
        fn = cached_ if cached else full
        return fn(params, key, n, cond, temp, k_top, prompt)

    return Family(
        name="autoregressive",
        convolutional=arch == "pixelcnn",
        init=lambda key, example=None: {"model": nnx.split(build(nnx.Rngs(key)))[1]},
        players=(Player("model", loss),),
        sample=sample_cached if cached else sample_full,
        log_prob=log_prob,
        log_prob_kind="exact",
        estimator="exact (chain rule" + (f", the mixture of {int(mcfg.n_orders)} orderings" if arch == "made"
                                         and int(mcfg.n_orders) > 1 else "") + ")",
        modules=module,
        progress=("loss", "bits_per_token"),
        curves=Curves("nll", 1.0, "train NLL"),
        samplers={"uncached": sample_full} if arch in ("transformer", "made") else {},
        generate=generate,
        info={"arch": arch, "tokens": k, "positions": d},
        tokens=True,
        classes=n_cls,
    )
