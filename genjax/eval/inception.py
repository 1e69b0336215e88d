"""The Inception-v3 network of the standard FID (the TF-FID graph ``inception-2015-12-05``, as
pytorch-fid ports it), in JAX, for sample metrics comparable with papers.

Nothing is downloaded: the weights come from a file the user gives, ``eval.features =
'inception:<path>'`` — an ``.npz`` of pytorch-fid's state dict (``pt_inception-2015-12-05-
6726825d.pth``) under its own key names, converted once by ``tools/convert_inception.py``. The
network is written as functions of that dict (eval-mode batch norm; no module state), so the keys
load one to one.

Protocol (pytorch-fid's, which reproduces TF-FID): images in [0, 1] are quantized to 8 bits
(round(255 x) / 255, as saved PNGs are), grey images repeated to 3 channels, resized to 299 x 299
by bilinear interpolation with half-pixel centres and no antialiasing (``F.interpolate(...,
mode='bilinear', align_corners=False)``), scaled to [-1, 1]. The FID / KID / precision-recall
features are the 2,048-d output of the final average pool (``pool3``); the Inception score uses
the softmax of the 1,008 logits of its ``fc`` layer. Reference statistics are written and read
as ``.npz`` files with ``mu`` (2048,) and ``sigma`` (2048, 2048), pytorch-fid's format.

Differences from torchvision's Inception-v3 (pytorch-fid's FIDInception blocks): the average pools
of the A, C and first E blocks exclude the padding from their counts (TF's average pool), and the
second E block pools by maximum.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

BN_EPS = 1e-3  # torchvision's BasicConv2d
SIZE = 299

# (name, in, out, kernel (h, w), stride, padding (h, w)) of every BasicConv2d, in state-dict order
_STEM = [("Conv2d_1a_3x3", 3, 32, (3, 3), 2, (0, 0)), ("Conv2d_2a_3x3", 32, 32, (3, 3), 1, (0, 0)),
         ("Conv2d_2b_3x3", 32, 64, (3, 3), 1, (1, 1)), ("Conv2d_3b_1x1", 64, 80, (1, 1), 1, (0, 0)),
         ("Conv2d_4a_3x3", 80, 192, (3, 3), 1, (0, 0))]  # fmt: skip


def _block_a(c, pool):
    return [("branch1x1", c, 64, (1, 1), 1, (0, 0)), ("branch5x5_1", c, 48, (1, 1), 1, (0, 0)),
            ("branch5x5_2", 48, 64, (5, 5), 1, (2, 2)), ("branch3x3dbl_1", c, 64, (1, 1), 1, (0, 0)),
            ("branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)), ("branch3x3dbl_3", 96, 96, (3, 3), 1, (1, 1)),
            ("branch_pool", c, pool, (1, 1), 1, (0, 0))]  # fmt: skip


def _block_b(c):
    return [("branch3x3", c, 384, (3, 3), 2, (0, 0)), ("branch3x3dbl_1", c, 64, (1, 1), 1, (0, 0)),
            ("branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)), ("branch3x3dbl_3", 96, 96, (3, 3), 2, (0, 0))]  # fmt: skip


def _block_c(c, c7):
    return [("branch1x1", c, 192, (1, 1), 1, (0, 0)), ("branch7x7_1", c, c7, (1, 1), 1, (0, 0)),
            ("branch7x7_2", c7, c7, (1, 7), 1, (0, 3)), ("branch7x7_3", c7, 192, (7, 1), 1, (3, 0)),
            ("branch7x7dbl_1", c, c7, (1, 1), 1, (0, 0)), ("branch7x7dbl_2", c7, c7, (7, 1), 1, (3, 0)),
            ("branch7x7dbl_3", c7, c7, (1, 7), 1, (0, 3)), ("branch7x7dbl_4", c7, c7, (7, 1), 1, (3, 0)),
            ("branch7x7dbl_5", c7, 192, (1, 7), 1, (0, 3)), ("branch_pool", c, 192, (1, 1), 1, (0, 0))]  # fmt: skip


def _block_d(c):
    return [("branch3x3_1", c, 192, (1, 1), 1, (0, 0)), ("branch3x3_2", 192, 320, (3, 3), 2, (0, 0)),
            ("branch7x7x3_1", c, 192, (1, 1), 1, (0, 0)), ("branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
            ("branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0)), ("branch7x7x3_4", 192, 192, (3, 3), 2, (0, 0))]  # fmt: skip


def _block_e(c):
    return [("branch1x1", c, 320, (1, 1), 1, (0, 0)), ("branch3x3_1", c, 384, (1, 1), 1, (0, 0)),
            ("branch3x3_2a", 384, 384, (1, 3), 1, (0, 1)), ("branch3x3_2b", 384, 384, (3, 1), 1, (1, 0)),
            ("branch3x3dbl_1", c, 448, (1, 1), 1, (0, 0)), ("branch3x3dbl_2", 448, 384, (3, 3), 1, (1, 1)),
            ("branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1)), ("branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0)),
            ("branch_pool", c, 192, (1, 1), 1, (0, 0))]  # fmt: skip


BLOCKS = [("Mixed_5b", "a", _block_a(192, 32)), ("Mixed_5c", "a", _block_a(256, 64)),
          ("Mixed_5d", "a", _block_a(288, 64)), ("Mixed_6a", "b", _block_b(288)),
          ("Mixed_6b", "c", _block_c(768, 128)), ("Mixed_6c", "c", _block_c(768, 160)),
          ("Mixed_6d", "c", _block_c(768, 160)), ("Mixed_6e", "c", _block_c(768, 192)),
          ("Mixed_7a", "d", _block_d(768)), ("Mixed_7b", "e1", _block_e(1280)),
          ("Mixed_7c", "e2", _block_e(2048))]  # fmt: skip


def conv_specs() -> list[tuple]:
    """Every BasicConv2d as (state-dict prefix, in, out, kernel, stride, padding)."""
    out = list(_STEM)
    for block, _, convs in BLOCKS:
        out += [(f"{block}.{n}", *rest) for n, *rest in convs]
    return out


def weight_shapes() -> dict[str, tuple]:
    """The state dict's keys and shapes (pytorch-fid's ``fid_inception_v3()``, no aux classifier)."""
    shapes = {}
    for name, cin, cout, k, _, _ in conv_specs():
        shapes[f"{name}.conv.weight"] = (cout, cin, *k)
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{p}"] = (cout,)
        shapes[f"{name}.bn.num_batches_tracked"] = ()
    shapes["fc.weight"], shapes["fc.bias"] = (1008, 2048), (1008,)
    return shapes


def synthetic_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Weights in the published key layout, drawn from ``seed`` (for tests without the published
    file): He-scaled convolutions, batch-norm statistics near the identity, so activations stay of
    order one through the whole network."""
    rng = np.random.default_rng(seed)
    w = {}
    for key, shape in weight_shapes().items():
        if key.endswith("num_batches_tracked"):
            w[key] = np.zeros((), np.int64)
        elif key.endswith("conv.weight"):
            w[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))).astype(np.float32)
        elif key.endswith(("bn.weight", "bn.running_var")):
            w[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif key == "fc.weight":
            w[key] = (rng.standard_normal(shape) / np.sqrt(2048)).astype(np.float32)
        else:  # bn.bias, bn.running_mean, fc.bias
            w[key] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return w


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The ``.npz`` of ``tools/convert_inception.py``, checked key by key and shape by shape."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"eval.features: no Inception weights file {str(path)!r} (convert the published "
                         "pt_inception-2015-12-05-6726825d.pth with tools/convert_inception.py).")  # fmt: skip
    try:
        with np.load(path, allow_pickle=False) as f:
            w = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"eval.features: {str(path)!r} is not an .npz of Inception weights ({e}).") from None
    want = weight_shapes()
    missing = sorted(set(want) - set(w))
    if missing:
        raise ValueError(f"eval.features: {str(path)!r} lacks {len(missing)} Inception weights (e.g. {missing[0]!r}); "
                         "is it pytorch-fid's FID Inception?")  # fmt: skip
    for k, shape in want.items():
        if tuple(w[k].shape) != shape:
            raise ValueError(f"eval.features: {str(path)!r} holds {k} of shape {tuple(w[k].shape)}, expected {shape}.")
        if not np.all(np.isfinite(w[k])):
            raise ValueError(f"eval.features: {str(path)!r} holds non-finite values in {k}.")
    return {k: w[k] for k in want}


