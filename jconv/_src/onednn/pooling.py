"""Max and average pooling on oneDNN (``csrc/onednn_pool.cc``): JAX primitives, their derivatives,
``vmap`` rules and a batch partitioning.

* ``fwd_p``: ``x -> (y, ws)``, the pooled maxima and, per output, the window offset of its pick
  (uint8, ``y``'s shape; :func:`max_pool` returns ``y``). PyTorch's semantics: the first maximum;
  NaN propagates (the window's last NaN).
* ``bwd(dy, ws) -> dx``: each ``dy`` added to its pick (the input gradient), linear in ``dy``.
* ``pick(t, ws) -> t[pick]``: the tangent of ``fwd``'s ``y``, linear in ``t``; ``bwd`` is its
  transpose and ``pick`` is ``bwd``'s, so ``grad``, ``jvp`` and higher orders compose. ``pick`` runs
  as an XLA gather (forward mode only: ``grad`` transposes it into ``bwd``).
* ``avg_pool(x) -> y`` and ``avg_bwd(dy) -> dx``: average pooling (the divisor counts the padding with
  ``include_pad``, else only the input's elements) and its transpose; both linear, each the other's
  transpose.
"""

from __future__ import annotations

import ctypes
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.custom_partitioning import custom_partitioning
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jconv._src.onednn.backend import _library
from jconv._src.onednn.partition import _batch_axes
from jconv._src.onednn.primitives import _DEVICE_REGISTRY
from jconv._src.onednn.shapes import _spatial, from_blocked, to_blocked


