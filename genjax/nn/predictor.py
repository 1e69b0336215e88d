"""A network from an input x to the parameters of p(y | x): an MLP on the flattened input, or
strided convolutions (kernel 4, stride 2, as ``genjax.nn.encoders.ConvEncoder``) followed by an
MLP head. The likelihood that reads its outputs lives in ``genjax.models.predictor``."""

from __future__ import annotations

import math
from collections.abc import Sequence

from flax import nnx

from genjax.nn.layers import MLP, Dropout, activation, split_key


class PredictorNet(nnx.Module):
    """x ``[B, *in_shape]`` -> ``[B, n_out]``."""

    def __init__(self, arch: str, in_shape, n_out: int, *, hidden: Sequence[int], channels: Sequence[int] = (),
                 act: str = "relu", dropout: float = 0.0, rngs: nnx.Rngs):  # fmt: skip
        if arch not in ("mlp", "conv"):
            raise ValueError(f"model.predictor.arch must be 'mlp' or 'conv', got {arch!r}.")
        in_shape = tuple(in_shape)
        self.convs = None
        flat = math.prod(in_shape)
        if arch == "conv":
            if len(in_shape) != 3:
                raise ValueError(f"model.predictor.arch='conv' needs images (H, W, C), got inputs of shape {in_shape}.")
            f = 2 ** len(channels)
            if in_shape[0] % f or in_shape[1] % f:
                raise ValueError(
                    f"model.predictor.channels: image size {in_shape[0]}x{in_shape[1]} is not divisible by "
                    f"2**{len(channels)}; use fewer conv stages."
                )
            chans = [in_shape[-1], *channels]
            self.convs = nnx.List(
                [nnx.Conv(a, b, (4, 4), strides=2, padding="SAME", rngs=rngs) for a, b in zip(chans[:-1], chans[1:])]
            )
            flat = (in_shape[0] // f) * (in_shape[1] // f) * chans[-1]
        self.act = activation(act)
        self.dropout = Dropout(dropout) if dropout > 0 and self.convs is not None else None
        self.head = MLP([flat, *hidden, n_out], act, dropout, rngs=rngs)

    def __call__(self, x, key=None):
        keys = split_key(key, 1 + (len(self.convs) if self.convs is not None else 0))
        h = x
        if self.convs is not None:
            for conv, k in zip(self.convs, keys[1:]):
                h = self.act(conv(h))
                if self.dropout is not None:
                    h = self.dropout(h, k)
        return self.head(h.reshape(h.shape[0], -1), keys[0])