# ---------------------------------------------------------------------------- the network


def _conv(w, name, x, stride, padding):
    """BasicConv2d: conv (no bias) -> eval-mode batch norm (eps 1e-3) -> ReLU, NCHW."""
    y = jax.lax.conv_general_dilated(x, w[f"{name}.conv.weight"], (stride, stride),
                                     [(padding[0], padding[0]), (padding[1], padding[1])],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                     precision=jax.lax.Precision.HIGHEST)  # fmt: skip
    scale = w[f"{name}.bn.weight"] / jnp.sqrt(w[f"{name}.bn.running_var"] + BN_EPS)
    shift = w[f"{name}.bn.bias"] - w[f"{name}.bn.running_mean"] * scale
    return jax.nn.relu(y * scale[None, :, None, None] + shift[None, :, None, None])


def _max_pool(x, k, stride, pad=0):
    p = [(0, 0), (0, 0), (pad, pad), (pad, pad)]
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, k, k), (1, 1, stride, stride), p)


def _avg_pool_exclude_pad(x):
    """3x3, stride 1, padding 1, the padding not counted (TF's average pool)."""
    p = [(0, 0), (0, 0), (1, 1), (1, 1)]
    s = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 1, 3, 3), (1, 1, 1, 1), p)
    n = jax.lax.reduce_window(jnp.ones((1, 1, *x.shape[2:]), x.dtype), 0.0, jax.lax.add, (1, 1, 3, 3), (1, 1, 1, 1), p)
    return s / n