class PoolParams(NamedTuple):
    """A pooling's static geometry, as the kernels take it (hashable: a primitive parameter).
    ``pad_hi`` includes ceil mode's extra padding."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    channels_last: bool
    #: 0: plain activations; ``b``: oneDNN's blocked ``(N, C // b, *s, b)`` (``onednn.to_blocked``),
    #: the workspace too.
    blocked: int = 0


def out_shape(shape: tuple[int, ...], p: PoolParams) -> tuple[int, ...]:
    """The pooled shape oneDNN computes (floor division over the padded size)."""
    out = tuple((i + lo + hi - k) // s + 1 for i, k, s, lo, hi in zip(
        _spatial(shape, p.channels_last, p.blocked), p.kernel, p.strides, p.pad_lo, p.pad_hi))
    if p.blocked:
        return (shape[0], shape[1], *out, shape[-1])
    return (shape[0], *out, shape[-1]) if p.channels_last else (shape[0], shape[1], *out)


#: The extension's numbering of the pooling algorithms.
MAX, AVG_INCLUDE_PAD, AVG_EXCLUDE_PAD = 0, 1, 2


@functools.cache
def supported(shape: tuple[int, ...], p: PoolParams, algorithm: int = MAX) -> bool:
    """Whether oneDNN takes this geometry: its primitives build and, for max pooling, its workspace
    is one uint8 per output (windows of fewer than 256 elements); asked of the extension once per
    geometry."""
    lib = _library().lib
    if lib is None or (algorithm == MAX and math.prod(p.kernel) >= 256) or not 1 <= len(p.kernel) <= 3:
        return False
    arr = lambda v: (ctypes.c_int64 * len(v))(*v)  # noqa: E731
    fn = lib.JconvPoolSupported
    fn.restype = ctypes.c_int
    return bool(fn(ctypes.c_int64(algorithm), ctypes.c_int64(len(p.kernel)), arr(shape), arr(out_shape(shape, p)),
                   arr(p.kernel), arr(p.strides), arr(p.pad_lo), arr(p.pad_hi), ctypes.c_int64(int(p.channels_last)),
                   ctypes.c_int64(p.blocked)))


fwd_p = Primitive("jconv_onednn_max_pool")
fwd_p.multiple_results = True
bwd_p = Primitive("jconv_onednn_max_pool_bwd")
pick_p = Primitive("jconv_onednn_max_pool_pick")
avg_p = Primitive("jconv_onednn_avg_pool")
avg_bwd_p = Primitive("jconv_onednn_avg_pool_bwd")


def max_pool(x: jax.Array, p: PoolParams) -> jax.Array:
    """Max pooling of float32 ``x`` ``(N, C, *s)`` / ``(N, *s, C)`` on oneDNN (see :func:`supported`)."""
    return fwd_p.bind(x, p=p)[0]


def bwd(dy: jax.Array, ws: jax.Array, p: PoolParams, in_shape: tuple[int, ...]) -> jax.Array:
    return bwd_p.bind(dy, ws, p=p, in_shape=tuple(in_shape))


def pick(t: jax.Array, ws: jax.Array, p: PoolParams) -> jax.Array:
    return pick_p.bind(t, ws, p=p)


def avg_pool(x: jax.Array, p: PoolParams, include_pad: bool) -> jax.Array:
    """Average pooling of float32 ``x`` on oneDNN (see :func:`supported`)."""
    return avg_p.bind(x, p=p, include_pad=include_pad)


def avg_bwd(dy: jax.Array, p: PoolParams, include_pad: bool, in_shape: tuple[int, ...]) -> jax.Array:
    return avg_bwd_p.bind(dy, p=p, include_pad=include_pad, in_shape=tuple(in_shape))


# --- evaluation and lowering ----------------------------------------------------------------


def _attrs(p: PoolParams) -> dict[str, Any]:
    i64 = lambda v: np.array(v, np.int64)  # noqa: E731
    return dict(kernel=i64(p.kernel), strides=i64(p.strides), pad_lo=i64(p.pad_lo), pad_hi=i64(p.pad_hi),
                channels_last=np.int64(p.channels_last), blocked=np.int64(p.blocked))


def _fwd_call(p: PoolParams, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    shape = out_shape(x.shape, p)
    outs = (jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct(shape, jnp.uint8))
    return tuple(jax.ffi.ffi_call("jconv_onednn_max_pool_fwd", outs)(x, **_attrs(p)))


def _bwd_call(p: PoolParams, in_shape: tuple[int, ...], dy: jax.Array, ws: jax.Array) -> jax.Array:
    shape = (dy.shape[0], *in_shape[1:])  # the batch of this shard
    return jax.ffi.ffi_call("jconv_onednn_max_pool_bwd", jax.ShapeDtypeStruct(shape, jnp.float32))(
        dy, ws, **_attrs(p))


def _avg_call(p: PoolParams, include_pad: bool, x: jax.Array) -> jax.Array:
    return jax.ffi.ffi_call("jconv_onednn_avg_pool_fwd", jax.ShapeDtypeStruct(out_shape(x.shape, p), jnp.float32))(
        x, **_attrs(p), include_pad=np.int64(include_pad))


def _avg_bwd_call(p: PoolParams, include_pad: bool, in_shape: tuple[int, ...], dy: jax.Array) -> jax.Array:
    shape = (dy.shape[0], *in_shape[1:])
    return jax.ffi.ffi_call("jconv_onednn_avg_pool_bwd", jax.ShapeDtypeStruct(shape, jnp.float32))(
        dy, **_attrs(p), include_pad=np.int64(include_pad))


def _pick_gather(t: jax.Array, ws: jax.Array, *, p: PoolParams) -> jax.Array:
    """``t`` at each output's pick, as one gather over the flattened spatial axes (XLA)."""
    if p.blocked:  # gathered in the plain layout
        out = _pick_gather(from_blocked(t), from_blocked(ws), p=p._replace(blocked=0))
        return to_blocked(out, p.blocked)
    cl, r = p.channels_last, len(p.kernel)
    tt = jnp.moveaxis(t, -1, 1) if cl else t
    w = (jnp.moveaxis(ws, -1, 1) if cl else ws).astype(jnp.int32)
    in_sp, out_sp = tt.shape[2:], w.shape[2:]
    flat = jnp.zeros(w.shape, jnp.int32)
    rest = w
    for i in range(r):  # the window offset is row-major over the kernel
        below = math.prod(p.kernel[i + 1:])
        off, rest = rest // below, rest % below
        o = jnp.arange(out_sp[i], dtype=jnp.int32).reshape((1, 1) + tuple(out_sp[i] if j == i else 1 for j in range(r)))
        flat = flat * in_sp[i] + o * p.strides[i] + off - p.pad_lo[i]
    out = jnp.take_along_axis(tt.reshape(tt.shape[:2] + (-1,)), flat.reshape(w.shape[:2] + (-1,)), axis=2)
    out = out.reshape(w.shape)
    return jnp.moveaxis(out, 1, -1) if cl else out


def _rows(mesh: Mesh, arg_shapes: Any) -> tuple[Mesh, NamedSharding]:
    """Batch-sharded as the first operand is (everything else replicated)."""
    axes = _batch_axes(arg_shapes[0].sharding)
    if mesh.empty:
        devices = sorted(arg_shapes[0].sharding.device_set, key=lambda d: d.id)
        mesh, axes = Mesh(np.array(devices), ("devices",)), None
    return mesh, NamedSharding(mesh, P(axes))


