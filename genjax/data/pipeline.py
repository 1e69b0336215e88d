"""From ``config.data`` to train / validation / test arrays.

Splits are deterministic in ``data.seed``: a source's own test split is used when it has one;
otherwise ``data.test_fraction`` of the examples is held out as test. ``data.val_fraction`` of
the rest is the validation split. ``data.train_size > 0`` keeps only that many training
examples (for small-data studies).

``data.binarize``: 'none' | 'static' (one fixed draw for every split) | 'dynamic' (a fresh draw
each epoch for training, a fixed draw for validation and test). ``data.dequantize``: uniform
dequantization, fresh each epoch for training, fixed for validation and test.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from genjax.data import transforms as T
from genjax.data.sources import DataError, Source, load_source
from genjax.keys import data_seed


@dataclasses.dataclass
class DataSplits:
    name: str
    train: dict  # {"x": [N, ...], "y": [N] (optional)}
    val: dict
    test: dict
    shape: tuple  # per-example shape, e.g. (8, 8, 1)
    epoch_transform: str  # 'none' | 'binarize' | 'dequantize' | 'window' (text), applied to train x each epoch
    levels: int | None  # discrete levels of the source (dequantization)
    discrete: bool  # the likelihood is over discrete (binary) data
    bin_width: float | None  # dequantization bin width in the model's data space, for bits/dim
    scale: str = "01"
    seed: int = 0
    raw_val: np.ndarray | None = None  # validation images before their fixed draw (when epoch_transform != none)
    vocab: tuple | None = None  # text: the token strings (a token id indexes it); None for other data
    tokens: str = ""  # text: 'char' | 'byte' (genjax.data.text)
    # the codes of a first-stage model (data.name = 'latents:<run>'): genjax.run.prepare.FirstStage
    stage: Any = None

    def decode(self, ids) -> str:
        """Text data: token ids back to text."""
        from genjax.data.text import decode

        if self.vocab is None:
            raise ValueError(f"{self.name!r} is not text; it has no vocabulary to decode with.")
        return decode(ids, self.vocab if self.tokens == "char" else None)

    def samples_text(self, rows) -> str:
        """Text data: sampled token rows as one text, each under a ``--- sample i`` line."""
        return "".join(f"--- sample {i}\n{self.decode(row)}\n" for i, row in enumerate(rows))

    def to_unit(self, x) -> np.ndarray:
        """Data-space values ``x`` (examples, samples, decodes) as pictures see them: [-1, 1]
        images mapped to [0, 1] (``data.scale``), clipped there; float32."""
        x = np.asarray(x, np.float32)
        return np.clip((x + 1.0) / 2.0 if self.scale == "-11" else x, 0.0, 1.0)

    def eval_view(self, x: np.ndarray) -> np.ndarray:
        """Training-space images ``x`` (as in ``train["x"]``) as an evaluation set sees them: the
        epoch transform's fixed draw (static binarization or dequantization) and the scaling,
        as done for the validation and test splits. The identity when there is no epoch
        transform (then ``train["x"]`` is already in evaluation form)."""
        if self.epoch_transform == "none":
            return x
        if self.epoch_transform == "window":  # text: a training row's first window
            return x[..., : self.shape[-1]]
        if self.epoch_transform == "binarize":
            x = T.binarize_static(x, data_seed(self.seed, "eval_view"))
        else:
            x = T.dequantize_static(x, self.levels or 256, data_seed(self.seed, "eval_view"))
        return T.scale(x, self.scale)

    def training_pool(self) -> dict:
        """Train and validation examples together, in training form (for k-fold splits)."""
        if self.vocab is not None:
            raise DataError(
                f"cross-validation needs exchangeable examples; text {self.name!r} is one stream cut into "
                "contiguous train/validation/test blocks. Use genjax train."
            )
        val_x = self.raw_val if self.raw_val is not None else self.val["x"]
        pool = {"x": np.concatenate([self.train["x"], val_x])}
        if "y" in self.train and "y" in self.val:
            pool["y"] = np.concatenate([self.train["y"], self.val["y"]])
        return pool

    @property
    def kind(self) -> str:
        """``"tokens"`` (text), ``"image"`` (H, W, C) or ``"vector"``."""
        return "tokens" if self.vocab is not None else ("image" if len(self.shape) == 3 else "vector")

    @property
    def example(self) -> str:
        """What one example is, for units: "image (8x8x1)", "16-token window", "2-d point"."""
        if self.stage is not None:
            return self.stage.example
        if self.kind == "tokens":
            return f"{self.shape[-1]}-token window"
        if self.kind == "image":
            return "image (" + "x".join(str(s) for s in self.shape) + ")"
        return f"{self.num_dims}-d point"

    def require_labels(self, why: str) -> None:
        """Every split carries labels ``y``; else one sentence naming the split that has none."""
        for split, d in (("training", self.train), ("validation", self.val), ("test", self.test)):
            if "y" not in d:
                raise DataError(f"{why}, but the {split} split of {self.name!r} has no labels "
                                "(an npz file gives them as 'label' and 'test_label').")  # fmt: skip

    @property
    def num_dims(self) -> int:
        return math.prod(self.shape)


def _take(x, y, idx):
    return {"x": x[idx]} | ({"y": y[idx]} if y is not None else {})


def load_splits(dcfg, batch_size: int, source: Source | None = None, text: str | None = None) -> DataSplits:
    """Load ``dcfg.name`` (or take ``source``, e.g. ``sources.from_arrays``, or ``text``, a Python
    string to tokenize) and build the splits described in the module docstring (text:
    ``genjax.data.text``)."""
    if text is not None or (source is None and str(dcfg.name).partition(":")[0] == "text"):
        from genjax.data.text import load_text_splits

        return load_text_splits(dcfg, batch_size, text)
    for field in ("val_fraction", "test_fraction"):
        v = float(dcfg[field])
        if not 0.0 <= v < 1.0:
            raise DataError(f"data.{field} must lie in [0, 1), got {v}.")
    if dcfg.binarize not in ("none", "static", "dynamic"):
        raise DataError(f"data.binarize must be 'none', 'static' or 'dynamic', got {dcfg.binarize!r}.")
    if dcfg.binarize != "none" and dcfg.dequantize:
        raise DataError("data.binarize and data.dequantize cannot both be on.")
    if dcfg.scale not in ("01", "-11"):
        raise DataError(f"data.scale must be '01' or '-11', got {dcfg.scale!r}.")
    src = load_source(dcfg) if source is None else source
    seed = int(dcfg.seed)
    rng = np.random.default_rng(seed)
    n = len(src.x)
    perm = rng.permutation(n)
    if src.test_x is None:
        n_test = int(round(n * float(dcfg.test_fraction)))
        test = _take(src.x, src.y, perm[:n_test])
        perm = perm[n_test:]
    else:
        test = {"x": src.test_x} | ({"y": src.test_y} if src.test_y is not None else {})
    n_val = int(round(len(perm) * float(dcfg.val_fraction)))
    val = _take(src.x, src.y, perm[:n_val])
    train_idx = perm[n_val:]
    if int(dcfg.train_size) > 0:
        train_idx = train_idx[: int(dcfg.train_size)]
    train = _take(src.x, src.y, train_idx)
    for split, d, field in (("validation", val, "val_fraction"), ("test", test, "test_fraction")):
        if len(d["x"]) == 0:
            raise DataError(f"data: the {split} split of {src.name!r} is empty; raise data.{field}.")
    if len(train["x"]) < batch_size:
        raise DataError(
            f"data: the training split of {src.name!r} has {len(train['x'])} examples, fewer than one batch "
            f"(train.batch_size={batch_size})."
        )
    image = len(train["x"].shape) == 4
    if (dcfg.binarize != "none" or dcfg.dequantize) and not image:
        raise DataError(f"data.binarize/dequantize apply to images, not to {src.name!r}.")

    discrete, bin_width, ep = src.binary, None, "none"
    raw_val = val["x"]
    if src.binary and dcfg.dequantize:
        raise DataError(f"data.dequantize is meaningless for already-binary {src.name!r}.")
    if dcfg.binarize != "none" and not src.binary:
        discrete = True
        val["x"] = T.binarize_static(val["x"], data_seed(seed, "val"))
        test["x"] = T.binarize_static(test["x"], data_seed(seed, "test"))
        if dcfg.binarize == "static":
            train["x"] = T.binarize_static(train["x"], data_seed(seed, "train_static"))
        else:
            ep = "binarize"
    elif dcfg.dequantize:
        levels = src.levels or 256
        val["x"] = T.dequantize_static(val["x"], levels, data_seed(seed, "val"))
        test["x"] = T.dequantize_static(test["x"], levels, data_seed(seed, "test"))
        ep = "dequantize"
        bin_width = (1.0 / levels) * (2.0 if dcfg.scale == "-11" else 1.0)
    if dcfg.scale == "-11":
        val["x"], test["x"] = T.scale(val["x"], "-11"), T.scale(test["x"], "-11")
        if ep == "none":
            train["x"] = T.scale(train["x"], "-11")
    return DataSplits(
        name=src.name,
        train=train,
        val=val,
        test=test,
        shape=tuple(train["x"].shape[1:]),
        epoch_transform=ep,
        levels=src.levels,
        discrete=discrete,
        bin_width=bin_width,
        scale=str(dcfg.scale),
        seed=seed,
        raw_val=raw_val if ep != "none" else None,
    )
