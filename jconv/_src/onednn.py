"""CPU convolutions on oneDNN through XLA's typed FFI.

XLA:CPU's convolutions run 2-4x slower than oneDNN's on every term (forward, input gradient,
weight gradient; ``BENCHMARKS.md``). On Linux x86-64, ``pip install`` builds
``csrc/onednn_conv.cc`` (three FFI handlers) against the ``onednn-cpu-gomp`` wheel; this module
loads it and wraps the handlers in three JAX primitives, one per term:

* ``fwd(x, w) -> y``, ``bwd_data(dy, w) -> dx``, ``bwd_weights(x, dy) -> dw``. Each is bilinear,
  and the transpose of each is another of the three, so ``grad``, ``jvp``, ``hessian``, ... of any
  order stay on oneDNN; ``vmap`` folds a mapped batch into ``N``, and mapped weights (per-example
  gradients included) into the groups: still one kernel call.
* The CPU lowering is a ``custom_partitioning`` call: under ``jit`` with a batch sharded over a
  mesh, each device convolves its shard (the weight gradient is then summed with ``psum``)
  instead of gathering the batch around the custom call.

Which backend runs: :func:`cpu_conv_backend`; ``JCONV_CPU_CONV=xla|onednn`` forces one (read
once, at the first convolution). Float32 only: other dtypes keep XLA's convolution.

Threads: oneDNN runs on GNU OpenMP. Its default (spinning) wait policy fights XLA's own intra-op
threads for the cores: ``OMP_WAIT_POLICY=PASSIVE`` is set, unless the user set it, before
``libdnnl`` loads (measurements in ``BENCHMARKS.md``).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

try:
    from jax._src import dispatch as _dispatch
except ImportError:  # a later JAX: see _DEVICE_REGISTRY
    _dispatch = None

ENV_VAR = "JCONV_CPU_CONV"
BACKENDS = ("onednn", "xla")
_EXTENSION = "jconv._src._onednn_conv"
_RUNTIME = "onednn-cpu-gomp"
_TARGETS = {"fwd": "JconvConvFwd", "bwd_data": "JconvConvBwdData", "bwd_weights": "JconvConvBwdWeights"}


class Params(NamedTuple):
    """A convolution's static geometry, as the kernels take it (hashable: a primitive parameter)."""

    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    groups: int
    channels_last: bool


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
        for name, symbol in _TARGETS.items():
            jax.ffi.register_ffi_target(f"jconv_onednn_{name}", jax.ffi.pycapsule(getattr(lib, symbol)),
                                        platform="cpu")
    except (OSError, AttributeError) as err:
        return _Library(None, f"loading the oneDNN extension failed: {err}")
    version = importlib.metadata.version(_RUNTIME)
    return _Library(lib, f"oneDNN from {_RUNTIME} {version}")


_override: list[str] = []


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
    want = _override[-1] if _override else _requested()
    if want == "xla":
        return "xla"
    lib = _library()
    if lib.lib is None and want == "onednn":
        raise RuntimeError(f"{ENV_VAR}=onednn, but oneDNN is unavailable: {lib.detail}")
    return "onednn" if lib.lib is not None else "xla"


def describe() -> str:
    """One line for logs: the CPU convolution backend and why."""
    backend = cpu_conv_backend()
    why = f" (forced in code: {_override[-1]})" if _override else (
        f" ({ENV_VAR}={_requested()})" if _requested() else "")
    if backend == "onednn":
        return f"CPU convolutions: oneDNN via XLA FFI, float32 ({_library().detail}){why}"
    return f"CPU convolutions: XLA{why or f' ({_library().detail})'}"