class _Static(NamedTuple):
    """A call's static arguments."""

    p: PoolParams
    in_shape: tuple[int, ...] = ()
    include_pad: bool = False


#: Per kind of call: the call, and its operands' and results' spatial factors ("s" input, "o" output).
_CALLS: dict[str, tuple[Any, str, str]] = {
    "fwd": (lambda s, x: _fwd_call(s.p, x), "s", "oo"),
    "bwd": (lambda s, dy, ws: _bwd_call(s.p, s.in_shape, dy, ws), "oo", "s"),
    "avg": (lambda s, x: _avg_call(s.p, s.include_pad, x), "s", "o"),
    "avg_bwd": (lambda s, dy: _avg_bwd_call(s.p, s.include_pad, s.in_shape, dy), "o", "s"),
}


@functools.cache
def _partitioned(kind: str) -> Any:
    """The FFI call as a ``custom_partitioning``: each device pools its shard of the batch."""
    call, ins, outs = _CALLS[kind]

    def results(rows: NamedSharding) -> Any:
        return (rows,) * len(outs) if len(outs) > 1 else rows

    def partition(static: _Static, mesh: Any, arg_shapes: Any, result_shape: Any) -> tuple:
        mesh, rows = _rows(mesh, arg_shapes)
        return mesh, functools.partial(call, static), results(rows), (rows,) * len(arg_shapes)

    def infer(static: _Static, mesh: Any, arg_shapes: Any, result_shape: Any) -> Any:
        return results(_rows(mesh, arg_shapes)[1])

    def rule(static: _Static, mesh: Any, operand_types: Any, result_types: Any) -> tuple:
        r = len(static.p.kernel)
        sp = lambda c: " ".join(f"{c}{i}" for i in range(r))  # noqa: E731
        if static.p.blocked:
            t = lambda c: f"n ch {sp(c)} cb"  # noqa: E731
        else:
            t = lambda c: f"n {sp(c)} ch" if static.p.channels_last else f"n ch {sp(c)}"  # noqa: E731
        text = f"{', '.join(map(t, ins))} -> {', '.join(map(t, outs))}"
        factors = text.replace(",", " ").replace("->", " ").split()
        others = tuple(dict.fromkeys(f for f in factors if f != "n"))  # in order of appearance
        return text, {"need_replication_factors": others}

    f = custom_partitioning(call, static_argnums=(0,))
    f.def_partition(partition=partition, infer_sharding_from_operands=infer, sharding_rule=rule)
    return f


def _lower(kind: str, ctx: Any, *args: Any, **params: Any) -> Any:
    static = _Static(**params)
    call, _, outs = _CALLS[kind]
    if _DEVICE_REGISTRY is None or getattr(ctx.module_context.axis_context, "num_devices", None) == 1:
        fn = functools.partial(call, static)
    else:
        fn = functools.partial(_partitioned(kind), static)
    return mlir.lower_fun(fn, multiple_results=len(outs) > 1)(ctx, *args)


def _abstract_fwd(x: Any, *, p: PoolParams) -> tuple:
    shape = out_shape(x.shape, p)
    return jax.core.ShapedArray(shape, jnp.float32), jax.core.ShapedArray(shape, jnp.uint8)


if _DEVICE_REGISTRY is not None:  # the partitioned lowering needs the devices (see onednn.primitives)
    _DEVICE_REGISTRY.update((fwd_p, bwd_p, avg_p, avg_bwd_p))
fwd_p.def_impl(lambda x, *, p: jax.jit(functools.partial(fwd_p.bind, p=p))(x))
fwd_p.def_abstract_eval(_abstract_fwd)
mlir.register_lowering(fwd_p, functools.partial(_lower, "fwd"), platform="cpu")
bwd_p.def_impl(lambda dy, ws, *, p, in_shape: jax.jit(functools.partial(bwd_p.bind, p=p, in_shape=in_shape))(dy, ws))
bwd_p.def_abstract_eval(lambda dy, ws, *, p, in_shape: jax.core.ShapedArray((dy.shape[0], *in_shape[1:]), jnp.float32))
mlir.register_lowering(bwd_p, functools.partial(_lower, "bwd"), platform="cpu")
pick_p.def_impl(lambda t, ws, *, p: jax.jit(functools.partial(_pick_gather, p=p))(t, ws))
pick_p.def_abstract_eval(lambda t, ws, *, p: jax.core.ShapedArray(ws.shape, t.dtype))
mlir.register_lowering(pick_p, mlir.lower_fun(_pick_gather, multiple_results=False))
avg_p.def_impl(lambda x, *, p, include_pad: jax.jit(functools.partial(avg_p.bind, p=p, include_pad=include_pad))(x))
avg_p.def_abstract_eval(lambda x, *, p, include_pad: jax.core.ShapedArray(out_shape(x.shape, p), jnp.float32))
mlir.register_lowering(avg_p, functools.partial(_lower, "avg"), platform="cpu")
avg_bwd_p.def_impl(lambda dy, *, p, include_pad, in_shape: jax.jit(
    functools.partial(avg_bwd_p.bind, p=p, include_pad=include_pad, in_shape=in_shape))(dy))
