"""Flax NNX modules only: networks that map arrays to arrays. No losses here."""

from genjax.nn.encoders import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, build_decoder, build_encoder
from genjax.nn.layers import MLP, activation

__all__ = [
    "MLP",
    "activation",
    "MLPEncoder",
    "MLPDecoder",
    "ConvEncoder",
    "ConvDecoder",
    "build_encoder",
    "build_decoder",
]
