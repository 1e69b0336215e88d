"""The domain classifier behind genjax's FID / IS / KID: a small conv net trained by genjax on a
dataset's own labelled training split, checkpointed, and reused by every evaluation of that
dataset. Its 128-d penultimate features give the Frechet and kernel distances, its class
probabilities the Inception-style score. Results carry its name (``fid_digits_classifier``,
...): they are comparable between genjax runs on the same data, not with Inception-based
numbers in papers.

Network (any image size, inputs in [0, 1]): Conv3x3(16) -> Conv3x3(32, stride 2) ->
Conv3x3(32, stride 2) -> Dense(128) [features] -> Dense(classes), ReLU between. Trained with
Adam (lr 1e-3, batch 128, 30 epochs) on softmax cross-entropy; the checkpoint (orbax) is cached under the
exact fingerprint of its training data (two pipelines that share a dataset name get their own
networks, and none is ever overwritten), and ``eval.json`` records that fingerprint and the hash
of the weights beside every figure (``DomainClassifier.identity``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

VERSION = 2  # bump when the network or its training changes: old checkpoints are retrained


class DomainNet(nnx.Module):
    def __init__(self, in_shape, n_classes: int, *, rngs: nnx.Rngs):
        c = in_shape[-1]
        self.c1 = nnx.Conv(c, 16, (3, 3), padding="SAME", rngs=rngs)
        self.c2 = nnx.Conv(16, 32, (3, 3), strides=2, padding="SAME", rngs=rngs)
        self.c3 = nnx.Conv(32, 32, (3, 3), strides=2, padding="SAME", rngs=rngs)
        flat = (-(-in_shape[0] // 4)) * (-(-in_shape[1] // 4)) * 32
        self.fc = nnx.Linear(flat, 128, rngs=rngs)
        self.out = nnx.Linear(128, n_classes, rngs=rngs)

    def features(self, x):
        h = jax.nn.relu(self.c3(jax.nn.relu(self.c2(jax.nn.relu(self.c1(x))))))
        return jax.nn.relu(self.fc(h.reshape(h.shape[0], -1)))

    def __call__(self, x):
        return self.out(self.features(x))


@dataclasses.dataclass
class DomainClassifier:
    name: str  # e.g. "digits_classifier"
    test_accuracy: float
    module: DomainNet
    fingerprint: str = ""  # of the labelled training data it was trained on (its cache key)
    weights_sha256: str = ""  # of its parameters: which network produced a figure

    def identity(self) -> dict:
        """What eval.json records beside every figure this classifier produced."""
        return {"name": self.name, "data_fingerprint": self.fingerprint, "weights_sha256": self.weights_sha256,
                "test_accuracy": self.test_accuracy}  # fmt: skip

    def _batched(self, fn, x: np.ndarray, batch: int = 500) -> np.ndarray:
        x = np.asarray(x, np.float32)
        return np.concatenate(
            [np.asarray(fn(self.module, jnp.asarray(x[i : i + batch]))) for i in range(0, len(x), batch)]
        )

    def features(self, x: np.ndarray) -> np.ndarray:
        """``[N, 128]`` penultimate features of images ``[N, H, W, C]`` in [0, 1]."""
        return self._batched(_features, x)

    def probs(self, x: np.ndarray) -> np.ndarray:
        """``[N, classes]`` class probabilities."""
        return self._batched(_probs, x)


@nnx.jit
def _features(m, x):
    return m.features(x)


@nnx.jit
def _probs(m, x):
    return jax.nn.softmax(m(x), -1)


def fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha1()
    for a in (np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.int32)):
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return f"v{VERSION}-{h.hexdigest()[:16]}"


def train_classifier(train, test, n_classes: int, epochs: int = 30, seed: int = 0, batch: int = 128):
    """Train a ``DomainNet`` on ``train = (x, y)``; returns (module, test accuracy). Data stay on
    the device; each epoch's shuffle is one jitted call and its steps a host loop over one
    jitted step (a conv net's gradients inside an XLA loop run ~20x slower on a CPU,
    jax-ml/jax#12868)."""
    x, y = (np.asarray(a) for a in train)
    module = DomainNet(x.shape[1:], n_classes, rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(module)
    tx = optax.adam(1e-3)
    opt = tx.init(params)
    bs = min(batch, len(x))
    steps = len(x) // bs

    def loss_fn(p, xb, yb):
        logits = nnx.merge(graphdef, p)(xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def shuffle(k):
        return jax.random.permutation(k, len(x))[: steps * bs].reshape(steps, bs)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(p, o, x, y, perm, i):
        idx = perm[i]
        g = jax.grad(loss_fn)(p, x[idx], y[idx])
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o

    xd, yd = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)
    for k in jax.random.split(jax.random.key(seed), epochs):
        perm = shuffle(k)
        for i in range(steps):
            params, opt = step(params, opt, xd, yd, perm, jnp.int32(i))
    module = nnx.merge(graphdef, params)
    tx_, ty = (np.asarray(a) for a in test)
    clf = DomainClassifier("", 0.0, module)
    acc = float(np.mean(clf.probs(tx_).argmax(-1) == ty))
    return module, acc


def weights_sha256(module) -> str:
    """A hash of a network's parameters (names, shapes, dtypes and values)."""
    h = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(module)))[0],
                             key=lambda kv: jax.tree_util.keystr(kv[0])):  # fmt: skip
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def get_classifier(dataset: str, train, test, directory: str | Path, n_classes: int | None = None, log=print):
    """The domain classifier for ``dataset`` (images in [0, 1], integer labels), cached by the
    exact fingerprint of its training data in ``directory/<dataset>-<fingerprint>``: restored when
    that folder exists, else trained and saved there. A folder once written is never replaced, so
    two data pipelines that share a name never retrain or overwrite each other's network; the
    returned classifier carries the fingerprint and the hash of its weights (``identity``)."""
    x, y = np.asarray(train[0]), np.asarray(train[1])
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"the domain classifier needs integer class labels; {dataset!r} has labels of shape {y.shape}."
        )
    n_classes = int(n_classes or (max(int(y.max()), int(np.max(test[1]))) + 1))
    safe = "".join(ch if ch.isalnum() else "_" for ch in dataset).strip("_")
    name = f"{safe}_classifier"
    fp = fingerprint(x, y)
    path = Path(directory).absolute() / f"{safe}-{fp}-c{n_classes}"
    # shapes only: the weights come from the checkpoint (an eager init cost ~0.3 s of op-by-op compiles)
    template = nnx.eval_shape(lambda: DomainNet(x.shape[1:], n_classes, rngs=nnx.Rngs(0)))
    if not (path / "classifier.json").exists():
        log(f"training the domain classifier {name} on {len(x)} labelled images (once; saved in {path})")
        module, acc = train_classifier((x, y), test, n_classes)
        meta = {"name": name, "fingerprint": fp, "n_classes": n_classes, "test_accuracy": acc, "train_n": len(x),
                "weights_sha256": weights_sha256(module)}  # fmt: skip
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with ocp.StandardCheckpointer() as ck:
            ck.save(tmp / "params", nnx.to_pure_dict(nnx.state(module)), force=True)
        (tmp / "classifier.json").write_text(json.dumps(meta, indent=2) + "\n")
        try:
            os.rename(tmp, path)  # atomic; a folder another process wrote first wins
            log(f"{name}: test accuracy {acc:.4f}")
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    meta = json.loads((path / "classifier.json").read_text())
    graphdef, abstract = nnx.split(template)
    with ocp.StandardCheckpointer() as ck:
        params = ck.restore(path / "params", nnx.to_pure_dict(abstract))
    nnx.replace_by_pure_dict(abstract, params)
    module = nnx.merge(graphdef, abstract)
    sha = weights_sha256(module)
    if meta.get("weights_sha256") not in (None, sha):
        raise ValueError(f"the domain classifier in {path} does not match its recorded weights hash; "
                         "remove the folder.")  # fmt: skip
    return DomainClassifier(name, meta["test_accuracy"], module, fp, sha)
