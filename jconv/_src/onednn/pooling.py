"""Max pooling on oneDNN (``csrc/onednn_pool.cc``): three JAX primitives, their derivatives, ``vmap``
rules and a batch partitioning.

* ``fwd(x) -> (y, ws)``: the pooled maxima and, per output, the window offset of its pick (uint8,
  ``y``'s shape). PyTorch's semantics: the first maximum; NaN propagates (the window's last NaN).
* ``bwd(dy, ws) -> dx``: each ``dy`` added to its pick (the input gradient), linear in ``dy``.
* ``pick(t, ws) -> t[pick]``: the tangent of ``fwd``'s ``y``, linear in ``t``; ``bwd`` is its
  transpose and ``pick`` is ``bwd``'s, so ``grad``, ``jvp`` and higher orders compose. ``pick`` runs
  as an XLA gather (forward mode only: ``grad`` transposes it into ``bwd``).
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
from jconv._src.onednn.shapes import _spatial


class PoolParams(NamedTuple):
    """A max pooling's static geometry, as the kernels take it (hashable: a primitive parameter).
    ``pad_hi`` includes ceil mode's extra padding."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    channels_last: bool


def out_shape(shape: tuple[int, ...], p: PoolParams) -> tuple[int, ...]:
    """The pooled shape oneDNN computes (floor division over the padded size)."""
    out = tuple((i + lo + hi - k) // s + 1
                for i, k, s, lo, hi in zip(_spatial(shape, p.channels_last), p.kernel, p.strides, p.pad_lo, p.pad_hi))
    return (shape[0], *out, shape[-1]) if p.channels_last else (shape[0], shape[1], *out)


@functools.cache
def supported(shape: tuple[int, ...], p: PoolParams) -> bool:
    """Whether oneDNN takes this geometry: its primitives build and its workspace is one uint8 per
    output (windows of fewer than 256 elements); asked of the extension once per geometry."""
    lib = _library().lib
    if lib is None or math.prod(p.kernel) >= 256 or not 1 <= len(p.kernel) <= 3:
        return False
    arr = lambda v: (ctypes.c_int64 * len(v))(*v)  # noqa: E731
    fn = lib.JconvMaxPoolSupported
    fn.restype = ctypes.c_int
    return bool(fn(ctypes.c_int64(len(p.kernel)), arr(shape), arr(out_shape(shape, p)), arr(p.kernel),
                   arr(p.strides), arr(p.pad_lo), arr(p.pad_hi), ctypes.c_int64(int(p.channels_last))))


fwd_p = Primitive("jconv_onednn_max_pool")
fwd_p.multiple_results = True
bwd_p = Primitive("jconv_onednn_max_pool_bwd")
pick_p = Primitive("jconv_onednn_max_pool_pick")


def max_pool(x: jax.Array, p: PoolParams) -> jax.Array:
    """Max pooling of float32 ``x`` ``(N, C, *s)`` / ``(N, *s, C)`` on oneDNN (see :func:`supported`)."""
    return fwd_p.bind(x, p=p)[0]


def bwd(dy: jax.Array, ws: jax.Array, p: PoolParams, in_shape: tuple[int, ...]) -> jax.Array:
    return bwd_p.bind(dy, ws, p=p, in_shape=tuple(in_shape))


def pick(t: jax.Array, ws: jax.Array, p: PoolParams) -> jax.Array:
    return pick_p.bind(t, ws, p=p)


# --- evaluation and lowering ----------------------------------------------------------------


def _attrs(p: PoolParams) -> dict[str, Any]:
    i64 = lambda v: np.array(v, np.int64)  # noqa: E731
    return dict(kernel=i64(p.kernel), strides=i64(p.strides), pad_lo=i64(p.pad_lo), pad_hi=i64(p.pad_hi),
                channels_last=np.int64(p.channels_last))


