"""Traced programs kept on disk, so a new process skips tracing and lowering.

JAX's persistent compilation cache keeps what XLA compiled, keyed by the lowered program, so a
new process must still trace the Python (the model, the optimizer, the epoch's scan) and lower it
to StableHLO before the cache can be asked; for a 2-D spline flow that was 1.9 s of a 3.0 s
compile from the cache. ``lower`` keeps the traced and lowered program itself
(``jax.export``, serialized) under a key that names everything the trace depends on:

- the program's recipe, from the caller (``build_program``: the config, the family's origin, the
  data's description, the sweep and mesh arguments; the piece of the epoch);
- the arguments' pytree structure, shapes, dtypes, weak types and shardings, and which are donated;
- the environment (``environment``): genjax's own source files, the versions of Python, JAX,
  jaxlib, Flax, Optax, chex, NumPy and SciPy, every ``jax.config`` value, the backend, its devices
  and the process count.

A hit reads the program back and lowers a call to it (~0.1 s); a miss traces and exports it and
runs that same exported program, so a run computes the same numbers whether it found its
program or made it (the exported call is bit for bit the direct one: ``tests/train/test_programs.py``).
What cannot be exported (a ``jax.pure_callback``) is lowered as before, and a marker keeps later
runs from trying again; a host function called by name (``genjax.hostcall``, OT-CFM's coupling)
is exported and kept. A family built from a config (``build_family``) is
stamped with its origin; ``build_program`` gives a key only to a family so stamped, so a family
made or changed by hand (``dataclasses.replace``) is always traced.

The programs live in ``<compilation cache>/genjax-programs`` (the folder ``GENJAX_CACHE_DIR``
names); with the compilation cache off, or ``GENJAX_PROGRAM_CACHE=0``, everything is traced.
The key sees genjax's source files, not code replaced while a process runs (a genjax function
monkeypatched in a notebook): such work sets ``GENJAX_PROGRAM_CACHE=0``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import jax

FORMAT = 1  # of an entry on disk; a change of layout bumps it (and so every key)
_ENV: str | None = None
_MEMO: dict[str, tuple] = {}  # key -> (exported, out_tree): entries this process read or made (the last 32)
_COMPILED: dict[str, Callable] = {}  # jit's executables this process compiled, by key and arguments (the last 16)


def digest(*parts) -> str:
    """A SHA-256 hex digest of ``parts`` (JSON where they are, ``repr`` where not)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=repr).encode())
        h.update(b"\0")
    return h.hexdigest()


def _source_digest() -> str:
    root = Path(__file__).resolve().parents[1]  # the genjax package
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def environment() -> str:
    """A digest of what, beside a program's own recipe, decides what tracing it gives: the source
    and versions (read once per process) and, read at each call, every ``jax.config`` value, the
    backend and its devices."""
    global _ENV
    if _ENV is None:
        versions = {}
        for dist in ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "scipy", "flatbuffers"):
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                versions[dist] = None
        _ENV = digest(FORMAT, _source_digest(), versions, sys.version)
    flags = sorted((k, repr(v)) for k, v in jax.config.values.items())
    devices = [(d.platform, d.device_kind, d.id) for d in jax.devices()]
    return digest(_ENV, flags, jax.default_backend(), devices, jax.process_count())


def folder() -> Path | None:
    """Where programs are kept, or None when they are not (the compilation cache is off,
    ``GENJAX_PROGRAM_CACHE=0``, or more than one process runs the program)."""
    cache = jax.config.jax_compilation_cache_dir
    if not cache or os.environ.get("GENJAX_PROGRAM_CACHE", "1") == "0" or jax.process_count() > 1:
        return None
    return Path(cache) / "genjax-programs"


def _avals(leaves) -> list:
    out = []
    for x in leaves:
        sharding = getattr(x, "sharding", None)
        out.append(jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding, weak_type=getattr(x, "weak_type", False)))
    return out


def _describe(avals) -> list:
    return [(a.shape, str(a.dtype), bool(a.weak_type), repr(a.sharding)) for a in avals]


