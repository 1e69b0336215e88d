"""Text as token sequences: ``data.name = 'text:<path>'`` (a UTF-8 file) or ``'text:'`` (the
default corpus: the Python standard library's own ``*.py`` files, read from the running
interpreter's installation, so a fresh machine needs no download).

* Tokens (``data.tokens``): ``char`` — the sorted set of characters of the whole text is the
  vocabulary; ``byte`` — the 256 byte values of its UTF-8 encoding.
* Splits: contiguous blocks, in order: train (the first 1 - val - test of the stream),
  validation, test (``data.val_fraction``, ``data.test_fraction``).
* Validation and test are non-overlapping windows ``[M, T]`` of ``T = data.block_size`` tokens.
* Training windows are drawn on device inside the scanned epoch: ``train["x"]`` holds the rows
  ``stream[iT : iT + 2T]`` (each row overlaps the next by T), and the epoch transform ``window``
  cuts a random window ``row[s : s + T]``, ``s ~ U{0, ..., T - 1}``, from each drawn row. So every
  start position of the training stream is reachable, each with the same probability, at twice
  the stream's memory.

An example is a sequence of T token ids (int32); a model scores it as a sequence of its own
(``log p(x_1 .. x_T)``), so the NLL per token in bits is the bits per character.
"""

from __future__ import annotations

import functools
import sysconfig
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax.data.sources import DataError

TOKENS = ("char", "byte")


@functools.lru_cache(maxsize=1)
def default_corpus() -> str:
    """The running interpreter's standard-library ``*.py`` files (top level, sorted by name),
    concatenated."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))
    if not files:
        raise DataError(f"data.name 'text:': no *.py files in the standard library folder {str(root)!r}.")
    return "".join(f.read_text(encoding="utf-8", errors="replace") for f in files)


def read_text(path: str) -> str:
    where = f"data.name 'text:{path}'"
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{where}: no such file.")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: is not UTF-8 text ({e.reason} at byte {e.start}).") from None


def tokenize(text: str, kind: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """(token ids int32, vocabulary): ``char`` — ids index the sorted characters; ``byte`` — the
    UTF-8 bytes (vocabulary None: 256 values)."""
    if kind == "byte":
        return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32), None
    vocab = tuple(sorted(set(text)))
    lookup = {c: i for i, c in enumerate(vocab)}
    return np.fromiter((lookup[c] for c in text), np.int32, len(text)), vocab


def encode(text: str, vocab: tuple[str, ...] | None) -> np.ndarray:
    """Text -> token ids (int32) in a model's vocabulary: the characters' indices in ``vocab``, or
    (``None``) the UTF-8 bytes. A character outside the vocabulary is refused by name."""
    if vocab is None:
        return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)
    lookup = {c: i for i, c in enumerate(vocab)}
    unknown = sorted({c for c in text if c not in lookup})
    if unknown:
        raise DataError(f"the text holds characters the model's vocabulary has not: {''.join(unknown)[:20]!r}.")
    return np.fromiter((lookup[c] for c in text), np.int32, len(text))


def decode(ids, vocab: tuple[str, ...] | None) -> str:
    """Token ids back to text (bytes that do not form UTF-8 are replaced)."""
    ids = np.asarray(ids).astype(np.int64).ravel()
    if vocab is None:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")
    return "".join(vocab[int(i)] for i in ids)


def windows(stream: np.ndarray, t: int, width: int) -> np.ndarray:
    """Rows ``stream[i t : i t + width]`` for every i whose row fits: ``[n, width]``."""
    n = (len(stream) - width) // t + 1
    if n < 1:
        return np.zeros((0, width), np.int32)
    return np.lib.stride_tricks.sliding_window_view(stream, width)[::t][:n].copy()


def random_window(key: jax.Array, x: jax.Array) -> jax.Array:
    """The epoch transform ``window``: from rows ``x [..., 2T]``, the windows ``x[..., s:s+T]``
    with one ``s ~ U{0, .., T-1}`` per row."""
    t = x.shape[-1] // 2
    s = jax.random.randint(key, x.shape[:-1], 0, t)
    return jnp.take_along_axis(x, s[..., None] + jnp.arange(t), axis=-1)


def load_text_splits(dcfg, batch_size: int, text: str | None = None):
    """``DataSplits`` of a text source (see the module docstring); ``text``: the text itself (a
    Python string) instead of ``data.name``'s file or corpus."""
    from genjax.data.pipeline import DataSplits

    name = str(dcfg.name) if text is None else "text:<in memory>"
    arg = name.partition(":")[2]
    t = int(dcfg.block_size)
    if t < 2:
        raise DataError(f"data.block_size must be at least 2, got {t}.")
    kind = str(dcfg.tokens)
    if kind not in TOKENS:
        raise DataError(f"data.tokens must be one of {', '.join(TOKENS)}, got {kind!r}.")
    for field, bad in (("binarize", dcfg.binarize != "none"), ("dequantize", bool(dcfg.dequantize))):
        if bad:
            raise DataError(f"data.{field}={dcfg[field]!r} applies to images, not to text {name!r}.")
    if dcfg.scale != "01":
        raise DataError(f"data.scale={dcfg.scale!r} applies to images; text {name!r} is token ids.")
    if text is not None and not isinstance(text, str):
        raise DataError(f"text must be a str, got {type(text).__name__}.")
    text = text if text is not None else (read_text(arg) if arg else default_corpus())
    if int(dcfg.text_chars) > 0:
        text = text[: int(dcfg.text_chars)]
    if not text:
        raise DataError(f"data.name {name!r}: the text is empty.")
    stream, vocab = tokenize(text, kind)
    n = len(stream)
    n_test = int(round(n * float(dcfg.test_fraction)))
    n_val = int(round(n * float(dcfg.val_fraction)))
    parts = {"train": stream[: n - n_val - n_test], "val": stream[n - n_val - n_test : n - n_test]}
    parts["test"] = stream[n - n_test :]
    test, val = windows(parts["test"], t, t), windows(parts["val"], t, t)
    train = windows(parts["train"], t, 2 * t)
    for split, d, field in (("validation", val, "val_fraction"), ("test", test, "test_fraction")):
        if len(d) == 0:
            raise DataError(
                f"data: the {split} block of {name!r} holds fewer than data.block_size={t} tokens; raise data.{field}."
            )
    if len(train) < batch_size:
        raise DataError(
            f"data: the training block of {name!r} gives {len(train)} windows of 2 x data.block_size={t} tokens, "
            f"fewer than one batch (train.batch_size={batch_size})."
        )
    return DataSplits(
        name=name,
        train={"x": train},
        val={"x": val},
        test={"x": test},
        shape=(t,),
        epoch_transform="window",
        levels=None,
        discrete=True,
        bin_width=None,
        seed=int(dcfg.seed),
        vocab=vocab if vocab is not None else tuple(chr(i) for i in range(256)),
        tokens=kind,
    )
