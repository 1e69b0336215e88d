"""The printed summary of an evaluation (``eval.json``'s dict): every figure with its unit, what
it is per, which estimator it is and which way is better. One formatter for ``genjax train``,
``genjax eval`` and the API.
"""

from __future__ import annotations

# sample metrics: key (or key prefix) -> (better, what it is)
SAMPLE_METRICS = {
    "fid_": ("lower", "Frechet distance between the named network's features of samples and test images"),
    "kid_": ("lower", "kernel distance between the same features: unbiased MMD^2, cubic polynomial kernel "
             "(can dip below 0)"),
    "is_": ("higher", "Inception-style score exp E KL(p(y|x) || p(y)) of the named network, 1 to #classes"),
    "precision": ("higher", "share of samples inside the test data's k-NN manifold (fidelity)"),
    "recall": ("higher", "share of test data inside the samples' k-NN manifold (coverage)"),
    "kl_data_model": ("lower", "KL(data || model) of 2-D histograms, nats"),
    "kl_model_data": ("lower", "KL(model || data) of 2-D histograms, nats"),
    "js": ("lower", "Jensen-Shannon divergence of 2-D histograms, nats (at most ln 2)"),
    "wasserstein_exact": ("lower", "W1 by exact assignment, in data units"),
    "sliced_wasserstein": ("lower", "sliced W1 over random directions, in data units"),
}


def describe_sample_metric(key: str) -> tuple[str, str]:
    """(which way is better, what it is) for a sample metric's key."""
    for k, v in SAMPLE_METRICS.items():
        if key == k or (k.endswith("_") and key.startswith(k)):
            return v
    return ("", "")


def heldout_lines(m: dict) -> list[str]:
    """The likelihood figures of ``heldout_metrics`` (plus text's bits per token)."""
    if "nll" not in m:
        return []
    unit = m.get("nll_unit", "nats per example")
    lines = [
        f"held-out test NLL ({m.get('nll_kind', '')}, n={m['n']}): {m['nll']:.3f} {unit} (lower is better)",
        f"  estimator: {m.get('estimator', m.get('nll_kind', ''))}",
    ]
    deq = " of the discrete levels (dequantized density: a bound on their NLL)" if m.get("dequantized") else ""
    over = m.get("bits_per_dim_over")
    lines.append(f"  = {m['bits_per_dim']:.4f} bits per dimension{deq}" + (f", over {over} dimensions" if over else "")
                 + " (lower is better)")  # fmt: skip
    if "perplexity" in m:
        lines.append(f"  = {m['bits_per_token']:.4f} bits per token, perplexity {m['perplexity']:.3f} per token "
                     "(2^bits; lower is better)")  # fmt: skip
    b = m.get("bound_name")
    if b:
        lines.append(f"  {b} {m[b]:.3f} {unit}: a variational lower bound on log p(x) (higher is better); as an "
                     f"upper bound on the NLL {m[b + '_bits_per_dim']:.4f} bits per dimension")  # fmt: skip
    if m.get("validation_estimator"):
        lines.append(f"  (the per-epoch validation figure is another estimator: {m['validation_estimator']})")
    return lines


