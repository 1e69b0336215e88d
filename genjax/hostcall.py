"""Host (NumPy) functions that a compiled program calls by name, so it can still be cached.

``jax.pure_callback`` hands its Python function to the executable when it is compiled: JAX then
neither writes nor reads that program in the persistent compilation cache, and ``jax.export``
refuses it, so every new process traces, lowers and compiles it again (OT-CFM's epoch: 3.3-9.5 s
of every run's start). A function registered here is instead an XLA FFI target with a fixed name
(``register``): the program names the target, XLA finds the handler by that name when it compiles
or loads the program, so the program is exported and cached like any other.

The handler speaks XLA's typed FFI (the C ABI of ``xla/ffi/api/c_api.h``, versioned and
size-checked) through ``ctypes``: it answers the metadata query (the API version it was written
for), views the argument and result buffers as NumPy arrays, calls the function, copies its
results into the result buffers, and turns an exception into an XLA error (the program raises it;
nothing is left half-written). CPU only, where the buffers are host memory; on other platforms
``call`` lowers to ``jax.pure_callback`` of the same function.

A function takes and returns NumPy arrays; under ``jax.vmap`` it gets every argument with the
mapped axes in front (``vmap_method="broadcast_all"``) and returns its results with them too,
so vmapped members (k-fold folds, seeds) are served by one call.
"""

from __future__ import annotations

import ctypes as C
from collections.abc import Callable, Sequence

import jax
import numpy as np

_API_VERSION = (0, 3)  # the FFI C API (major, minor) whose structs these are: the pinned jaxlib's c_api.h


class _Ext(C.Structure):
    pass


_Ext._fields_ = [("struct_size", C.c_size_t), ("type", C.c_int), ("next", C.POINTER(_Ext))]


class _Version(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("ext", C.c_void_p), ("major", C.c_int), ("minor", C.c_int)]


class _Metadata(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("api_version", _Version), ("traits", C.c_uint32),
                ("state_type_id", C.c_int64)]  # fmt: skip


class _MetadataExt(C.Structure):
    _fields_ = [("base", _Ext), ("metadata", C.POINTER(_Metadata))]


class _Buffer(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("ext", C.c_void_p), ("dtype", C.c_int), ("data", C.c_void_p),
                ("rank", C.c_int64), ("dims", C.POINTER(C.c_int64))]  # fmt: skip


class _List(C.Structure):  # XLA_FFI_Args and XLA_FFI_Rets share this layout
    _fields_ = [("struct_size", C.c_size_t), ("ext", C.c_void_p), ("size", C.c_int64),
                ("types", C.POINTER(C.c_int)), ("items", C.POINTER(C.c_void_p))]  # fmt: skip


class _Attrs(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("ext", C.c_void_p), ("size", C.c_int64), ("types", C.c_void_p),
                ("names", C.c_void_p), ("attrs", C.c_void_p)]  # fmt: skip


class _ErrorArgs(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("ext", C.c_void_p), ("message", C.c_char_p), ("errc", C.c_int)]


_ERROR_CREATE = C.CFUNCTYPE(C.c_void_p, C.POINTER(_ErrorArgs))


class _Api(C.Structure):  # the head of XLA_FFI_Api, up to the error constructor
    _fields_ = [("struct_size", C.c_size_t), ("ext", C.c_void_p), ("api_version", _Version),
                ("internal_api", C.c_void_p), ("error_create", _ERROR_CREATE)]  # fmt: skip


class _CallFrame(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("ext", C.POINTER(_Ext)), ("api", C.POINTER(_Api)),
                ("ctx", C.c_void_p), ("stage", C.c_int), ("args", _List), ("rets", _List), ("attrs", _Attrs),
                ("future", C.c_void_p)]  # fmt: skip


_HANDLER = C.CFUNCTYPE(C.c_void_p, C.POINTER(_CallFrame))
_METADATA, _EXECUTE, _BUFFER, _INTERNAL = 1, 3, 1, 13  # extension type, stage, argument type, error code
_DTYPES = {1: np.bool_, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.uint8, 7: np.uint16, 8: np.uint32,
           9: np.uint64, 10: np.float16, 11: np.float32, 12: np.float64}  # fmt: skip
