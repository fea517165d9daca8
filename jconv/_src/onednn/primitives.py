"""The three JAX primitives (forward, input gradient, weight gradient): evaluation, abstract
evaluation, CPU lowering and transposes (each one's transpose is another of the three)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, mlir

try:
    from jax._src import dispatch as _dispatch
except ImportError:  # a later JAX: see _DEVICE_REGISTRY
    _dispatch = None
from jconv._src.onednn.backend import _TARGETS
from jconv._src.onednn.partition import _ffi, _partitioned
from jconv._src.onednn.shapes import _SHAPES, Params, _spatial

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
    lambda ct, x, w, *, p: _zero_or(ct, x.aval, lambda: bwd_data(ct, w, p, _spatial(x.aval.shape, p.channels_last, p.blocked))),
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
        ct, x.aval, lambda: bwd_data(dy, ct, p, _spatial(x.aval.shape, p.channels_last, p.blocked))),
    lambda ct, x, dy, *, p, kernel: _zero_or(ct, dy.aval, lambda: fwd(x, ct, p)),
)