avg_bwd_p.def_abstract_eval(
    lambda dy, *, p, include_pad, in_shape: jax.core.ShapedArray((dy.shape[0], *in_shape[1:]), jnp.float32))
mlir.register_lowering(avg_bwd_p, functools.partial(_lower, "avg_bwd"), platform="cpu")


# --- derivatives: fwd's tangent is pick; pick and bwd are linear and each other's transpose ------


def _zero(v: Any) -> ad.Zero:
    return ad.Zero(jax.typeof(v).to_tangent_aval())


def _fwd_jvp(primals: tuple, tangents: tuple, *, p: PoolParams) -> tuple:
    (x,), (t,) = primals, tangents
    y, ws = fwd_p.bind(x, p=p)
    t_y = _zero(y) if type(t) is ad.Zero else pick(t, ws, p)
    return (y, ws), (t_y, _zero(ws))


def _linear_jvp(prim: Primitive, primals: tuple, tangents: tuple, **params: Any) -> tuple:
    (a, ws), (t, _) = primals, tangents
    out = prim.bind(a, ws, **params)
    return out, _zero(out) if type(t) is ad.Zero else prim.bind(t, ws, **params)


def _pick_transpose(ct: Any, t: Any, ws: Any, *, p: PoolParams) -> list:
    shape = t.aval.shape
    return [ad.Zero(t.aval) if type(ct) is ad.Zero else bwd(ct, ws, p, shape), None]


def _bwd_transpose(ct: Any, dy: Any, ws: Any, *, p: PoolParams, in_shape: tuple) -> list:
    return [ad.Zero(dy.aval) if type(ct) is ad.Zero else pick(ct, ws, p), None]


ad.primitive_jvps[fwd_p] = _fwd_jvp
ad.primitive_jvps[pick_p] = functools.partial(_linear_jvp, pick_p)
ad.primitive_jvps[bwd_p] = functools.partial(_linear_jvp, bwd_p)
ad.primitive_transposes[pick_p] = _pick_transpose
ad.primitive_transposes[bwd_p] = _bwd_transpose
ad.deflinear2(avg_p, lambda ct, x, *, p, include_pad: [avg_bwd(ct, p, include_pad, x.aval.shape)])
ad.deflinear2(avg_bwd_p, lambda ct, dy, *, p, include_pad, in_shape: [avg_pool(ct, p, include_pad)])


# --- vmap: a mapped axis folds into the batch N ------------------------------------------------


def _fold(v: jax.Array, d: Any, size: int) -> jax.Array:
    v = batching.bdim_at_front(v, d, size)
    return v.reshape((-1,) + v.shape[2:])


def _fwd_batch(args: tuple, dims: tuple, *, p: PoolParams) -> tuple:
    (x,), (d,) = args, dims
    size = x.shape[d]
    y, ws = fwd_p.bind(_fold(x, d, size), p=p)
    return (y.reshape((size, -1) + y.shape[1:]), ws.reshape((size, -1) + ws.shape[1:])), (0, 0)


def _single_output_batch(prim: Primitive, args: tuple, dims: tuple, **params: Any) -> tuple:
    """``vmap`` of a one-result primitive: every operand's mapped axis (broadcast where unmapped) folds
    into N, and so does the batch of ``in_shape``."""
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    if "in_shape" in params:
        params["in_shape"] = (size * params["in_shape"][0], *params["in_shape"][1:])
    out = prim.bind(*(_fold(a, d, size) for a, d in zip(args, dims)), **params)
    return out.reshape((size, -1) + out.shape[1:]), 0


batching.primitive_batchers[fwd_p] = _fwd_batch
for _prim in (bwd_p, pick_p, avg_p, avg_bwd_p):
    batching.primitive_batchers[_prim] = functools.partial(_single_output_batch, _prim)
