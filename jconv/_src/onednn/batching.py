"""``vmap`` of the oneDNN primitives: a mapped activation folds into ``N``; mapped weights (and
per-example gradients) fold into the groups. Always one kernel call."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.interpreters import batching

from jconv._src.onednn.primitives import _PRIMS
from jconv._src.onednn.shapes import Params, from_blocked, to_blocked

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
    if p.blocked:  # the group folding below is for plain layouts: unblock, batch, reblock
        return jax.vmap(functools.partial(_unblocked, kind, p, extra), in_axes=(da, db))(a, b), 0
    size = a.shape[da] if da is not None else b.shape[db]
    a, b = (batching.bdim_at_front(v, d, size) for v, d in ((a, da), (b, db)))
    wa, wb, wout = _WEIGHT_ARGS[kind]
    grouped = p._replace(groups=p.groups * size)
    out = prim.bind(_to_groups(a, wa, p.channels_last), _to_groups(b, wb, p.channels_last), p=grouped, **extra)
    return _from_groups(out, size, wout, p.channels_last), 0


def _unblocked(kind: str, p: Params, extra: dict, a: jax.Array, b: jax.Array) -> jax.Array:
    """A blocked call as the plain one between :func:`from_blocked` and :func:`to_blocked`."""
    wa, wb, wout = _WEIGHT_ARGS[kind]
    a, b = (v if weight else from_blocked(v) for v, weight in ((a, wa), (b, wb)))
    out = _PRIMS[kind].bind(a, b, p=p._replace(blocked=0), **extra)
    return out if wout else to_blocked(out, p.blocked)


for _kind, _prim in _PRIMS.items():
    batching.primitive_batchers[_prim] = functools.partial(_batch_rule, _kind)