_HOST: dict[str, Callable] = {}  # name -> the function
_KEEP: dict[str, object] = {}  # name -> its ctypes handler, alive as long as the process


def _view(pointer) -> np.ndarray:
    """A NumPy view (no copy) of the XLA_FFI_Buffer at ``pointer``."""
    b = C.cast(pointer, C.POINTER(_Buffer)).contents
    if b.dtype not in _DTYPES:
        raise TypeError(f"genjax.hostcall: buffers of XLA dtype code {b.dtype} are not supported.")
    shape = tuple(int(b.dims[i]) for i in range(b.rank))
    dtype = np.dtype(_DTYPES[b.dtype])
    n = int(np.prod(shape, dtype=np.int64))
    if n == 0:
        return np.zeros(shape, dtype)
    return np.frombuffer((C.c_char * (n * dtype.itemsize)).from_address(b.data), dtype).reshape(shape)


def _handler(name: str, fn: Callable):
    def handle(frame_p):
        frame = frame_p.contents
        ext = frame.ext
        while ext:  # XLA asks each handler once which FFI version it speaks
            if ext.contents.type == _METADATA:
                md = C.cast(ext, C.POINTER(_MetadataExt)).contents.metadata.contents
                md.api_version.major, md.api_version.minor = _API_VERSION
                md.traits = 0
                return None
            ext = ext.contents.next
        if frame.stage != _EXECUTE:
            return None
        try:
            args = [_view(frame.args.items[i]) for i in range(frame.args.size)]
            rets = [_view(frame.rets.items[i]) for i in range(frame.rets.size)]
            outs = fn(*args)
            outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
            if len(outs) != len(rets):
                raise ValueError(f"returned {len(outs)} arrays, the program expects {len(rets)}")
            for i, (out, ret) in enumerate(zip(outs, rets, strict=True)):
                out = np.asarray(out)
                if out.shape != ret.shape:
                    raise ValueError(f"result {i} has shape {out.shape}, the program expects {ret.shape}")
                np.copyto(ret, out, casting="same_kind")
            return None
        except Exception as e:  # the program raises this (an XlaRuntimeError naming the target)
            message = f"genjax.hostcall {name}: {type(e).__name__}: {e}".encode()
            err = _ErrorArgs(C.sizeof(_ErrorArgs), None, message, _INTERNAL)
            return frame.api.contents.error_create(C.byref(err))

    return _HANDLER(handle)


def register(name: str, fn: Callable) -> None:
    """Make ``fn`` (NumPy arrays in, an array or a tuple of arrays out) the host function XLA calls
    as the FFI target ``name`` on CPU (module docstring). Registering a name again with the same
    function does nothing; with another function it raises."""
    if name in _HOST:
        if _HOST[name] is not fn:
            raise ValueError(f"genjax.hostcall: the target {name!r} is already registered to {_HOST[name]!r}.")
        return
    handler = _handler(name, fn)
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(handler), platform="cpu")
    _HOST[name], _KEEP[name] = fn, handler


def targets_allowed() -> list:
    """``jax.export``'s ``disabled_checks`` that let a program call the registered targets."""
    from jax import export

    return [export.DisabledSafetyCheck.custom_call(n) for n in _HOST]


def call(name: str, result: jax.ShapeDtypeStruct | Sequence[jax.ShapeDtypeStruct], *args):
    """Call the registered host function ``name`` on ``args`` from a traced program: the FFI target
    on CPU (a cacheable, exportable program), ``jax.pure_callback`` of the same function elsewhere.
    ``result``: the results' shapes and dtypes (one, or a sequence)."""
    if name not in _HOST:
        raise KeyError(f"genjax.hostcall: no host function is registered as {name!r}; call register first.")
    fn = _HOST[name]

    def on_cpu(*a):
        return jax.ffi.ffi_call(name, result, vmap_method="broadcast_all")(*a)

    def elsewhere(*a):
        return jax.pure_callback(fn, result, *a, vmap_method="broadcast_all")

    return jax.lax.platform_dependent(*args, cpu=on_cpu, default=elsewhere)


__all__ = ["call", "register", "targets_allowed"]