def _mixed(w, block, kind, convs, x):
    spec = {n: (s, p) for n, _, _, _, s, p in convs}

    def c(n, h):
        return _conv(w, f"{block}.{n}", h, *spec[n])

    if kind == "a":
        b5 = c("branch5x5_2", c("branch5x5_1", x))
        b3 = c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x)))
        return jnp.concatenate([c("branch1x1", x), b5, b3, c("branch_pool", _avg_pool_exclude_pad(x))], 1)
    if kind == "b":
        b3 = c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x)))
        return jnp.concatenate([c("branch3x3", x), b3, _max_pool(x, 3, 2)], 1)
    if kind == "c":
        b7 = c("branch7x7_3", c("branch7x7_2", c("branch7x7_1", x)))
        d = x
        for i in range(1, 6):
            d = c(f"branch7x7dbl_{i}", d)
        return jnp.concatenate([c("branch1x1", x), b7, d, c("branch_pool", _avg_pool_exclude_pad(x))], 1)
    if kind == "d":
        b3 = c("branch3x3_2", c("branch3x3_1", x))
        b7 = x
        for i in range(1, 5):
            b7 = c(f"branch7x7x3_{i}", b7)
        return jnp.concatenate([b3, b7, _max_pool(x, 3, 2)], 1)
    h3 = c("branch3x3_1", x)
    b3 = jnp.concatenate([c("branch3x3_2a", h3), c("branch3x3_2b", h3)], 1)
    hd = c("branch3x3dbl_2", c("branch3x3dbl_1", x))
    bd = jnp.concatenate([c("branch3x3dbl_3a", hd), c("branch3x3dbl_3b", hd)], 1)
    pooled = _avg_pool_exclude_pad(x) if kind == "e1" else _max_pool(x, 3, 1, 1)
    return jnp.concatenate([c("branch1x1", x), b3, bd, c("branch_pool", pooled)], 1)


def preprocess(x01, size: int = SIZE):
    """Images ``[B, H, W, C]`` in [0, 1] -> the network's input ``[B, 3, size, size]`` in [-1, 1]:
    8-bit quantization, grey to RGB, bilinear resize (half-pixel centres, no antialiasing)."""
    x = jnp.round(jnp.clip(jnp.asarray(x01, jnp.float32), 0.0, 1.0) * 255.0) / 255.0
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    x = jnp.transpose(x, (0, 3, 1, 2))
    if x.shape[2:] != (size, size):
        x = jax.image.resize(x, (*x.shape[:2], size, size), "bilinear", antialias=False)
    return 2.0 * x - 1.0


def forward(w, x):
    """(pool3 features ``[B, 2048]``, logits ``[B, 1008]``) of preprocessed input ``x [B, 3, H, W]``."""
    for name, _, _, _, stride, pad in _STEM[:3]:
        x = _conv(w, name, x, stride, pad)
    x = _max_pool(x, 3, 2)
    for name, _, _, _, stride, pad in _STEM[3:]:
        x = _conv(w, name, x, stride, pad)
    x = _max_pool(x, 3, 2)
    for block, kind, convs in BLOCKS:
        x = _mixed(w, block, kind, convs, x)
    pool = jnp.mean(x, axis=(2, 3))
    logits = jnp.dot(pool, w["fc.weight"].T, precision=jax.lax.Precision.HIGHEST) + w["fc.bias"]
    return pool, logits


