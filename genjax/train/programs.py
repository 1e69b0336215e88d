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
The executable XLA made of that call is kept beside it too (``Kept``), so a later process loads
it without lowering anything (JAX's cache, keyed by the lowered program, must lower to look).
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

import functools
import hashlib
import importlib.metadata
import json
import os
import pickle
import platform
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import jax

FORMAT = 2  # of an entry on disk; a change of layout bumps it (and so every key)
_ENV: str | None = None
_MEMO: dict = {}  # key -> Program (or "plain"): entries this process read or made (the last 32)
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
        _ENV = digest(FORMAT, _source_digest(), _versions(), sys.version)
    return digest(_ENV, *_settings())


def _settings() -> list:
    """Read at each call: every ``jax.config`` value, the backend, its devices, the process count."""
    flags = sorted((k, repr(v)) for k, v in jax.config.values.items())
    devices = [(d.platform, d.device_kind, d.id) for d in jax.devices()]
    return [flags, jax.default_backend(), devices, jax.process_count()]


@functools.cache
def _versions() -> dict:
    """The versions of the packages a program's trace and compile depend on (None: not installed)."""
    versions = {}
    for dist in ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "scipy", "flatbuffers"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


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


class Program:
    """A kept program: the tree and shapes of its outputs, and the exported program itself
    (``jax.export``), deserialized at its first use: a run that loads the program's executable
    (``Kept``) never needs it (deserializing a U-Net step's took ~0.1 s)."""

    def __init__(self, out_tree, out_avals: list, blob: bytes | None = None, exported=None):
        self.out_tree, self.out_avals, self._blob, self._exported = out_tree, out_avals, blob, exported

    @property
    def exported(self):
        if self._exported is None:
            from jax import export

            self._exported = export.deserialize(bytearray(self._blob))
        return self._exported

    def out_info(self):
        """The outputs as ``jax.ShapeDtypeStruct``s, as ``jax.stages.Lowered.out_info`` gives them."""
        return jax.tree.unflatten(self.out_tree, [jax.ShapeDtypeStruct(s, d) for s, d in self.out_avals])


def _read(path: Path, in_tree):
    """The entry at ``path`` as a ``Program``, ``"plain"`` for a marker, or None (none there, or one
    that does not read back: it is then made again)."""
    try:
        entry = pickle.loads(path.read_bytes())
        if entry.get("plain"):
            return "plain"
        if entry["format"] != FORMAT or entry["in_tree"] != in_tree:
            return None
        return Program(entry["out_tree"], entry["out_avals"], blob=entry["exported"])
    except Exception:  # none there, or a truncated or foreign file: made again
        return None


def _entry(fn: Callable, args: tuple, key: str | None, donate_argnums):
    """``(found, mark)``: the kept ``(Program, path)`` of ``fn`` for ``args`` under ``key``
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
    return (None, None) if found == "plain" else ((found, path), None)


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
    return found[0].out_info()


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
    return Kept(*found, args, donate_argnums)


@functools.cache
def _compiler() -> str:
    """A digest of what, beside the program, decides the executable XLA makes of it (what JAX's
    compilation cache keys on besides: the platform's version, the XLA flags of the environment and
    the command line) and of the machine it is for (its CPU's architecture and features: the code
    is compiled for the host's instruction set)."""
    backend = jax.devices()[0].client
    cpu = ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln for ln in lines if ln.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    argv = [a for a in sys.argv if a.startswith("--xla")]
    return digest(backend.platform, backend.platform_version, os.environ.get("XLA_FLAGS"),
                  os.environ.get("LIBTPU_INIT_ARGS"), argv, platform.machine(), cpu)  # fmt: skip


_THREAD = threading.local()  # per thread: how many compiles JAX's persistent cache answered


def _heard(event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _THREAD.hits = getattr(_THREAD, "hits", 0) + 1


jax.monitoring.register_event_listener(_heard)


class Kept:
    """What ``lower`` gives for a kept program: ``out_info`` (read from the program, nothing
    lowered) and ``compile()``, which loads the executable kept beside the program (a
    ``.xlaexec`` file, zlib-compressed: a U-Net step's 6.1 MB in 0.97 MB, 20 ms to inflate; keyed
    by the program and ``_compiler``) or else lowers a call to the kept
    program, compiles it (XLA's persistent cache answers if it can) and keeps the executable.

    Loading a kept executable skips the lowering, which for a U-Net's training step is most of
    a compile from the caches: JAX's compilation cache is keyed by the lowered program, so it must
    lower before it can look. An executable that does not load (truncated, foreign, another
    jaxlib's) is compiled again. Only a fresh compile's executable is serialized, since one JAX
    read from its own cache loads again without its kernels; a fresh one is also indexed by the
    lowered program's ``_fingerprint`` (a ``.xlaprog`` file naming it), so when another key's
    compile of the same program is answered by JAX's cache, that fresh executable is kept for it
    too. A program whose XLA entry outlived every fresh executable of it (a JAX cache older than
    them, e.g. across a genjax upgrade) lowers as before."""

    def __init__(self, program: Program, path: Path, args: tuple, donate_argnums):
        self.program, self.args, self.donate = program, args, donate_argnums
        self.path = path.parent / f"{digest(path.stem, _compiler())}.xlaexec"

    @property
    def out_info(self):
        return self.program.out_info()

    def lower(self) -> jax.stages.Lowered:
        """A call to the kept program, lowered (``jax.jit(call).lower(*args)``)."""
        exported, out_tree = self.program.exported, self.program.out_tree

        def call(*a):
            return jax.tree.unflatten(out_tree, exported.call(*jax.tree.leaves(a)))

        return jax.jit(call, donate_argnums=self.donate).lower(*self.args)

    def compile(self) -> jax.stages.Compiled:
        from jax.experimental import serialize_executable as se

        try:
            blob, in_tree, out_tree, ids = pickle.loads(zlib.decompress(self.path.read_bytes()))
            by_id = {d.id: d for d in jax.devices()}
            return se.deserialize_and_load(blob, in_tree, out_tree, execution_devices=[by_id[i] for i in ids])
        except Exception:  # none kept yet, or one that does not load here: compiled (again)
            pass
        hits = getattr(_THREAD, "hits", 0)
        lowered = self.lower()
        compiled = lowered.compile()
        fresh = getattr(_THREAD, "hits", 0) == hits
        try:
            ids = [d.id for d in compiled.runtime_executable().local_devices()]
            same = self.path.parent / f"{_fingerprint(lowered, ids)}.xlaprog"
            if not fresh:  # read from XLA's cache: such an executable does not serialize whole (its kernels
                # are missing when it is loaded again); a fresh one of the same program kept under another
                # key (a config change that leaves this program as it was) serves, where there is one
                other = pickle.loads(zlib.decompress((self.path.parent / same.read_text()).read_bytes()))[0]
            blob, in_tree, out_tree = se.serialize(compiled)
        except Exception:  # no such fresh one, or an executable the backend cannot serialize: compiled each time
            return compiled
        _write(self.path, zlib.compress(pickle.dumps((blob if fresh else other, in_tree, out_tree, ids)), 1))
        if fresh:
            _write(same, self.path.name.encode())
        return compiled


def _fingerprint(lowered: jax.stages.Lowered, ids: list) -> str:
    """What decides a lowered program's executable, but which key asked for it: the program's text
    (its donation, shardings and partitions included; no source locations), the devices it runs on
    (``ids``) and the settings and machine it is compiled for (``_compiler``, every ``jax.config``
    value, the versions, the devices there are). Two keys with one fingerprint share an executable."""
    return digest(FORMAT, _compiler(), _versions(), *_settings(), ids, lowered.as_text())


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
    """Trace and export ``fn`` for ``avals`` and keep it at ``path``: a ``Program``;
    raises what tracing, exporting or serializing raised."""
    from jax import export

    from genjax import hostcall

    out_trees = []

    def flat(*leaves):
        out, tree = jax.tree.flatten(fn(*jax.tree.unflatten(in_tree, leaves)))
        out_trees.append(tree)
        return out

    exported = export.export(jax.jit(flat), disabled_checks=hostcall.targets_allowed())(*avals)
    out_avals = [(tuple(a.shape), a.dtype) for a in exported.out_avals]
    blob = pickle.dumps({"format": FORMAT, "in_tree": in_tree, "out_tree": out_trees[0], "out_avals": out_avals,
                         "exported": bytes(exported.serialize())})  # fmt: skip
    _write(path, blob)
    return Program(out_trees[0], out_avals, exported=exported)


__all__ = ["digest", "environment", "folder", "forget", "jit", "lower", "shapes"]
