"""Loading jconv's oneDNN extension and choosing the CPU convolution backend (:func:`cpu_conv_backend`,
``JCONV_CPU_CONV``, :class:`use`)."""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax

ENV_VAR = "JCONV_CPU_CONV"


BACKENDS = ("onednn", "xla")


_EXTENSION = "jconv._src._onednn_conv"


_RUNTIME = "onednn-cpu-gomp"


_TARGETS = {"fwd": "JconvConvFwd", "bwd_data": "JconvConvBwdData", "bwd_weights": "JconvConvBwdWeights"}


_POOL_TARGETS = {"max_pool_fwd": "JconvMaxPoolFwd", "max_pool_bwd": "JconvMaxPoolBwd",
                 "avg_pool_fwd": "JconvAvgPoolFwd", "avg_pool_bwd": "JconvAvgPoolBwd"}


class _Library(NamedTuple):
    lib: ctypes.CDLL | None
    detail: str  # what was loaded, or why nothing was


def _runtime_library() -> Path:
    """``libdnnl.so.3`` as the ``onednn-cpu-gomp`` wheel installed it (``<prefix>/lib``)."""
    dist = importlib.metadata.distribution(_RUNTIME)
    for f in dist.files or ():
        if f.name == "libdnnl.so.3":
            return Path(dist.locate_file(f)).resolve()
    raise FileNotFoundError(f"{_RUNTIME} {dist.version} has no libdnnl.so.3")


@functools.cache
def _library() -> _Library:
    """Loads ``libdnnl`` (global symbols, so the extension's dependency resolves to it) and the
    extension, once; never raises."""
    spec = importlib.util.find_spec(_EXTENSION)
    if spec is None or spec.origin is None:
        return _Library(None, "the oneDNN extension was not built at install time")
    try:
        runtime = _runtime_library()
    except (importlib.metadata.PackageNotFoundError, FileNotFoundError) as err:
        return _Library(None, f"the {_RUNTIME} wheel is not installed ({err})")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before libgomp starts its threads
    try:
        ctypes.CDLL(str(runtime), mode=ctypes.RTLD_GLOBAL)
        lib = ctypes.CDLL(spec.origin)
        for name, symbol in {**_TARGETS, **_POOL_TARGETS}.items():
            jax.ffi.register_ffi_target(f"jconv_onednn_{name}", jax.ffi.pycapsule(getattr(lib, symbol)),
                                        platform="cpu")
    except (OSError, AttributeError) as err:
        return _Library(None, f"loading the oneDNN extension failed: {err}")
    version = importlib.metadata.version(_RUNTIME)
    return _Library(lib, f"oneDNN from {_RUNTIME} {version}")


#: The backend forced by :class:`use`, a context that ``jax.jit``'s caches key on: a function traced
#: under one choice is traced again (never reused) under the other.
_FORCED = jax.make_user_context(default_value=None)


@functools.cache
def _requested() -> str | None:
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value and value not in BACKENDS:
        raise ValueError(f"{ENV_VAR} must be one of {BACKENDS} or unset, got {os.environ[ENV_VAR]!r}")
    return value or None


def cpu_conv_backend() -> str:
    """The backend of jconv's float32 convolutions on CPU: ``"onednn"`` (the FFI kernels, where the
    extension was built and the ``onednn-cpu-gomp`` wheel is installed) or ``"xla"`` (XLA's
    convolutions, everywhere else). ``JCONV_CPU_CONV=xla|onednn`` forces one; forcing
    ``onednn`` where it is unavailable raises ``RuntimeError`` with the reason.

    Example:
      >>> import jconv as jc
      >>> jc.cpu_conv_backend() in ("onednn", "xla")
      True
    """
    want = _FORCED.value or _requested()
    if want == "xla":
        return "xla"
    lib = _library()
    if lib.lib is None and want == "onednn":
        raise RuntimeError(f"{ENV_VAR}=onednn, but oneDNN is unavailable: {lib.detail}")
    return "onednn" if lib.lib is not None else "xla"


