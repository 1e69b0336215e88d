"""Break every formula behind a printed figure on purpose and check that a test fails.

    python tools/mutants.py            # every mutant; prints one line each and the survivors
    python tools/mutants.py --list     # the mutants, without running them
    python tools/mutants.py NAME ...   # only these

Each mutant replaces one exact snippet of a source file (a constant, a factor, a swapped argument,
an off-by-one in a mask or a time index) in a copy of the tracked files (``git ls-files``), then
runs the tests named beside it (``pytest -x``). A mutant that no test kills is a formula without a
guard: write the test. The copy is made once per invocation under a temporary folder; the working
tree is never touched.
"""

# ruff: noqa: E501  (the mutant table: one source snippet per cell)
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OBJ = "genjax/objectives/"
M = "genjax/models/"
E = "genjax/eval/"
T = "tests/"
T_ELBO, T_LIK, T_SCORE, T_ADV = T + "objectives/test_elbo.py", T + "objectives/test_likelihood.py", \
    T + "objectives/test_score.py", T + "objectives/test_adversarial.py"  # fmt: skip
T_SQ, T_DIV, T_FLOWS = T + "eval/test_sample_quality.py", T + "eval/test_divergences.py", T + "nn/test_flows.py"
T_VAE, T_VAR, T_DIFF = T + "models/test_vae.py", T + "models/test_vae_variants.py", T + "models/test_diffusion.py"
T_AR, T_PRED, T_FLOW = T + "models/test_autoregressive.py", T + "models/test_predictor.py", T + "models/test_flow.py"
T_FORM = T + "test_formulas.py"
T_FM = T + "objectives/test_flow_matching.py"
T_VQ, T_LAT = T + "models/test_vqvae.py", T + "models/test_latents.py"
T_EDM, T_MEDM, T_CT = T + "objectives/test_edm.py", T + "models/test_edm.py", T + "models/test_consistency.py"