# two programs: the network's is compiled once per batch size, whatever the images' size before the resize
_PREPROCESS = jax.jit(preprocess, static_argnums=1)
_FORWARD = jax.jit(forward)


class InceptionFeatures:
    """The FID Inception as a feature extractor for ``genjax.eval.suite.image_metrics`` (the domain
    classifier's interface: ``features``, ``probs``, ``name``, ``identity``)."""

    name = "inception"
    test_accuracy = None

    def __init__(self, path: str | Path, batch: int = 50, size: int = SIZE):
        self.path = str(path)
        self.weights = {k: jnp.asarray(v) for k, v in load_weights(path).items()}
        self.batch, self.size = int(batch), int(size)
        self._memo = {}  # the outputs of the last few image sets: each set's features and probs, one pass
        h = hashlib.sha256()
        for k in sorted(self.weights):
            h.update(k.encode())
            h.update(np.asarray(self.weights[k]).tobytes())
        self.sha256 = h.hexdigest()

    def _run(self, x01):
        """(pool3, logits) of images in [0, 1], ``batch`` at a time (the last batch padded, so one
        compiled program serves every set of the same size class)."""
        x01 = np.asarray(x01, np.float32)
        tag = (x01.shape, hashlib.sha256(x01.tobytes()).hexdigest())
        if tag in self._memo:
            return self._memo[tag]
        b = min(self.batch, len(x01))
        pools, logits = [], []
        for i in range(0, len(x01), b):
            chunk = x01[i : i + b]
            pad = np.concatenate([chunk, np.zeros((b - len(chunk), *chunk.shape[1:]), np.float32)])
            p, lg = _FORWARD(self.weights, _PREPROCESS(jnp.asarray(pad), self.size))
            pools.append(np.asarray(p)[: len(chunk)])
            logits.append(np.asarray(lg)[: len(chunk)])
        self._memo[tag] = (np.concatenate(pools), np.concatenate(logits))
        while len(self._memo) > 4:  # test, training, samples and one more set of a run's metrics
            self._memo.pop(next(iter(self._memo)))
        return self._memo[tag]

    def features(self, x01) -> np.ndarray:
        """pool3 features ``[N, 2048]`` (float64) of images in [0, 1]."""
        return self._run(x01)[0].astype(np.float64)

    def probs(self, x01) -> np.ndarray:
        """Softmax of the 1,008 logits ``[N, 1008]`` (float64)."""
        from scipy.special import softmax

        return softmax(self._run(x01)[1].astype(np.float64), axis=-1)

    def identity(self) -> dict:
        return {"name": self.name, "weights": self.path, "weights_sha256": self.sha256, "data_fingerprint": "-",
                "protocol": PROTOCOL}  # fmt: skip


PROTOCOL = ("pytorch-fid's: 8-bit quantization round(255 x), grey repeated to RGB, bilinear resize to 299x299 "
            "(align_corners=False, no antialiasing), [-1, 1]; pool3 (2048-d) features for FID / KID / "
            "precision-recall, softmax of the 1,008 fc logits for IS")  # fmt: skip


def save_stats(path: str | Path, features: np.ndarray) -> Path:
    """``mu`` and ``sigma`` of ``features`` (float64; sigma with ddof 1, as pytorch-fid) in its .npz format."""
    f = np.asarray(features, np.float64)
    np.savez(path, mu=f.mean(0), sigma=np.cov(f, rowvar=False))
    return Path(path)


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of a reference-statistics .npz (pytorch-fid's format), checked."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"eval.fid_stats: no such file {str(path)!r}.")
    try:
        with np.load(path, allow_pickle=False) as f:
            mu, sigma = np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64)
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ValueError(f"eval.fid_stats: {str(path)!r} is not an .npz with 'mu' and 'sigma' ({e}).") from None
    finite = np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)) or not finite:
        raise ValueError(f"eval.fid_stats: {str(path)!r} must hold finite mu (d,) and sigma (d, d); got "
                         f"{mu.shape} and {sigma.shape}.")  # fmt: skip
    return mu, sigma
