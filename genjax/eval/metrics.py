"""Held-out likelihood metrics for any family that follows the protocol.

* ``nll``: -mean log p(x) over the split, from ``family.log_prob`` (exact for flows and
  autoregressive models; for a VAE the importance-sampled estimate with ``eval.nll_samples``
  samples, an upper bound on the true NLL in expectation that tightens as k grows).
* the family's bound (``family.bound``, named ``family.bound_name``: a VAE's ``elbo``, a
  diffusion model's ``ddpm_bound``), where it has one, and the bound in bits/dim
  (``<bound_name>_bits_per_dim``, the same conversion).
* ``bits_per_dim``: nll / (D ln 2), with the dequantization correction where the data were
  dequantized (see ``genjax.objectives.likelihood.bits_per_dim``).
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from genjax.data.batching import eval_set
from genjax.objectives.likelihood import bits_per_dim
from genjax.train import programs
from genjax.train.engine import batched_mean


@functools.partial(jax.jit, static_argnums=0)
def _mean(fn, params, batches, key):
    return batched_mean(fn, params, batches, key)


def _family_mean(family, what: str):
    """``(params, batches, key) -> `` the mean of ``family.<what>`` (``log_prob`` or ``bound``)
    over the batches: a kept program (``genjax.train.programs``, under the family's origin, so a
    later ``genjax eval`` of the run reads it instead of tracing it again), or the plain jitted
    ``_mean`` for a family that carries no origin."""
    fn, origin = getattr(family, what), getattr(family, "origin", None)
    if origin is None:
        return functools.partial(_mean, fn)
    return programs.jit(functools.partial(batched_mean, fn), key=programs.digest("heldout mean", origin, what))


def heldout_metrics(family, params, x, key, *, batch_size: int, num_dims: int, bin_width=None, y=None,
                    example: str = "example") -> dict:  # fmt: skip
    """NLL (nats/example), bits/dim and, where available, the ELBO on ``x`` (with its labels
    ``y`` for a labelled family: -log p(x | y) or, for a predictor, -log p(y | x)). The dict says
    what each figure is: ``nll_unit`` (nats per ``example``, e.g. "image (8x8x1)"),
    ``estimator`` (the family's words for its ``log_prob``), ``bits_per_dim_over`` (the
    dimensions), ``dequantized`` (bits/dim then bound the discrete NLL)."""
    if family.labelled and y is None:
        raise ValueError(f"the {family.name} model scores labelled examples; the evaluation split has no labels.")
    batches = jax.device_put(eval_set(np.asarray(x), batch_size, y if family.labelled else None))
    k_nll, k_elbo = jax.random.split(key)
    nll = -float(_family_mean(family, "log_prob")(params, batches, k_nll))
    out = {
        "n": int(x.shape[0]),
        "nll": nll,
        "nll_kind": family.log_prob_kind,
        "nll_unit": f"nats per {example}",
        "estimator": family.estimator or family.log_prob_kind,
        "bits_per_dim": float(bits_per_dim(nll, num_dims, bin_width)),
        "bits_per_dim_over": int(num_dims),
        "dequantized": bin_width is not None,
    }
    if family.val_estimator:
        out["validation_estimator"] = family.val_estimator
    if family.bound is not None:
        b = float(_family_mean(family, "bound")(params, batches, k_elbo))
        out |= {"bound_name": family.bound_name, family.bound_name: b,
                f"{family.bound_name}_bits_per_dim": float(bits_per_dim(-b, num_dims, bin_width))}  # fmt: skip
    out |= dict(family.info)
    return out