# (name, file, exact snippet, replacement, tests)
MUTANTS = [
    # --- objectives/elbo.py
    ("infovae: the KL weight alpha for 1 - alpha", OBJ + "elbo.py", "+ (1.0 - alpha) * jnp.mean(jnp.asarray(kl))",
     "+ alpha * jnp.mean(jnp.asarray(kl))", [T_FORM]),
    ("iwae from log weights: log k over the batch axis", OBJ + "elbo.py", "axis=0) - math.log(log_w.shape[0])\n\n\ndef infovae",
     "axis=0) - math.log(log_w.shape[1])\n\n\ndef infovae", [T_FORM]),
    ("kl per dim: drop 1/2", OBJ + "elbo.py", "return 0.5 * (jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var)",
     "return (jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var)", [T_ELBO]),
    ("kl per dim: sign of log_var", OBJ + "elbo.py", "jnp.square(mean) - 1.0 - log_var)", "jnp.square(mean) - 1.0 + log_var)",
     [T_ELBO]),
    ("kl between: swap q and p variances", OBJ + "elbo.py", "log_var_p - log_var_q + (jnp.exp(log_var_q)",
     "log_var_q - log_var_p + (jnp.exp(log_var_q)", [T_ELBO, T_VAR]),
    ("reparameterize: std = exp(log_var)", OBJ + "elbo.py", "return mean + jnp.exp(0.5 * log_var) * eps",
     "return mean + jnp.exp(log_var) * eps", [T_ELBO, T_VAE]),
    ("iwae: no log k", OBJ + "elbo.py", "- jnp.asarray(log_qz_x)\n    return jax.nn.logsumexp(log_w, axis=0) - math.log(log_w.shape[0])",
     "- jnp.asarray(log_qz_x)\n    return jax.nn.logsumexp(log_w, axis=0)", [T_ELBO, T_VAE]),
    ("elbo: beta on the reconstruction", OBJ + "elbo.py", "return jnp.asarray(log_px_z) - beta * jnp.asarray(kl)",
     "return beta * jnp.asarray(log_px_z) - jnp.asarray(kl)", [T_ELBO, T_VAE, T_VAR]),
    ("log weights: + log q", OBJ + "elbo.py", "return log_px_z + log_pz - log_qz", "return log_px_z + log_pz + log_qz",
     [T_ELBO, T_VAE]),
    ("free bits: > becomes <", OBJ + "elbo.py", "jnp.mean(kl, axis=0) > free_bits", "jnp.mean(kl, axis=0) < free_bits",
     [T_ELBO, T_VAR]),
    ("rbf: 2 s^2 -> s^2", OBJ + "elbo.py", "return jnp.exp(-d2 / (2.0 * s2))", "return jnp.exp(-d2 / s2)", [T_FORM, T_ELBO, T_VAR]),
    ("imq: C = 2 K -> K", OBJ + "elbo.py", "c = 2.0 * a.shape[-1] * (", "c = 1.0 * a.shape[-1] * (", [T_FORM, T_ELBO, T_VAR]),
    ("mmd: cross term x1", OBJ + "elbo.py", "- 2.0 * jnp.mean(k(x, y, bandwidth))", "- jnp.mean(k(x, y, bandwidth))",
     [T_FORM, T_ELBO, T_VAR]),
    ("active units: std not var", OBJ + "elbo.py", "a = jnp.var(jnp.asarray(means, jnp.float32), axis=0)",
     "a = jnp.std(jnp.asarray(means, jnp.float32), axis=0)", [T_ELBO, T_VAR]),
    ("linear warm-up: off by one step", OBJ + "elbo.py", "jnp.asarray(step, jnp.float32) / warmup_steps)",
     "(jnp.asarray(step, jnp.float32) + 1) / warmup_steps)", [T_ELBO, T_VAE]),
    # --- objectives/likelihood.py
    ("bernoulli: sign", OBJ + "likelihood.py", "return _sum_event(x * logits - jax.nn.softplus(logits), event_ndims)",
     "return _sum_event(x * logits + jax.nn.softplus(-logits), event_ndims)", [T_LIK, T_ELBO, T_VAE]),
    ("gaussian log prob: drop log 2 pi", OBJ + "likelihood.py", "terms = -0.5 * (LOG_2PI + log_var + (x - mean) ** 2",
     "terms = -0.5 * (log_var + (x - mean) ** 2", [T_LIK, T_ELBO, T_VAE]),
    ("standard normal: factor 1/2 on z^2 only", OBJ + "likelihood.py", "-0.5 * (LOG_2PI + jnp.square(z))",
     "-0.5 * LOG_2PI - jnp.square(z)", [T_LIK, T_ELBO, T_FLOW]),
    ("bits/dim: + D log bin", OBJ + "likelihood.py", "nll = nll - num_dims * math.log(bin_width)",
     "nll = nll + num_dims * math.log(bin_width)", [T_FORM, T_LIK, T_FLOW]),
    ("bits/dim: log 10", OBJ + "likelihood.py", "return nll / (num_dims * math.log(2.0))",
     "return nll / (num_dims * math.log(10.0))", [T_FORM, T_LIK, T_FLOW]),
    ("heteroscedastic: floor outside", OBJ + "likelihood.py", "var = jnp.exp(log_var) + min_var",
     "var = jnp.exp(log_var + min_var)", [T_FORM, T_LIK, T_PRED]),
    ("student t: (nu + 1) / 2 -> nu / 2", OBJ + "likelihood.py", "- (df + 1) / 2 * jnp.log1p(jnp.square(u) / df)",
     "- df / 2 * jnp.log1p(jnp.square(u) / df)", [T_LIK, T_PRED]),
    ("student t: drop log scale", OBJ + "likelihood.py", "        - jnp.log(scale)\n", "", [T_FORM, T_LIK, T_PRED]),
    ("focal: (1 - p) -> p", OBJ + "likelihood.py", "jnp.maximum(-jnp.expm1(logp_t), 1e-30)",
     "jnp.maximum(jnp.exp(logp_t), 1e-30)", [T_LIK, T_PRED]),
    # --- objectives/adversarial.py
    ("gradient penalty: (||g|| - 1)^2 -> ||g||^2", OBJ + "adversarial.py", "+ 1e-12) - 1.0) ** 2", "+ 1e-12)) ** 2",
     [T_ADV]),
    ("gradient penalty: interpolate at e = 1 - e", OBJ + "adversarial.py", "x_hat = e * real + (1.0 - e) * fake",
     "x_hat = e * real + e * fake", [T_FORM, T_ADV]),
    # --- objectives/score.py
    ("linear schedule: 1/2 dropped", OBJ + "score.py", "0.5 * (self.beta_max - self.beta_min) * t**2",
     "(self.beta_max - self.beta_min) * t**2", [T_FORM, T_SCORE]),
    ("cosine schedule: s offset", OBJ + "score.py", "_COSINE_S = 0.008", "_COSINE_S = 0.08", [T_FORM, T_SCORE]),
    ("ve: geometric exponent", OBJ + "score.py", "self.sigma_min * (self.sigma_max / self.sigma_min) ** t",
     "self.sigma_min * (self.sigma_max / self.sigma_min) ** (t * t)", [T_FORM, T_SCORE]),
    ("transition: v_ts sign", OBJ + "score.py", "return a_ts, s_t**2 - a_ts**2 * s_s**2", "return a_ts, s_t**2 - a_ts * s_s**2",
     [T_FORM, T_SCORE]),
    ("posterior: var s_s^2 / s_t^2 -> s_s / s_t", OBJ + "score.py", "return c_t * xt + c_0 * x0, v_ts * s_s**2 / s_t**2",
     "return c_t * xt + c_0 * x0, v_ts * s_s / s_t", [T_FORM, T_SCORE]),
    ("posterior: swap the mean coefficients", OBJ + "score.py", "return c_t * xt + c_0 * x0,", "return c_0 * xt + c_t * x0,",
     [T_FORM, T_SCORE]),
    ("dsm: eps / sigma^2", OBJ + "score.py", "return 0.5 * _sum_event((score_fn(xt) + eps / sigma) ** 2)",
     "return 0.5 * _sum_event((score_fn(xt) + eps / sigma**2) ** 2)", [T_FORM, T_SCORE]),
    ("sliced sm: 1/2 dropped", OBJ + "score.py", "quad + (0.5 * _sum_event(s**2) if variance_reduced",
     "quad + (_sum_event(s**2) if variance_reduced", [T_SCORE]),
    ("gaussian kl (vlb): var ratio swapped", OBJ + "score.py", "jnp.log(var2) - jnp.log(var1) + (var1 + (mean1 - mean2) ** 2) / var2",
     "jnp.log(var1) - jnp.log(var2) + (var1 + (mean1 - mean2) ** 2) / var2", [T_FORM, T_SCORE]),
    ("vlb: step kl factor 2", OBJ + "score.py", "return _sum_event((mean_q - mean_p) ** 2) / (2.0 * var)",
     "return _sum_event((mean_q - mean_p) ** 2) / var", [T_SCORE, T_DIFF]),
    ("vlb: time index off by one", OBJ + "score.py", "eps_hat = eps_fn(xi, i / n_steps)", "eps_hat = eps_fn(xi, (i - 1) / n_steps)",
     [T_FORM, T_SCORE, T_DIFF]),
    ("vlb: decoder at x_2", OBJ + "score.py", "x1, _ = perturb(x0, k_dec, a[1], s[1])", "x1, _ = perturb(x0, k_dec, a[2], s[2])",
     [T_FORM, T_SCORE, T_DIFF]),
    ("vlb estimate: T instead of T - 1", OBJ + "score.py", "(n_steps - 1) * t[\"steps\"][:, 0]", "n_steps * t[\"steps\"][:, 0]",
     [T_SCORE, T_DIFF]),
    ("discretized decoder: half width x2", OBJ + "score.py", "0.5 * (self.hi - self.lo) / (self.levels - 1)",
     "(self.hi - self.lo) / (self.levels - 1)", [T_SCORE, T_DIFF]),
    ("prior log prob: variance not std", OBJ + "score.py", "return _sum_event(-0.5 * (LOG_2PI + math.log(v) + x**2 / v))",
     "return _sum_event(-0.5 * (LOG_2PI + 0.5 * math.log(v) + x**2 / v))", [T_FORM, T_SCORE]),
    # --- objectives/samplers.py
    ("ddim: noise scale not the posterior std", OBJ + "samplers.py", "c = eta * jnp.sqrt(var)", "c = eta * var",
     [T_FORM, T_SCORE]),
    ("ddim: eps coefficient", OBJ + "samplers.py", "jnp.sqrt(jnp.maximum(s_s**2 - c**2, 0.0)) * eps",
     "jnp.sqrt(jnp.maximum(s_s**2, 0.0)) * eps", [T_FORM, T_SCORE]),
    ("langevin: step sqrt(2 alpha)", OBJ + "samplers.py", "+ jnp.sqrt(alpha) * jax.random.normal(",
     "+ jnp.sqrt(2 * alpha) * jax.random.normal(", [T_FORM, T_SCORE]),
    ("ode drift: g^2 s, not 1/2", OBJ + "samplers.py", "return f * x - 0.5 * g2 * _score(eps_fn, process, x, t)",
     "return f * x - g2 * _score(eps_fn, process, x, t)", [T_FORM, T_SCORE]),
    ("dpm-solver++: the second-order correction 1/(2r) as 1/r", OBJ + "samplers.py", "(1 + 0.5 / r) * x0 - (0.5 / r) * x0_prev",
     "(1 + 1.0 / r) * x0 - (1.0 / r) * x0_prev", [T_SCORE]),
    ("dpm-solver++: e^(-h) without a_t / a_s", OBJ + "samplers.py", "e_mh = ratio * a_t / a_s", "e_mh = ratio",
     [T_SCORE]),
    ("logsnr grid: even in t", OBJ + "samplers.py", "t = jnp.interp(jnp.linspace(lam[0], lam[-1], n_steps + 1), lam, fine)",
     "t = jnp.linspace(1.0, t_end, n_steps + 1)", [T_SCORE]),
    # --- objectives/score.py: v-prediction, Min-SNR
    ("from_v: eps with a and s swapped", OBJ + "score.py", "return (a * xt - s * v) / n, (s * xt + a * v) / n",
     "return (a * xt - s * v) / n, (a * xt + s * v) / n", [T_SCORE]),
    ("v target: + s x0", OBJ + "score.py", "* eps - _bcast(jnp.broadcast_to(s, x0.shape[:1]), x0) * x0",
     "* eps + _bcast(jnp.broadcast_to(s, x0.shape[:1]), x0) * x0", [T_SCORE, T_DIFF]),
    ("min-snr: v weight over SNR, not SNR + 1", OBJ + "score.py", "return w * s**2 / (a**2 + s**2) ** 2", "return w / snr",
     [T_SCORE, T_DIFF]),
    ("min-snr: gamma ignored", OBJ + "score.py", "w = jnp.minimum(snr, gamma)", "w = snr", [T_SCORE, T_DIFF]),
    # --- objectives/edm.py
    ("edm: c_skip with sigma_d not squared", OBJ + "edm.py", "return sigma_data**2 / v, sigma * sigma_data / jnp.sqrt(v)",
     "return sigma_data / v, sigma * sigma_data / jnp.sqrt(v)", [T_EDM, T_MEDM]),
    ("edm: c_in without the root", OBJ + "edm.py", "1.0 / jnp.sqrt(v), 0.25 * jnp.log(sigma)", "1.0 / v, 0.25 * jnp.log(sigma)",
     [T_EDM]),
    ("edm: loss weight sigma_d not squared", OBJ + "edm.py", "return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2",
     "return (sigma**2 + sigma_data**2) / (sigma * sigma_data)", [T_EDM, T_MEDM]),
    ("edm steps: rho not applied", OBJ + "edm.py", "sig = (hi + i / max(n - 1, 1) * (lo - hi)) ** rho",
     "sig = (hi + i / max(n - 1, 1) * (lo - hi))", [T_EDM, T_MEDM]),
    ("edm heun: the corrector's average weights", OBJ + "edm.py", "x_hat + (s_next - s_hat) * 0.5 * (d + d2)",
     "x_hat + (s_next - s_hat) * (0.25 * d + 0.75 * d2)", [T_EDM]),
    ("edm churn: the added noise's std sigma_hat - sigma", OBJ + "edm.py", "jnp.sqrt(jnp.maximum(s_hat**2 - s_cur**2, 0.0)) * s_noise",
     "(s_hat - s_cur) * s_noise", [T_EDM]),
    ("edm velocity: sign", OBJ + "edm.py", "return lambda x, s: (x - denoise(x, jnp.full(x.shape[:1], s))) / s",
     "return lambda x, s: (denoise(x, jnp.full(x.shape[:1], s)) - x) / s", [T_EDM, T_MEDM]),
    ("consistency: c_out without sigma_min", OBJ + "edm.py", "c_out = sigma_data * (sigma - sigma_min) / jnp.sqrt(",
     "c_out = sigma_data * sigma / jnp.sqrt(", [T_EDM, T_CT]),
    ("ict: the curriculum's stage length", OBJ + "edm.py", "k_prime = max(total_steps // stages, 1)",
     "k_prime = max(total_steps // (stages - 1), 1)", [T_EDM, T_CT]),
    ("ict: level probabilities shifted by one", OBJ + "edm.py", "w = erf(z[1:]) - erf(z[:-1])",
     "w = erf(z[2:]) - erf(z[1:-1])\n    w = jnp.concatenate([w, jnp.zeros(1)])", [T_EDM, T_CT]),
    ("pseudo-huber: c not subtracted", OBJ + "edm.py", "return jnp.sqrt(_sum_event((a - b) ** 2) + c * c) - c",
     "return jnp.sqrt(_sum_event((a - b) ** 2) + c * c)", [T_EDM, T_CT]),
    ("ct loss: not divided by the level gap", M + "consistency.py", "terms = edm.pseudo_huber(f_hi, f_lo, c) / (s_hi - s_lo)",
     "terms = edm.pseudo_huber(f_hi, f_lo, c)", [T_CT]),
    # --- objectives/ode.py
    ("ode log prob: minus the divergence", OBJ + "ode.py", "return prior_log_prob(x1) + delta",
     "return prior_log_prob(x1) - delta", [T_FORM, T_SCORE, T_FM]),
    ("rk4: weights", OBJ + "ode.py", "h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)", "h / 6 * (b1 + b2 + 3 * b3 + b4)",
     [T_FORM, T_SCORE, T_FM]),
    ("heun: the corrector evaluated at t, not t + h", OBJ + "ode.py", "k2 = fn(_axpy(h, y, k1), t + h)",
     "k2 = fn(_axpy(h, y, k1), t)", [T_FM]),
    ("exact divergence: one basis vector short", OBJ + "ode.py", "basis = jnp.eye(d, dtype=x.dtype)",
     "basis = jnp.eye(d, dtype=x.dtype).at[-1].set(0.0)", [T_SCORE, T_FM]),
    # --- objectives/flow_matching.py
    ("ot path: sigma_min not at the data end", OBJ + "flow_matching.py", "return 1.0 - t, self.sigma_min + (1.0 - self.sigma_min) * t",
     "return 1.0 - t, self.sigma_min * t + (1.0 - self.sigma_min) * t", [T_FM]),
    ("cfm target: s' eps dropped", OBJ + "flow_matching.py", "return _bcast(da, x) * x + _bcast(ds, x) * eps",
     "return _bcast(da, x) * x + eps", [T_FM]),
    ("velocity from eps: s a'/a term sign", OBJ + "flow_matching.py", "_bcast(ds - s * r, x_t) * eps_hat\n    return r * x_t + (ds - s * r) * eps_hat",
     "_bcast(ds - s * r, x_t) * eps_hat\n    return r * x_t + (ds + s * r) * eps_hat", [T_FM]),
    ("ot coupling: the assignment's rows, not its columns", OBJ + "flow_matching.py", "out[i] = linear_sum_assignment(c)[1] if",
     "out[i] = linear_sum_assignment(c)[0] if", [T_FM]),
    ("straightness: not divided by the duration", OBJ + "flow_matching.py", "chord = (x_end - x1) / (times[-1] - times[0])",
     "chord = (x_end - x1)", [T_FM]),
    ("tweedie: s not s^2", OBJ + "samplers.py", "return (x + s**2 * _score(eps_fn, process, x, t)) / a",
     "return (x + s * _score(eps_fn, process, x, t)) / a", [T_FORM, T_SCORE]),
    ("reverse sde: drift sign of f", OBJ + "samplers.py", "drift = f * x - g2 * _score(eps_fn, process, x, t)",
     "drift = -f * x - g2 * _score(eps_fn, process, x, t)", [T_FORM, T_SCORE]),
    # --- models/diffusion.py
    ("diffusion dequantization: log volume dropped", OBJ + "score.py",
     "return x + u * delta, math.prod(x.shape[1:]) * math.log(delta)", "return x + u * delta, 0.0", [T_FORM, T_DIFF]),
    ("diffusion dequantization: bin width", OBJ + "score.py", "delta = (hi - lo) / (levels - 1)",
     "delta = (hi - lo) / levels", [T_FORM, T_DIFF]),
    ("diffusion log prob: the volume not added", M + "diffusion.py", "        return lp + log_vol\n", "        return lp\n",
     [T_FORM, T_DIFF]),
    # --- models/vae.py
    ("vae: beta ignored", M + "vae.py", "elbo_lib.elbo(log_px_z, kl_term, beta)", "elbo_lib.elbo(log_px_z, kl_term, 1.0)",
     [T_FORM, T_VAE, T_VAR]),
    ("vae: infovae alpha and lambda swapped", M + "vae.py", "infovae_objective(log_px_z, kl, mmd, alpha, lam)",
     "infovae_objective(log_px_z, kl, mmd, lam, alpha)", [T_FORM, T_VAR]),
    ("vae: nll log k", M + "vae.py", "return total - math.log(k)", "return total - math.log(chunk)", [T_VAE]),
    # --- nn/flows
    ("coupling: log-det sign", "genjax/nn/flows/layers.py", "y, ld = x * jnp.exp(s) + p[:, 1], s", "y, ld = x * jnp.exp(s) + p[:, 1], -s",
     [T_FLOWS]),
    ("actnorm: log-det count", "genjax/nn/flows/layers.py", "_per_example(x, e, n * jnp.sum(self.log_scale[...]))",
     "_per_example(x, e, jnp.sum(self.log_scale[...]))", [T_FLOWS]),
    ("logit transform: log(1 - 2a) dropped", "genjax/nn/flows/layers.py",
     "return y, self._sum(math.log(1 - 2 * self.alpha) - jnp.log(p) - jnp.log1p(-p))",
     "return y, self._sum(-jnp.log(p) - jnp.log1p(-p))", [T_FLOWS, T_FLOW]),
    # --- models/predictor.py
    ("predictor interval: quantile of level, not (1 + level) / 2", M + "predictor.py", "float(stats.norm.ppf(p))",
     "float(stats.norm.ppf(level))", [T_FORM, T_PRED]),
    ("predictor std: floor dropped", M + "predictor.py",
     "return jnp.sqrt(jnp.exp(h[1]) + (min_var if lik == \"heteroscedastic\" else 0.0))",
     "return jnp.sqrt(jnp.exp(h[1]))", [T_FORM, T_PRED]),
    ("predictor student-t scale: floor not sqrt", M + "predictor.py", "return jnp.exp(h[1]) + math.sqrt(min_var)",
     "return jnp.exp(h[1]) + min_var", [T_FORM, T_PRED]),
    # --- models/autoregressive.py
    ("autoregressive: temperature multiplies", M + "autoregressive.py", "    logits = logits / temperature\n",
     "    logits = logits * temperature\n", [T_AR]),
    # --- eval
    ("fid: factor 2 on the cross term", E + "sample_quality.py", "np.trace(cov2) - 2 * covmean)",
     "np.trace(cov2) - covmean)", [T_FORM, T_SQ]),
    ("fid with N <= d: factor 2 on the cross term", E + "sample_quality.py", "traces - 2 * covmean)",
     "traces - covmean)", [T_SQ]),
    ("fid with N <= d: N1 - 1 for N2 - 1", E + "sample_quality.py", "np.sqrt((n1 - 1) * (n2 - 1))",
     "np.sqrt((n1 - 1) * (n1 - 1))", [T_SQ]),
    ("fid against statistics: N for N - 1", E + "sample_quality.py", "m = a @ cov @ a.T / (n - 1)",
     "m = a @ cov @ a.T / n", [T_SQ]),
    ("kid: cubic -> square", E + "sample_quality.py", "k = lambda a, b: (a @ b.T / d + 1.0) ** 3",
     "k = lambda a, b: (a @ b.T / d + 1.0) ** 2", [T_FORM, T_SQ]),
    ("inception score: log marginal sign", E + "sample_quality.py", "np.sum(p * (np.log(p) - np.log(marginal)), 1)",
     "np.sum(p * (np.log(p) + np.log(marginal)), 1)", [T_FORM, T_SQ]),
    ("knn radius: k-th -> (k-1)-th", E + "sample_quality.py", "np.partition(d, k - 1, axis=1)[:, k - 1]",
     "np.partition(d, k - 2, axis=1)[:, k - 2]", [T_FORM, T_SQ]),
    ("precision/recall swapped", E + "sample_quality.py",
     "precision = float(in_manifold(fake, real, knn_radii(real, k)).mean())",
     "precision = float(in_manifold(real, fake, knn_radii(fake, k)).mean())", [T_FORM, T_SQ]),
    ("mode coverage: 3 std -> 2", E + "sample_quality.py", "<= 3 * std", "<= 2 * std", [T_SQ]),
    ("js: the mixture weight", E + "divergences.py", "m = 0.5 * (p + q)", "m = 0.5 * p + q", [T_DIV]),
    ("sliced wasserstein: unnormalized directions", E + "divergences.py",
     "theta /= np.linalg.norm(theta, axis=1, keepdims=True)", "theta /= 2", [T_DIV]),
    ("coverage: open interval", E + "predictive.py", "np.mean((y >= lo) & (y <= hi))", "np.mean((y > lo) & (y < lo))",
     [T_PRED]),
    ("pluralistic diversity: the farthest, not nearest", E + "conditional.py", "return float(d.min(1).mean())",
     "return float(np.where(np.isinf(d), 0, d).max(1).mean())", [T_VAR]),
    ("heldout: bits/dim from the bound's dims", E + "metrics.py", "\"bits_per_dim\": float(bits_per_dim(nll, num_dims, bin_width)),",
     "\"bits_per_dim\": float(bits_per_dim(nll, num_dims + 1, bin_width)),", [T_FORM, T_VAE, T_FLOW]),
    ("sweep lead: unpaired se", "genjax/sweep.py", "se = float(d.std(ddof=1) / np.sqrt(k))", "se = float(d.std(ddof=1))",
     [T + "test_sweep.py"]),
    # --- objectives/quantize.py, models/vqvae.py (VQ-VAE, FSQ)
    ("vq nearest: + 2 z.e", OBJ + "quantize.py", "- 2.0 * z @ e.T", "+ 2.0 * z @ e.T", [T_VQ]),
    ("straight-through: gradient through the code", OBJ + "quantize.py", "return z_e + jax.lax.stop_gradient(z_q - z_e)",
     "return z_q + jax.lax.stop_gradient(z_q - z_e) * 0.0", [T_VQ]),
    ("vq losses: commitment without stop-gradient on the code", OBJ + "quantize.py", "commit = jnp.sum(jnp.square(z_e - sg(z_q))",
     "commit = jnp.sum(jnp.square(z_e - z_q)", [T_VQ]),
    ("ema: decay on the new counts", OBJ + "quantize.py", "counts = decay * counts + (1.0 - decay) * jnp.sum(onehot, 0)",
     "counts = (1.0 - decay) * counts + decay * jnp.sum(onehot, 0)", [T_VQ]),
    ("ema: no Laplace smoothing", OBJ + "quantize.py", "smoothed = (counts + eps) / (n + k * eps) * n",
     "smoothed = counts + eps", [T_VQ]),
    ("restart: dead when above the threshold", OBJ + "quantize.py", "dead = counts < threshold", "dead = counts > threshold",
     [T_VQ]),
    ("usage: perplexity as the entropy", OBJ + "quantize.py", "return jnp.exp(entropy), jnp.mean(", "return entropy, jnp.mean(",
     [T_VQ]),
    ("fsq: odd-level offset", OBJ + "quantize.py", "o = np.where(self.levels % 2 == 1, 0.0, 0.5)",
     "o = np.where(self.levels % 2 == 1, 0.5, 0.0)", [T_VQ]),
    ("fsq: index basis off by one level", OBJ + "quantize.py", "self.basis = np.concatenate([[1], np.cumprod(self.levels[:-1])])",
     "self.basis = np.concatenate([[1], np.cumprod(self.levels[:-1] + 1)])", [T_VQ]),
    ("vq family: commitment without beta", M + "vqvae.py", "per = rec + ctx.hp[\"beta\"] * commit", "per = rec + commit", [T_VQ]),
    ("vq family: the codebook loss under EMA too", M + "vqvae.py", "(0.0 if ema else codebook_loss)", "codebook_loss", [T_VQ]),
    ("vq family: the uniform prior's P ln K as ln K", M + "vqvae.py", "- positions * math.log(k)", "- math.log(k)", [T_VQ]),
    # --- run/prepare.py (two-stage bound)
    ("two-stage: no Jacobian of the latent scale", "genjax/run/prepare.py", "- d * math.log(self.scale)", "", [T_LAT]),
    ("two-stage: + log q", "genjax/run/prepare.py", "return c.log_px(p1, x, z) + prior - c.log_q(p1, x, z)",
     "return c.log_px(p1, x, z) + prior + c.log_q(p1, x, z)", [T_LAT]),
    ("latents: scale by the variance", "genjax/run/prepare.py", "stage.scale = float(np.std(pool.astype(np.float64)))",
     "stage.scale = float(np.var(pool.astype(np.float64)))", [T_LAT]),
    ("latent codes: index / K", "genjax/run/prepare.py", "u = (jnp.asarray(codes, jnp.float32) / (c.vocab - 1))",
     "u = (jnp.asarray(codes, jnp.float32) / c.vocab)", [T_LAT]),
    # --- keys.py: the CPU lowering of the Threefry hash every random draw goes through
    ("threefry, small hashes: the two output words swapped", "genjax/keys.py",
     "return y1.reshape(shape), y2.reshape(shape)", "return y2.reshape(shape), y1.reshape(shape)", [T + "test_keys.py"]),
    ("threefry, large hashes: the key words swapped", "genjax/keys.py",
     "return hash_(k1, k2, x1, x2, use_rolled_loops=False)", "return hash_(k2, k1, x1, x2, use_rolled_loops=False)",
     [T + "test_keys.py"]),
    # --- keys.py: the host-side Threefry that makes run keys (keys.key, keys.root) without an XLA program
    ("host keys: fold-in counter pair (d, 0)", "genjax/keys.py",
     "k = threefry2x32(k[0], k[1], 0, int(d))", "k = threefry2x32(k[0], k[1], int(d), 0)", [T + "test_keys.py"]),
    ("host keys: seed as the first key word", "genjax/keys.py",
     "k = (np.uint32(0), np.uint32(int(seed) % 2**32))", "k = (np.uint32(int(seed) % 2**32), np.uint32(0))",
     [T + "test_keys.py"]),
    ("host threefry: round injection off by one", "genjax/keys.py",
     "x1 = x1 + ks[(block + 2) % 3] + np.uint32(block + 1)", "x1 = x1 + ks[(block + 2) % 3] + np.uint32(block)",
     [T + "test_keys.py"]),
]


