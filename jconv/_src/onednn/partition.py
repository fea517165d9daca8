"""The FFI call of one kernel, and its ``custom_partitioning`` over a batch-sharded mesh (each device
convolves its shard; the weight gradient is summed with ``psum``)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jconv._src.onednn.backend import _library
from jconv._src.onednn.shapes import _SHAPES, Params

# --- the per-device call, partitioned over a batch-sharded mesh --------------------------------


def _ffi(kind: str, p: Params, a: jax.Array, b: jax.Array, **extra: Any) -> jax.Array:
    if _library().lib is None:
        raise RuntimeError(f"jconv's oneDNN convolutions are unavailable: {_library().detail}")
    out = jax.ShapeDtypeStruct(_SHAPES[kind](a.shape, b.shape, p, **extra), jnp.float32)
    return jax.ffi.ffi_call(f"jconv_onednn_{kind}", out)(
        a, b, strides=np.array(p.strides, np.int64), dilation=np.array(p.dilation, np.int64),
        pad_lo=np.array(p.pad_lo, np.int64), pad_hi=np.array(p.pad_hi, np.int64), groups=np.int64(p.groups),
        channels_last=np.int64(p.channels_last), blocked=np.int64(p.blocked), direct=np.int64(p.direct))


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
    if p.blocked:
        x, y = ["n", "c", *sp("h"), "cb"], ["n", "o", *sp("p"), "ob"]
    else:
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
