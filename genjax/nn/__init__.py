"""Flax NNX modules only: networks that map arrays to arrays. No losses here."""

from genjax.nn.encoders import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, build_decoder, build_encoder
from genjax.nn.layers import MLP, Dropout, activation, set_dropout_rate

__all__ = [
    "MLP",
    "Dropout",
    "set_dropout_rate",
    "activation",
    "MLPEncoder",
    "MLPDecoder",
    "ConvEncoder",
    "ConvDecoder",
    "build_encoder",
    "build_decoder",
]
