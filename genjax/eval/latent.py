"""Posterior-collapse diagnostics of a latent-variable model (``Family.latent``) on a data split:

* KL per latent dimension, KL_k = E_x KL(q(z_k | x) || N(0, 1)) (the average over the split of
  1/2 [sigma_k^2 + mu_k^2 - 1 - log sigma_k^2]): a collapsed unit carries ~0 nats;
* active units (Burda et al. 2016, Sec. 5.2): unit k is active when A_k = Cov_x(E_q[z_k]) > 0.01,
  the variance over the split of its posterior mean.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax.eval import plots
from genjax.objectives.elbo import active_units, gaussian_kl_per_dim


def latent_diagnostics(latent, params, x, y=None, out_dir=None, batch: int = 500, threshold: float = 0.01) -> dict:
    """KL per dimension, the activity A_k and the active-unit count of ``latent`` on ``x`` (with
    its labels ``y`` for a conditional model); with ``out_dir`` the figure ``latent_usage.png``."""
    enc = jax.jit(lambda xb, *yb: latent.encode(params, xb, *yb))
    x = np.asarray(x)
    means, log_vars = [], []
    for i in range(0, len(x), batch):
        labels = (jnp.asarray(np.asarray(y)[i : i + batch]),) if latent.conditional else ()
        m, lv = enc(jnp.asarray(x[i : i + batch]), *labels)
        means.append(np.asarray(m))
        log_vars.append(np.asarray(lv))
    means, log_vars = np.concatenate(means), np.concatenate(log_vars)
    kl = np.asarray(gaussian_kl_per_dim(means, log_vars)).mean(0)
    count, a = active_units(means, threshold)
    out = {"active_units": count, "latent_dim": int(means.shape[1]), "activity": np.asarray(a).tolist(),
           "kl_per_dim": kl.tolist(), "kl_total": float(kl.sum())}  # fmt: skip
    if out_dir is not None:
        plots.latent_usage(np.asarray(a), kl, threshold, Path(out_dir) / "latent_usage.png")
    return out


def code_usage(codes, params, x, out_dir=None, batch: int = 500) -> dict:
    """How a discrete first stage (``Family.codes``) uses its codebook on ``x``: the code
    frequencies p_k over every position of every example, their perplexity exp(-sum p_k ln p_k)
    (``vocab`` when all codes are used equally, 1 when one takes all) and the number of codes used;
    with ``out_dir`` a bar chart of the frequencies (``codes.png``)."""
    enc = jax.jit(lambda xb: codes.encode(params, xb))
    idx = np.concatenate([np.asarray(enc(jnp.asarray(x[i : i + batch]))).reshape(-1) for i in range(0, len(x), batch)])
    p = np.bincount(idx, minlength=codes.vocab).astype(np.float64) / len(idx)
    nz = p[p > 0]
    out = {"vocab": int(codes.vocab), "positions": int(np.prod(codes.shape)), "perplexity": float(np.exp(-np.sum(
        nz * np.log(nz)))), "used": int(np.sum(p > 0))}  # fmt: skip
    if out_dir is not None:
        plots.code_usage(p, Path(out_dir) / "codes.png", out["perplexity"])
    return out