def _fwd_call(p: PoolParams, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    shape = out_shape(x.shape, p)
    outs = (jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct(shape, jnp.uint8))
    return tuple(jax.ffi.ffi_call("jconv_onednn_max_pool_fwd", outs)(x, **_attrs(p)))


def _bwd_call(p: PoolParams, in_shape: tuple[int, ...], dy: jax.Array, ws: jax.Array) -> jax.Array:
    shape = (dy.shape[0], *in_shape[1:])  # the batch of this shard
    return jax.ffi.ffi_call("jconv_onednn_max_pool_bwd", jax.ShapeDtypeStruct(shape, jnp.float32))(
        dy, ws, **_attrs(p))


def _pick_gather(t: jax.Array, ws: jax.Array, *, p: PoolParams) -> jax.Array:
    """``t`` at each output's pick, as one gather over the flattened spatial axes (XLA)."""
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


@functools.cache
def _partitioned(kind: str) -> Any:
    """The FFI call as a ``custom_partitioning``: each device pools its shard of the batch."""
    def call(p: PoolParams, in_shape: tuple, *args: jax.Array) -> Any:
        return _fwd_call(p, *args) if kind == "fwd" else _bwd_call(p, in_shape, *args)

    def partition(p: PoolParams, in_shape: tuple, mesh: Any, arg_shapes: Any, result_shape: Any) -> tuple:
        mesh, rows = _rows(mesh, arg_shapes)
        result = (rows, rows) if kind == "fwd" else rows
        return mesh, functools.partial(call, p, in_shape), result, (rows,) * len(arg_shapes)

    def infer(p: PoolParams, in_shape: tuple, mesh: Any, arg_shapes: Any, result_shape: Any) -> Any:
        rows = _rows(mesh, arg_shapes)[1]
        return (rows, rows) if kind == "fwd" else rows

    def rule(p: PoolParams, in_shape: tuple, mesh: Any, operand_types: Any, result_types: Any) -> tuple:
        r = len(p.kernel)
        sp_in, sp_out = (" ".join(f"{c}{i}" for i in range(r)) for c in "so")
        t = lambda sp: f"n {sp} c" if p.channels_last else f"n c {sp}"  # noqa: E731
        text = (f"{t(sp_in)} -> {t(sp_out)}, {t(sp_out)}" if kind == "fwd"
                else f"{t(sp_out)}, {t(sp_out)} -> {t(sp_in)}")  # (dy, ws) -> dx
        factors = text.replace(",", " ").replace("->", " ").split()
        others = tuple(dict.fromkeys(f for f in factors if f != "n"))  # in order of appearance
        return text, {"need_replication_factors": others}

    f = custom_partitioning(call, static_argnums=(0, 1))
    f.def_partition(partition=partition, infer_sharding_from_operands=infer, sharding_rule=rule)
    return f


def _lower(kind: str, ctx: Any, *args: Any, p: PoolParams, in_shape: tuple = ()) -> Any:
    if _DEVICE_REGISTRY is None or getattr(ctx.module_context.axis_context, "num_devices", None) == 1:
        fn = (lambda *a: _fwd_call(p, *a)) if kind == "fwd" else (lambda *a: _bwd_call(p, in_shape, *a))
    else:
        fn = lambda *a: _partitioned(kind)(p, in_shape, *a)  # noqa: E731
    return mlir.lower_fun(fn, multiple_results=kind == "fwd")(ctx, *args)


def _abstract_fwd(x: Any, *, p: PoolParams) -> tuple:
    shape = out_shape(x.shape, p)
    return jax.core.ShapedArray(shape, jnp.float32), jax.core.ShapedArray(shape, jnp.uint8)


if _DEVICE_REGISTRY is not None:  # the partitioned lowering needs the devices (see onednn.primitives)
    _DEVICE_REGISTRY.update((fwd_p, bwd_p))
fwd_p.def_impl(lambda x, *, p: jax.jit(functools.partial(fwd_p.bind, p=p))(x))
fwd_p.def_abstract_eval(_abstract_fwd)
mlir.register_lowering(fwd_p, functools.partial(_lower, "fwd"), platform="cpu")
bwd_p.def_impl(lambda dy, ws, *, p, in_shape: jax.jit(functools.partial(bwd_p.bind, p=p, in_shape=in_shape))(dy, ws))
bwd_p.def_abstract_eval(lambda dy, ws, *, p, in_shape: jax.core.ShapedArray((dy.shape[0], *in_shape[1:]), jnp.float32))
mlir.register_lowering(bwd_p, functools.partial(_lower, "bwd"), platform="cpu")
pick_p.def_impl(lambda t, ws, *, p: jax.jit(functools.partial(_pick_gather, p=p))(t, ws))
pick_p.def_abstract_eval(lambda t, ws, *, p: jax.core.ShapedArray(ws.shape, t.dtype))
mlir.register_lowering(pick_p, mlir.lower_fun(_pick_gather, multiple_results=False))


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


# --- vmap: a mapped axis folds into the batch N ------------------------------------------------


def _fold(v: jax.Array, d: Any, size: int) -> jax.Array:
    v = batching.bdim_at_front(v, d, size)
    return v.reshape((-1,) + v.shape[2:])


def _fwd_batch(args: tuple, dims: tuple, *, p: PoolParams) -> tuple:
    (x,), (d,) = args, dims
    size = x.shape[d]
    y, ws = fwd_p.bind(_fold(x, d, size), p=p)
    return (y.reshape((size, -1) + y.shape[1:]), ws.reshape((size, -1) + ws.shape[1:])), (0, 0)


def _pair_batch(prim: Primitive, args: tuple, dims: tuple, **params: Any) -> tuple:
    (a, ws), (da, dw) = args, dims
    size = a.shape[da] if da is not None else ws.shape[dw]
    if "in_shape" in params:
        params["in_shape"] = (size * params["in_shape"][0], *params["in_shape"][1:])
    out = prim.bind(_fold(a, da, size), _fold(ws, dw, size), **params)
    return out.reshape((size, -1) + out.shape[1:]), 0


batching.primitive_batchers[fwd_p] = _fwd_batch
batching.primitive_batchers[pick_p] = functools.partial(_pair_batch, pick_p)
batching.primitive_batchers[bwd_p] = functools.partial(_pair_batch, bwd_p)
