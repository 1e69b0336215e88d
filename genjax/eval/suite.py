"""Every sample-based metric that fits a run's data, for any family that can sample.

``sample_metrics`` draws generated samples and compares them with the test split, and puts the
same comparison for real data (a training subset of the same size versus the test split) beside
every model value, so each number has its real-versus-real floor:

* images (``[H, W, C]``, labelled): FID, KID and the Inception-style score computed with the
  dataset's domain classifier (``genjax.eval.classifier``; names carry it:
  ``fid_digits_classifier``), its test accuracy, precision/recall in its feature space, the
  birthday-paradox duplicate test in pixel space (with a montage of the closest pairs) and a
  PCA comparison (with a figure);
* 2-D data: precision/recall on the coordinates, histogram KL/JS, exact (assignment) and sliced
  Wasserstein distances, and the PacGAN mode statistics where the data are a Gaussian mixture
  (``toy2d:ring|grid|8gaussians``).

A class-conditional family (``Family.classes``) also gets the classifier check and pluralistic
diversity per class (``genjax.eval.conditional``), beside real examples of each class.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from genjax.data.toy2d import mixture_modes
from genjax.eval import divergences as dv
from genjax.eval import plots
from genjax.eval import sample_quality as sq
from genjax.eval.classifier import get_classifier
from genjax.eval.conditional import conditional_metrics
from genjax.train.sampling import sampler


def draw(family, params, key, n: int, batch: int = 1000) -> np.ndarray:
    """``n`` samples, drawn ``batch`` at a time."""
    sizes = {min(batch, n - i) for i in range(0, n, batch)}
    sample = {m: sampler(family, m) for m in sizes}  # at most two programs: the full batches and the rest
    out = [np.asarray(sample[min(batch, n - i)](params, jax.random.fold_in(key, i))) for i in range(0, n, batch)]
    return np.concatenate(out)[:n]


def image_metrics(real_train, real_test, fake, labels, dataset: str, classifier_dir, out_dir=None, log=print,
                  clf=None) -> dict:  # fmt: skip
    """Classifier-based and pixel-space metrics for images in [0, 1] (module docstring); ``clf``:
    the domain classifier when the caller has it already."""
    n = len(real_test)
    if clf is None:
        clf = get_classifier(dataset, (real_train, labels[0]), (real_test, labels[1]), classifier_dir, log=log)
    tag = clf.name
    f_test, f_train, f_fake = clf.features(real_test), clf.features(real_train[:n]), clf.features(fake)

    def scores(f_other, p_other):
        pr = sq.precision_recall(f_test, f_other)
        return {
            f"fid_{tag}": sq.fid_from_features(f_test, f_other),
            f"kid_{tag}": sq.kernel_distance(f_test, f_other),
            f"is_{tag}": sq.inception_score(p_other),
            "precision": pr["precision"],
            "recall": pr["recall"],
        }

    out = {
        "classifier": tag,
        "classifier_test_accuracy": clf.test_accuracy,
        "classifier_identity": clf.identity(),
        "n": n,
        "model": scores(f_fake, clf.probs(fake)),
        "real_vs_real": scores(f_train, clf.probs(real_train[:n])),
    }
    dup = sq.birthday_duplicates(fake, real_train[:n], n_pairs=8)
    real_dup = sq.birthday_duplicates(real_train[:n], real_test, n_pairs=1)
    out["duplicates"] = {k: dup[k] for k in ("batch", "threshold", "duplicates", "support_estimate")}
    out["duplicates"]["closest_distances"] = dup["distances"]
    out["duplicates"]["real_closest_distance"] = real_dup["distances"][0]
    pca = sq.pca_comparison(real_test, fake)
    out["pca_spectrum_l1"] = pca["spectrum_l1"]
    out["pca_spectrum_l1_real_vs_real"] = sq.pca_comparison(real_test, real_train[:n])["spectrum_l1"]
    if out_dir is not None:
        plots.duplicate_pairs(fake, dup["pairs"], dup["distances"], Path(out_dir) / "duplicates.png",
                              f"closest generated pairs of {n} (real threshold {dup['threshold']:.3f})")  # fmt: skip
        plots.pca_plot(pca, Path(out_dir) / "pca.png", f"PCA: test images vs {n} samples")
    return out


def points_metrics(real_train, real_test, fake, toy: str | None = None) -> dict:
    """Metrics for 2-D (low-dimensional) data (module docstring)."""
    n = len(real_test)
    ex_n = min(n, 2000)  # the assignment problem is O(n^3)

    def scores(other):
        pr = sq.precision_recall(real_test, other)
        return {
            "precision": pr["precision"],
            "recall": pr["recall"],
            **dv.histogram_divergences(real_test, other),
            "wasserstein_exact": dv.wasserstein_exact(real_test[:ex_n], other[:ex_n]),
            "sliced_wasserstein": dv.sliced_wasserstein(real_test, other),
        }

    out = {"n": n, "model": scores(fake), "real_vs_real": scores(real_train[:n])}
    if toy is not None:
        try:
            means, std = mixture_modes(toy)
        except ValueError:
            return out
        out["model"]["modes"] = sq.mode_coverage(fake, means, std)
        out["real_vs_real"]["modes"] = sq.mode_coverage(real_train[:n], means, std)
    return out


_INCEPTION = {}  # weights path -> InceptionFeatures (loaded once per process)


def inception_metrics(cfg, splits, family, params, key, fake, train, test, out_dir=None, log=print) -> dict:
    """The image metrics with the standard FID Inception's features (``eval.features =
    'inception:<path>'``, ``genjax.eval.inception``), and the protocol written beside them: how
    many samples against which split, the preprocessing, the test split's statistics (written as
    ``fid_stats_test.npz`` in pytorch-fid's format), FID against ``eval.fid_stats`` where given,
    and FID on ``eval.fid_seeds`` sample sets (mean and spread, as EDM reports it)."""
    from genjax.eval import inception as inc

    path = str(Path(str(cfg.eval.features).partition(":")[2]).expanduser())
    if path not in _INCEPTION:
        log(f"loading the FID Inception weights {path} ...")
        _INCEPTION[path] = inc.InceptionFeatures(path)
    net = _INCEPTION[path]
    n = len(fake)
    train01, test01 = splits.to_unit(splits.eval_view(train)), splits.to_unit(test)
    t0 = time.perf_counter()
    out = image_metrics(train01, test01, splits.to_unit(fake), None, splits.name, None, out_dir, log, net)
    f_test = net.features(test01)
    fids = [out["model"]["fid_inception"]]
    for s in range(1, int(cfg.eval.fid_seeds)):  # further sample sets, each scored against the test split
        more = draw(family, params, jax.random.fold_in(key, 1000 + s), n)
        fids.append(sq.fid_from_features(f_test, net.features(splits.to_unit(more))))
    proto = {"features": "inception (pool3, 2048-d)", "weights": path, "weights_sha256": net.sha256,
             "preprocessing": inc.PROTOCOL, "samples_per_set": n, "reference": f"the test split ({n} images)",
             "sample_seeds": int(cfg.eval.fid_seeds), "fid_per_seed": fids, "fid_mean": float(np.mean(fids)),
             "fid_std": float(np.std(fids, ddof=1)) if len(fids) > 1 else None}  # fmt: skip
    if out_dir is not None:
        proto["test_stats"] = str(inc.save_stats(Path(out_dir) / "fid_stats_test.npz", f_test))
    if str(cfg.eval.fid_stats):
        mu, sigma = inc.load_stats(Path(str(cfg.eval.fid_stats)).expanduser())
        f_fake = net.features(splits.to_unit(fake))
        if len(mu) != f_fake.shape[1]:
            raise ValueError(f"eval.fid_stats={str(cfg.eval.fid_stats)!r} holds {len(mu)}-d statistics; the "
                             f"Inception's features are {f_fake.shape[1]}-d.")  # fmt: skip
        proto["fid_vs_stats"] = sq.fid_against_stats(mu, sigma, f_fake)
        proto["stats"] = str(cfg.eval.fid_stats)
    out["protocol"] = proto
    log(f"  Inception features in {time.perf_counter() - t0:.1f} s")
    if family.classes:
        log("  class-conditional checks need the domain classifier's classes: skipped with Inception features")
    return out


def sample_metrics(cfg, splits, family, params, key, out_dir=None, log=print) -> dict:
    """Apply the metrics that fit ``splits`` to samples of ``family`` (see the module docstring)."""
    if splits.vocab is not None:
        log(f"{splits.name!r} is text: no sample metrics (the samples are in samples.txt)")
        return {}
    if family.predictor is not None:
        log(f"the {family.name} model draws y given x, not examples: no sample metrics (see genjax.eval.predictive)")
        return {}
    test, train = np.asarray(splits.test["x"]), np.asarray(splits.train["x"])
    n = min(len(test), len(train), int(cfg.eval.max_samples))
    test = test[:n]
    t0 = time.perf_counter()
    log(f"drawing {n} samples for the sample metrics ...")
    fake = draw(family, params, key, n)
    log(f"  drawn in {time.perf_counter() - t0:.1f} s")
    if not np.all(np.isfinite(fake)):
        raise ValueError(f"the {family.name} model produced non-finite samples; it cannot be evaluated.")
    if len(splits.shape) == 3 and str(cfg.eval.features).startswith("inception:"):
        return inception_metrics(cfg, splits, family, params, key, fake, train, test, out_dir, log)
    if len(splits.shape) == 3:
        if "y" not in splits.train or "y" not in splits.test:
            log(f"no labels in {splits.name!r}: the classifier-based metrics (FID/IS/KID) are skipped")
            return {}
        if not np.issubdtype(np.asarray(splits.train["y"]).dtype, np.integer):
            log(f"the targets of {splits.name!r} are not classes: the classifier-based metrics are skipped")
            return {}
        train01 = splits.to_unit(splits.eval_view(train))
        labels = (np.asarray(splits.train["y"]), np.asarray(splits.test["y"])[:n])
        # a classifier per data *view*: binarized or dequantized digits get their own
        view = {"binarize": "_binarized", "dequantize": "_dequantized"}.get(splits.epoch_transform, "")
        if cfg.data.binarize == "static":
            view = "_binarized"
        test01 = splits.to_unit(test)
        clf = get_classifier(splits.name + view, (train01, labels[0]), (test01, labels[1]), cfg.eval.classifier_dir,
                             log=log)  # fmt: skip
        out = image_metrics(train01, test01, splits.to_unit(fake), labels, splits.name + view,
                            cfg.eval.classifier_dir, out_dir, log, clf)  # fmt: skip
        if family.classes:
            out["conditional"] = conditional_metrics(
                family, params, jax.random.fold_in(key, 1), train01, labels[0], clf, int(cfg.eval.per_class),
                splits.to_unit,
            )  # fmt: skip
        return out
    toy = str(cfg.data.name).split(":", 1)[1] if str(cfg.data.name).startswith("toy2d:") else None
    out = points_metrics(train.reshape(len(train), -1), test.reshape(n, -1), fake.reshape(n, -1), toy)
    if family.classes and "y" in splits.train:
        y = np.asarray(splits.train["y"])
        k = jax.random.fold_in(key, 1)
        out["conditional"] = conditional_metrics(family, params, k, train, y, None, int(cfg.eval.per_class))
    return out