def _write(path: Path, blob: bytes) -> None:
    """``blob`` to ``path`` by an atomic rename (a reader sees the whole entry or none); a folder
    that cannot be written (read-only, full, not a folder) keeps nothing and stops nothing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if not isinstance(e, OSError):
            raise


def _read(path: Path, in_tree):
    """The entry at ``path`` as ``(exported, out_tree)``, ``"plain"`` for a marker, or None (none
    there, or one that does not read back: it is then made again)."""
    from jax import export

    try:
        entry = pickle.loads(path.read_bytes())
        if entry.get("plain"):
            return "plain"
        if entry["format"] != FORMAT or entry["in_tree"] != in_tree:
            return None
        return export.deserialize(bytearray(entry["exported"])), entry["out_tree"]
    except Exception:  # none there, or a truncated or foreign file: made again
        return None


def _entry(fn: Callable, args: tuple, key: str | None, donate_argnums):
    """``(found, mark)``: the kept ``(exported, out_tree)`` of ``fn`` for ``args`` under ``key``
    (read, or traced and kept now) or None where programs are not kept or this one is not; then
    ``mark`` (or None) is to be called once the plain path has traced it without error: this
    program does not export (a host callback), so later runs skip the attempt."""
    where = folder()
    leaves, in_tree = jax.tree.flatten(args)
    if key is None or where is None or any(isinstance(x, jax.core.Tracer) for x in leaves):
        return None, None
    avals = _avals(leaves)
    donate = (donate_argnums,) if isinstance(donate_argnums, int) else tuple(donate_argnums)
    full = digest(key, environment(), repr(in_tree), _describe(avals), donate)
    path = where / f"{full}.jaxexport"
    found = _MEMO.get(full) or _read(path, in_tree)
    if found is None:
        try:
            found = _export(fn, in_tree, avals, path)
        except Exception:  # a host callback or a type export does not take, or an error of the program's own

            def mark():
                _MEMO[full] = "plain"
                _write(path, pickle.dumps({"plain": True}))

            return None, mark
    _MEMO[full] = found
    while len(_MEMO) > 32:
        _MEMO.pop(next(iter(_MEMO)))
    return (None, None) if found == "plain" else (found, None)


def forget() -> None:
    """Forget the programs this process has read, made or compiled (they stay on disk): the next
    ``lower`` reads its program as a new process would (with ``jax.clear_caches()``, for timing one)."""
    _MEMO.clear()
    _COMPILED.clear()


def shapes(fn: Callable, *args, key: str | None):
    """``jax.eval_shape(fn, *args)``, from the kept program when there is one (see ``lower``)."""
    found, mark = _entry(fn, args, key, ())
    if found is None:
        out = jax.eval_shape(fn, *args)
        if mark is not None:
            mark()
        return out
    exported, out_tree = found
    return jax.tree.unflatten(out_tree, [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in exported.out_avals])


def lower(fn: Callable, *args, key: str | None, donate_argnums: int | tuple = ()):
    """``jax.jit(fn, donate_argnums=donate_argnums).lower(*args)``, the traced program kept on disk
    under ``key`` (with the arguments' structure and the environment) when ``key`` is given and
    the program cache is on (``folder``). Returns a ``jax.stages.Lowered`` whose ``compile()``
    takes and gives the same pytrees as ``fn``'s."""
    found, mark = _entry(fn, args, key, donate_argnums)
    if found is None:
        lowered = jax.jit(fn, donate_argnums=donate_argnums).lower(*args)
        if mark is not None:
            mark()
        return lowered
    exported, out_tree = found

    def call(*a):
        return jax.tree.unflatten(out_tree, exported.call(*jax.tree.leaves(a)))

    return jax.jit(call, donate_argnums=donate_argnums).lower(*args)


def jit(fn: Callable, *, key: str | None) -> Callable:
    """``jax.jit(fn)`` whose program is kept under ``key`` (``lower``): compiled at the first call
    for each shape of the arguments in this process (the executable is shared by every ``jit`` of
    the same key); plain ``jax.jit`` without a key, under a trace (e.g. ``jax.eval_shape``) or with
    jit disabled."""
    plain = jax.jit(fn)

    def call(*args):
        leaves, tree = jax.tree.flatten(args)
        if key is None or jax.config.jax_disable_jit or any(isinstance(x, jax.core.Tracer) for x in leaves):
            return plain(*args)
        sig = digest(key, environment(), repr(tree), _describe(_avals(leaves)))
        if sig not in _COMPILED:
            _COMPILED[sig] = lower(fn, *args, key=key).compile()
            while len(_COMPILED) > 16:
                _COMPILED.pop(next(iter(_COMPILED)))
        return _COMPILED[sig](*args)

    return call


def _export(fn: Callable, in_tree, avals, path: Path):
    """Trace and export ``fn`` for ``avals`` and keep it at ``path``: ``(exported, out_tree)``;
    raises what tracing, exporting or serializing raised."""
    from jax import export

    from genjax import hostcall

    out_trees = []

    def flat(*leaves):
        out, tree = jax.tree.flatten(fn(*jax.tree.unflatten(in_tree, leaves)))
        out_trees.append(tree)
        return out

    exported = export.export(jax.jit(flat), disabled_checks=hostcall.targets_allowed())(*avals)
    blob = pickle.dumps({"format": FORMAT, "in_tree": in_tree, "out_tree": out_trees[0],
                         "exported": bytes(exported.serialize())})  # fmt: skip
    _write(path, blob)
    return exported, out_trees[0]


__all__ = ["digest", "environment", "folder", "forget", "jit", "lower", "shapes"]
