"""Invertible layers for normalizing flows (per example; vmapped by the caller)."""

from genjax.nn.flows.layers import (
    MADE,
    MAF,
    ActNorm,
    Coupling,
    Flow,
    Invertible1x1Conv,
    Permute,
    alternating_mask,
    half_mask,
)

__all__ = [
    "MADE",
    "MAF",
    "ActNorm",
    "Coupling",
    "Flow",
    "Invertible1x1Conv",
    "Permute",
    "alternating_mask",
    "half_mask",
]
