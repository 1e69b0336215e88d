"""Invertible layers for normalizing flows (per example; vmapped by the caller)."""

from genjax.nn.flows.image import ConvCoupling, MultiScale, squeeze, unsqueeze
from genjax.nn.flows.layers import (
    MADE,
    MAF,
    ActNorm,
    Coupling,
    Flow,
    Invertible1x1Conv,
    LogitTransform,
    Permute,
    Reshape,
    alternating_mask,
    half_mask,
)

__all__ = [
    "ConvCoupling",
    "MultiScale",
    "squeeze",
    "unsqueeze",
    "MADE",
    "MAF",
    "ActNorm",
    "Coupling",
    "Flow",
    "Invertible1x1Conv",
    "LogitTransform",
    "Permute",
    "Reshape",
    "alternating_mask",
    "half_mask",
]