class use:
    """Context manager: ``with use("xla"): ...`` traces convolutions for that backend (tests and
    benchmarks; a function jitted earlier keeps what it was traced with)."""

    def __init__(self, backend: str):
        if backend not in BACKENDS:
            raise ValueError(f"use: `backend` must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend

    def __enter__(self) -> None:
        _override.append(self.backend)
        try:
            cpu_conv_backend()  # raises here if oneDNN is requested but unavailable
        except RuntimeError:
            _override.pop()
            raise

    def __exit__(self, *exc: Any) -> None:
        _override.pop()


# --- shapes ---------------------------------------------------------------------------------


def _activation(n: int, c: int, spatial: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    return (n, *spatial, c) if channels_last else (n, c, *spatial)


def _spatial(shape: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    return tuple(shape[1:-1] if channels_last else shape[2:])


def _channels(shape: tuple[int, ...], channels_last: bool) -> int:
    return shape[-1] if channels_last else shape[1]


def _out_spatial(in_size: tuple[int, ...], kernel: tuple[int, ...], p: Params) -> tuple[int, ...]:
    return tuple((i + lo + hi - (k - 1) * d - 1) // s + 1
                 for i, k, s, d, lo, hi in zip(in_size, kernel, p.strides, p.dilation, p.pad_lo, p.pad_hi))


def _fwd_shape(x: tuple[int, ...], w: tuple[int, ...], p: Params, **_: Any) -> tuple[int, ...]:
    out = _out_spatial(_spatial(x, p.channels_last), w[2:], p)
    return _activation(x[0], w[0], out, p.channels_last)


def _bwd_data_shape(dy: tuple[int, ...], w: tuple[int, ...], p: Params, *, in_size: tuple[int, ...],
                    **_: Any) -> tuple[int, ...]:
    return _activation(dy[0], w[1] * p.groups, in_size, p.channels_last)


def _bwd_weights_shape(x: tuple[int, ...], dy: tuple[int, ...], p: Params, *, kernel: tuple[int, ...],
                       **_: Any) -> tuple[int, ...]:
    return (_channels(dy, p.channels_last), _channels(x, p.channels_last) // p.groups, *kernel)


_SHAPES: dict[str, Callable[..., tuple[int, ...]]] = {
    "fwd": _fwd_shape, "bwd_data": _bwd_data_shape, "bwd_weights": _bwd_weights_shape}


# --- the per-device call, partitioned over a batch-sharded mesh --------------------------------


def _ffi(kind: str, p: Params, a: jax.Array, b: jax.Array, **extra: Any) -> jax.Array:
    if _library().lib is None:
        raise RuntimeError(f"jconv's oneDNN convolutions are unavailable: {_library().detail}")
    out = jax.ShapeDtypeStruct(_SHAPES[kind](a.shape, b.shape, p, **extra), jnp.float32)
    return jax.ffi.ffi_call(f"jconv_onednn_{kind}", out)(
        a, b, strides=np.array(p.strides, np.int64), dilation=np.array(p.dilation, np.int64),
        pad_lo=np.array(p.pad_lo, np.int64), pad_hi=np.array(p.pad_hi, np.int64), groups=np.int64(p.groups),
        channels_last=np.int64(p.channels_last))


def _batch_axes(sharding: Any) -> Any:
    """The mesh axes the batch (leading) axis is sharded over, or None."""
    if isinstance(sharding, NamedSharding) and len(sharding.spec) and sharding.spec[0] is not None:
        return sharding.spec[0]
    return None


def _shardings(kind: str, mesh: Mesh, arg_shapes: Any) -> tuple[Mesh, Any, tuple[Any, Any], Any]:
    """(mesh, batch axes, args, result) shardings: the batch stays on the mesh axes it is sharded over,
    everything else is replicated (a sharded channel or spatial axis is gathered first; without a
    named mesh, everything is)."""
    axes = _batch_axes(arg_shapes[0].sharding)
    if mesh.empty:  # shardings without axis names: replicate, on a mesh of the same devices
        devices = sorted(arg_shapes[0].sharding.device_set, key=lambda d: d.id)
        mesh, axes = Mesh(np.array(devices), ("devices",)), None
    rows, repl = NamedSharding(mesh, P(axes)), NamedSharding(mesh, P())
    if kind == "bwd_weights":
        return mesh, axes, (rows, rows), repl
    return mesh, axes, (rows, repl), rows


def _partition(kind: str, p: Params, extra: tuple, mesh: Any, arg_shapes: Any, result_shape: Any) -> tuple:
    mesh, axes, args, result = _shardings(kind, mesh, arg_shapes)

    def per_shard(a: jax.Array, b: jax.Array) -> jax.Array:
        out = _ffi(kind, p, a, b, **dict(extra))
        return lax.psum(out, axes) if kind == "bwd_weights" and axes is not None else out

    return mesh, per_shard, result, args


def _infer(kind: str, p: Params, extra: tuple, mesh: Any, arg_shapes: Any, result_shape: Any) -> Any:
    return _shardings(kind, mesh, arg_shapes)[3]


def _sharding_rule(kind: str, p: Params, extra: tuple, mesh: Any, operand_types: Any, result_types: Any) -> tuple:
    """Shardy: the batch factor ``n`` may stay sharded (a reduction for the weight gradient);
    every other factor is replicated."""
    r = len(p.strides)
    sp = lambda c: [f"{c}{i}" for i in range(r)]  # noqa: E731
    x = ["n", *sp("h"), "c"] if p.channels_last else ["n", "c", *sp("h")]
    y = ["n", *sp("p"), "o"] if p.channels_last else ["n", "o", *sp("p")]
    w = ["o", "i", *sp("k")]
    ops = {"fwd": (x, w, y), "bwd_data": (y, w, x), "bwd_weights": (x, y, w)}[kind]
    rule = f"{' '.join(ops[0])}, {' '.join(ops[1])} -> {' '.join(ops[2])}"
    others = list(dict.fromkeys(f for op in ops for f in op if f != "n"))  # in order of appearance
    extra_kw: dict[str, Any] = {"need_replication_factors": tuple(others)}
    if kind == "bwd_weights":
        extra_kw["reduction_factors"] = ("n",)
    return rule, extra_kw


@functools.cache
def _partitioned(kind: str) -> Callable[..., jax.Array]:
    def call(kind: str, p: Params, extra: tuple, a: jax.Array, b: jax.Array) -> jax.Array:
        return _ffi(kind, p, a, b, **dict(extra))

    f = custom_partitioning(call, static_argnums=(0, 1, 2))
    f.def_partition(partition=_partition, infer_sharding_from_operands=_infer, sharding_rule=_sharding_rule)
    return f


# --- the primitives ---------------------------------------------------------------------------

_PRIMS = {kind: Primitive(f"jconv_onednn_conv_{kind}") for kind in _TARGETS}
fwd_p, bwd_data_p, bwd_weights_p = _PRIMS["fwd"], _PRIMS["bwd_data"], _PRIMS["bwd_weights"]


def fwd(x: jax.Array, w: jax.Array, p: Params) -> jax.Array:
    """``y = conv(x, w)``: ``x`` ``(N, C, *s)`` / ``(N, *s, C)``, ``w`` ``(O, C // groups, *k)``."""
    return fwd_p.bind(x, w, p=p)


def bwd_data(dy: jax.Array, w: jax.Array, p: Params, in_size: tuple[int, ...]) -> jax.Array:
    """The input gradient (the transposed convolution) of ``dy`` for an input of ``in_size``."""
    return bwd_data_p.bind(dy, w, p=p, in_size=tuple(in_size))


def bwd_weights(x: jax.Array, dy: jax.Array, p: Params, kernel: tuple[int, ...]) -> jax.Array:
    """The weight gradient, ``(O, C // groups, *kernel)``."""
    return bwd_weights_p.bind(x, dy, p=p, kernel=tuple(kernel))


def _extra(params: dict) -> tuple:
    """Keyword parameters as a hashable tuple (a cache key, a static argument)."""
    return tuple(sorted(params.items()))


# The partitioned lowering needs the program's devices (custom_partitioning's callbacks build a
# mesh). JAX lowers device-agnostically unless a primitive asks, and the only way to ask is this
# internal registry (JAX's own cuDNN attention uses it; no public API exists in jax 0.10). The one
# deliberate private import in jconv, guarded: without it a sharded program gathers the batch around
# each call (correct, slower), and tests/test_onednn.py's sharding test says so.
_DEVICE_REGISTRY = getattr(_dispatch, "prim_requires_devices_during_lowering", None) if _dispatch else None
if _DEVICE_REGISTRY is not None:
    _DEVICE_REGISTRY.update(_PRIMS.values())


def _lowering(kind: str, ctx: Any, a: Any, b: Any, *, p: Params, **extra: Any) -> Any:
    """The FFI call; where the program spans several devices, a partitioned one."""
    if _DEVICE_REGISTRY is None or getattr(ctx.module_context.axis_context, "num_devices", None) == 1:
        fn = functools.partial(_ffi, kind, p, **extra)
    else:
        fn = functools.partial(_partitioned(kind), kind, p, _extra(extra))
    return mlir.lower_fun(fn, multiple_results=False)(ctx, a, b)


@functools.cache
def _jitted(kind: str, params: tuple) -> Callable[[jax.Array, jax.Array], jax.Array]:
    return jax.jit(lambda a, b: _PRIMS[kind].bind(a, b, **dict(params)))


for _kind, _prim in _PRIMS.items():
    _prim.def_impl(lambda a, b, *, _kind=_kind, **params: _jitted(_kind, _extra(params))(a, b))
    _prim.def_abstract_eval(
        lambda a, b, *, _kind=_kind, p, **extra: jax.core.ShapedArray(
            _SHAPES[_kind](a.shape, b.shape, p, **extra), jnp.float32))
    mlir.register_lowering(_prim, functools.partial(_lowering, _kind), platform="cpu")


# Transposes. With A_w x = fwd(x, w): bwd_data(dy, w) = A_w^T dy and
# <fwd(x, v), dy> = <v, bwd_weights(x, dy)>; each primitive's transpose is one of the others.


def _zero_or(ct: Any, aval: Any, f: Callable[[], jax.Array]) -> Any:
    return ad.Zero(aval) if type(ct) is ad.Zero else f()


ad.defbilinear(
    fwd_p,
    lambda ct, x, w, *, p: _zero_or(ct, x.aval, lambda: bwd_data(ct, w, p, _spatial(x.aval.shape, p.channels_last))),
    lambda ct, x, w, *, p: _zero_or(ct, w.aval, lambda: bwd_weights(x, ct, p, w.aval.shape[2:])),
)
ad.defbilinear(
    bwd_data_p,
    lambda ct, dy, w, *, p, in_size: _zero_or(ct, dy.aval, lambda: fwd(ct, w, p)),
    lambda ct, dy, w, *, p, in_size: _zero_or(ct, w.aval, lambda: bwd_weights(ct, dy, p, w.aval.shape[2:])),
)
ad.defbilinear(
    bwd_weights_p,
    lambda ct, x, dy, *, p, kernel: _zero_or(
        ct, x.aval, lambda: bwd_data(dy, ct, p, _spatial(x.aval.shape, p.channels_last))),
    lambda ct, x, dy, *, p, kernel: _zero_or(ct, dy.aval, lambda: fwd(x, ct, p)),
)


# Batching: the primitives take a batch axis N already; a vmapped axis on the activation-like
# operand alone (x for fwd, dy for bwd_data) folds into it. Anything else (a vmapped weight, or
# both operands of the weight gradient, as in per-example gradients) folds into the groups: B
# convolutions with g groups each are one convolution with B * g groups, the mapped axis outside
# each operand's channels.


def _channel_axis(ndim: int, channels_last: bool) -> int:
    return ndim - 1 if channels_last else 1


def _to_groups(v: jax.Array, weight: bool, channels_last: bool) -> jax.Array:
    """A mapped operand ``(B, ...)`` with the mapped axis folded into its channels: activations
    ``(N, ..., B * C)`` / ``(N, B * C, ...)``, weights ``(B * O, I, *k)``."""
    if weight:
        return v.reshape((-1,) + v.shape[2:])
    c = _channel_axis(v.ndim - 1, channels_last) + 1  # channels of the unmapped operand, shifted
    v = jnp.moveaxis(v, 0, c - 1)  # (N, ..., B, C) or (N, B, C, ...)
    return v.reshape(v.shape[:c - 1] + (-1,) + v.shape[c + 1:])


def _from_groups(v: jax.Array, size: int, weight: bool, channels_last: bool) -> jax.Array:
    """The inverse of :func:`_to_groups`: the mapped axis back in front."""
    if weight:
        return v.reshape((size, -1) + v.shape[1:])
    c = _channel_axis(v.ndim, channels_last)
    v = v.reshape(v.shape[:c] + (size, -1) + v.shape[c + 1:])
    return jnp.moveaxis(v, c, 0)


_WEIGHT_ARGS = {"fwd": (False, True, False), "bwd_data": (False, True, False),
                "bwd_weights": (False, False, True)}  # (a, b, result) is a weight


def _batch_rule(kind: str, args: tuple, dims: tuple, *, p: Params, **extra: Any) -> tuple[jax.Array, int]:
    (a, b), (da, db) = args, dims
    prim = _PRIMS[kind]
    if kind != "bwd_weights" and db is None:  # only the activation mapped: fold into N
        a = jnp.moveaxis(a, da, 0)
        out = prim.bind(a.reshape((-1,) + a.shape[2:]), b, p=p, **extra)
        return out.reshape(a.shape[:2] + out.shape[1:]), 0
    size = a.shape[da] if da is not None else b.shape[db]
    a, b = (batching.bdim_at_front(v, d, size) for v, d in ((a, da), (b, db)))
    wa, wb, wout = _WEIGHT_ARGS[kind]
    grouped = p._replace(groups=p.groups * size)
    out = prim.bind(_to_groups(a, wa, p.channels_last), _to_groups(b, wb, p.channels_last), p=grouped, **extra)
    return _from_groups(out, size, wout, p.channels_last), 0


for _kind, _prim in _PRIMS.items():
    batching.primitive_batchers[_prim] = functools.partial(_batch_rule, _kind)