def _copy() -> Path:
    dst = Path(tempfile.mkdtemp(prefix="genjax-mutants-"))
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    for f in files:
        if (ROOT / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)
    return dst


def check_snippets() -> list[str]:
    """Mutants whose snippet is not found exactly once (the source moved on)."""
    bad = []
    for name, path, old, _, _ in MUTANTS:
        n = (ROOT / path).read_text().count(old)
        if n != 1:
            bad.append(f"{name}: the snippet occurs {n} times in {path}")
    return bad


def run(selected: list[str] | None = None, timeout: int = 600, markdown: str | None = None) -> list[str]:
    bad = check_snippets()
    if bad:
        print("\n".join(bad))
        sys.exit(2)
    work = _copy()
    env = dict(os.environ, GENJAX_CACHE_DIR=str(work / ".cache"), PYTHONDONTWRITEBYTECODE="1")
    survivors, results = [], []
    try:
        for name, path, old, new, tests in MUTANTS:
            if selected and name not in selected:
                continue
            src = work / path
            original = src.read_text()
            src.write_text(original.replace(old, new, 1))
            t0 = time.perf_counter()
            try:
                r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-n", "0",
                                    *tests], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)  # fmt: skip
                killed = r.returncode != 0
                how = "killed" if killed else "SURVIVED"
                failed = re.findall(r"^FAILED (\S+)", r.stdout, re.M)
                by = failed[0].split(" - ")[0] if failed else ""
                if killed and not failed:
                    how, by = "killed (error)", (r.stdout.strip().splitlines() or [""])[-1][:100]
            except subprocess.TimeoutExpired:
                killed, how, by = True, "killed (timeout)", ""
            finally:
                src.write_text(original)
            print(f"{how:16s} {time.perf_counter() - t0:6.1f}s  {name}  <- {by}", flush=True)
            results.append((name, path, how, by))
            if not killed:
                survivors.append(name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{len(survivors)} survivors" + (": " + "; ".join(survivors) if survivors else ""))
    if markdown:
        lines = ["| source | broken on purpose | first test that fails |", "| --- | --- | --- |"]
        lines += [f"| `{p.removeprefix('genjax/')}` | {n} | `{b.removeprefix('tests/')}` |" if h.startswith("killed")
                  else f"| `{p.removeprefix('genjax/')}` | {n} | **survived** |" for n, p, h, b in results]  # fmt: skip
        out = Path(markdown)
        old = out.read_text() if out.is_file() else ""
        keep = old[: old.index(lines[0])] if lines[0] in old else ""  # the file's own preamble stays
        out.write_text(keep + "\n".join(lines) + "\n")
        print(f"wrote {markdown}")
    return survivors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--markdown", default=None, help="also write the table of mutants and their killers here")
    a = ap.parse_args(argv)
    if a.list:
        for name, path, *_ in MUTANTS:
            print(f"{path:32s} {name}")
        return 0
    return 1 if run(a.names or None, markdown=a.markdown) else 0


if __name__ == "__main__":
    sys.exit(main())