def _query(symbol: str, src: tuple[int, ...], wei: tuple[int, ...], dst: tuple[int, ...],
           *geometry: tuple[int, ...]) -> int:
    """The extension's C query ``symbol`` (``JconvConvBlock``, ``JconvConvNxc``) on a convolution's
    logical dims and its strides, dilation, pad_lo, pad_hi; 0 where the extension is unavailable."""
    lib = _library().lib
    if lib is None:
        return 0
    arr = lambda v: (ctypes.c_int64 * len(v))(*v)  # noqa: E731
    fn = getattr(lib, symbol)
    fn.restype = ctypes.c_int64
    return int(fn(ctypes.c_int64(len(src)), arr(src), ctypes.c_int64(len(wei)), arr(wei), arr(dst),
                  *(arr(g) for g in geometry)))


@functools.cache
def conv_block(src: tuple[int, ...], wei: tuple[int, ...], dst: tuple[int, ...], strides: tuple[int, ...],
               dilation: tuple[int, ...], pad_lo: tuple[int, ...], pad_hi: tuple[int, ...]) -> int:
    """The channel block ``b`` (16 with AVX-512, 8 with AVX2) where a convolution of these logical
    oneDNN dims (``src`` ``(N, C, *s)``, ``wei`` ``([G,] O, I, *k)``, ``dst``) runs the same kernels on
    blocked ``(N, C // b, *s, b)`` activations as on plain ones, without their reorders; 0 where
    oneDNN would pick another layout or kernel, or the extension is unavailable."""
    return _query("JconvConvBlock", src, wei, dst, strides, dilation, pad_lo, pad_hi)


@functools.cache
def conv_nxc(src: tuple[int, ...], wei: tuple[int, ...], dst: tuple[int, ...], strides: tuple[int, ...],
             dilation: tuple[int, ...], pad_lo: tuple[int, ...], pad_hi: tuple[int, ...]) -> bool:
    """Whether the forward or the weight gradient of a convolution of these logical oneDNN dims (as
    for :func:`conv_block`) runs on channels-last activations taken as they are (:attr:`Params.direct`):
    where its kernel there is the one oneDNN picks left to choose, or a jit one for a wider ISA (the
    extension's ``DirectPays``; terms that do not reorder the channels-last buffers). False where the
    extension is unavailable."""
    return bool(_query("JconvConvNxc", src, wei, dst, strides, dilation, pad_lo, pad_hi))


@functools.cache
def activation_block() -> int:
    """The channel block of the blocked activations oneDNN's convolutions run on here (those of a
    3x3, 64-channel one: 16 with AVX-512, 8 with AVX2), 0 where none; pooling follows it."""
    return conv_block((1, 64, 14, 14), (64, 64, 3, 3), (1, 64, 14, 14), (1, 1), (1, 1), (1, 1), (1, 1))


def describe() -> str:
    """One line for logs: the CPU convolution backend and why."""
    backend = cpu_conv_backend()
    why = f" (forced in code: {_FORCED.value})" if _FORCED.value else (
        f" ({ENV_VAR}={_requested()})" if _requested() else "")
    if backend == "onednn":
        return f"CPU convolutions: oneDNN via XLA FFI, float32 ({_library().detail}){why}"
    return f"CPU convolutions: XLA{why or f' ({_library().detail})'}"


class use:
    """Context manager: ``with use("xla"): ...`` runs convolutions on that backend (tests and
    benchmarks). The choice is part of ``jax.jit``'s cache key: a function jitted under one
    backend and called under the other is traced and compiled again, never silently reused."""

    def __init__(self, backend: str):
        if backend not in BACKENDS:
            raise ValueError(f"use: `backend` must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self._context: Any = None

    def __enter__(self) -> None:
        self._context = _FORCED(self.backend)
        self._context.__enter__()
        try:
            cpu_conv_backend()  # raises here if oneDNN is requested but unavailable
        except RuntimeError as e:
            self.__exit__(type(e), e, e.__traceback__)
            raise

    def __exit__(self, *exc: Any) -> None:
        context, self._context = self._context, None
        context.__exit__(*exc)