def summary(m: dict) -> str:
    """Every figure of an evaluation dict, one per line, each with its unit and direction."""
    lines = heldout_lines(m)
    ts = m.get("two_stage")
    if ts is not None:  # the NLL above is of the codes; this one is of the first stage's data
        lines.append(f"two stages: the figures above score the codes of first stage {ts['first_stage']} "
                     f"({ts['first_stage_family']}); on its data {ts['data']!r}:")  # fmt: skip
        lines += ["  " + line for line in heldout_lines(ts)] if "nll" in ts else [f"  no bound: {ts['why']}"]
    if "codes" in m:
        c = m["codes"]
        lines.append(f"codes on the test split: perplexity {c['perplexity']:.2f} of {c['vocab']} codes (exp of the "
                     f"code frequencies' entropy; {c['vocab']} when all are used equally, higher is better), "
                     f"{c['used']} codes used")  # fmt: skip
    if "latent" in m:
        lt = m["latent"]
        lines.append(f"latent: {lt['active_units']} of {lt['latent_dim']} units active (Cov_x E[z_k|x] > 0.01; "
                     f"more means less posterior collapse), test KL(q(z|x) || p(z)) {lt['kl_total']:.3f} nats "
                     "per example")  # fmt: skip
    p = m.get("predictive") or {}
    if "accuracy" in p:
        recall = ", ".join("-" if r is None else f"{r:.2f}" for r in p["per_class_recall"])
        lines.append(f"test accuracy {p['accuracy']:.4f}, balanced accuracy (mean recall over classes) "
                     f"{p['balanced_accuracy']:.4f} (higher is better)")  # fmt: skip
        lines.append(f"  recall per class: {recall}")
    if "coverage" in p:
        cov = ", ".join(f"{float(a):.0%} interval {v:.3f}" for a, v in p["coverage"].items())
        lines.append(f"test RMSE {p['rmse']:.4f} in the targets' units (lower is better)")
        lines.append(f"  share of test targets inside the central predictive interval (calibrated: equal to its "
                     f"level): {cov}")  # fmt: skip
    s = m.get("samples") or {}
    if "model" in s:
        if "protocol" in s:
            pr = s["protocol"]
            spread = f" +- {pr['fid_std']:.3f} (std)" if pr.get("fid_std") is not None else ""
            lines.append(f"features: the FID Inception ({pr['weights']}, sha256 {pr['weights_sha256'][:12]}); "
                         f"{pr['preprocessing']}")  # fmt: skip
            lines.append(f"  FID over {pr['sample_seeds']} sample set(s) of {pr['samples_per_set']} against "
                         f"{pr['reference']}: {pr['fid_mean']:.3f}{spread} (lower is better)")  # fmt: skip
            if "fid_vs_stats" in pr:
                lines.append(f"  FID against the reference statistics {pr['stats']}: {pr['fid_vs_stats']:.3f} "
                             "(lower is better)")  # fmt: skip
        elif "classifier" in s:
            ident = s.get("classifier_identity") or {}
            lines.append(f"domain classifier {s['classifier']} (data {ident.get('data_fingerprint', '?')}, weights "
                         f"sha256 {str(ident.get('weights_sha256', '?'))[:12]}): test accuracy "
                         f"{s['classifier_test_accuracy']:.4f}")  # fmt: skip
        lines.append(f"sample metrics on n = {s['n']} samples against the test split (model | real training data "
                     "against the same test split, the floor):")  # fmt: skip
        for k, v in s["model"].items():
            if isinstance(v, float | int) and k != "bins":
                better, what = describe_sample_metric(k)
                tail = f"  ({better} is better; {what})" if better else ""
                lines.append(f"  {k:28s} {v:10.4f} | {s['real_vs_real'][k]:10.4f}{tail}")
        if "modes" in s["model"]:
            mm, rr = s["model"]["modes"], s["real_vs_real"]["modes"]
            lines.append(f"  modes covered {mm['modes']} (real {rr['modes']}; more is better), share of high-quality "
                         f"samples {mm['high_quality']:.3f} (real {rr['high_quality']:.3f}; higher is better), "
                         f"reverse KL over modes {mm['reverse_kl']:.4f} nats (lower is better)")  # fmt: skip
        if "conditional" in s:
            cm = s["conditional"]
            if "class_accuracy" in cm:
                lines.append(f"  class-conditional samples ({cm['per_class']} per class): the classifier assigns "
                             f"{cm['class_accuracy']:.3f} to their class (chance {cm['chance']:.3f}; higher is "
                             "better)")  # fmt: skip
            for space in ("pixel", "features"):
                if space in cm:
                    lines.append(f"  pluralistic diversity ({space}, mean distance to the nearest other sample of "
                                 f"its class): model {cm[space]['model_mean']:.4f} | real "
                                 f"{cm[space]['real_mean']:.4f} (closer to real is better)")  # fmt: skip
        if "duplicates" in s:
            d = s["duplicates"]
            lines.append(f"  duplicates: {d['duplicates']} generated pairs closer than the closest real pair "
                         f"({d['threshold']:.3f}) among {d['batch']} samples (fewer is better)")  # fmt: skip
    return "\n".join(lines)


def validation_phrase(family) -> str:
    """How the training summary names its validation figure: the estimator, that it is not the
    test one where it differs, and that the best of several epochs is an optimistic figure (the
    minimum over epochs of a random estimate is biased low: a DDPM's one-term estimate on
    8gaussians gave 0.82 nats against the data's entropy of 2.83)."""
    what = f"{family.val_estimator}; not the test estimator" if family.val_estimator else (
        family.estimator or family.log_prob_kind)  # fmt: skip
    return f"{what}; the minimum over epochs, optimistic: quote the test figure"
