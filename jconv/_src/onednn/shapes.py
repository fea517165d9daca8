"""The static geometry the oneDNN kernels take (:class:`Params`) and the shapes of their results."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Params(NamedTuple):
    """A convolution's static geometry, as the kernels take it (hashable: a primitive parameter)."""

    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    groups: int
    channels_last: bool
    #: 0: activations are XLA's plain ``(N, C, *s)`` / ``(N, *s, C)`` arrays; ``b`` (8 or 16): they are
    #: oneDNN's blocked ``(N, C // b, *s, b)`` arrays (:func:`to_blocked`), which its kernels read and
    #: write without reordering.
    blocked: int = 0
    #: With ``channels_last``: the kernels take the ``(N, *s, C)`` activations as they are, not reordered
    #: into oneDNN's blocked layout (where that would pad the channels, :func:`conv_nxc`).
    direct: bool = False


# --- shapes ---------------------------------------------------------------------------------


def _activation(n: int, c: int, spatial: tuple[int, ...], p: Params) -> tuple[int, ...]:
    if p.blocked:
        return (n, c // p.blocked, *spatial, p.blocked)
    return (n, *spatial, c) if p.channels_last else (n, c, *spatial)


def _spatial(shape: tuple[int, ...], channels_last: bool, blocked: int = 0) -> tuple[int, ...]:
    if blocked:
        return tuple(shape[2:-1])
    return tuple(shape[1:-1] if channels_last else shape[2:])


def _channels(shape: tuple[int, ...], p: Params) -> int:
    if p.blocked:
        return shape[1] * shape[-1]
    return shape[-1] if p.channels_last else shape[1]


def _out_spatial(in_size: tuple[int, ...], kernel: tuple[int, ...], p: Params) -> tuple[int, ...]:
    return tuple((i + lo + hi - (k - 1) * d - 1) // s + 1
                 for i, k, s, d, lo, hi in zip(in_size, kernel, p.strides, p.dilation, p.pad_lo, p.pad_hi))


def _fwd_shape(x: tuple[int, ...], w: tuple[int, ...], p: Params, **_: Any) -> tuple[int, ...]:
    out = _out_spatial(_spatial(x, p.channels_last, p.blocked), w[2:], p)
    return _activation(x[0], w[0], out, p)


def _bwd_data_shape(dy: tuple[int, ...], w: tuple[int, ...], p: Params, *, in_size: tuple[int, ...],
                    **_: Any) -> tuple[int, ...]:
    return _activation(dy[0], w[1] * p.groups, in_size, p)


def _bwd_weights_shape(x: tuple[int, ...], dy: tuple[int, ...], p: Params, *, kernel: tuple[int, ...],
                       **_: Any) -> tuple[int, ...]:
    return (_channels(dy, p), _channels(x, p) // p.groups, *kernel)


_SHAPES: dict[str, Callable[..., tuple[int, ...]]] = {
    "fwd": _fwd_shape, "bwd_data": _bwd_data_shape, "bwd_weights": _bwd_weights_shape}


# --- oneDNN's blocked activation layout -------------------------------------------------------


def to_blocked(x: jax.Array, b: int) -> jax.Array:
    """``(N, C, *s)`` -> ``(N, C // b, *s, b)``: channel ``c`` at ``[:, c // b, ..., c % b]``."""
    n, c, *s = x.shape
    x = x.reshape(n, c // b, b, *s)
    return jnp.moveaxis(x, 2, -1)


def from_blocked(x: jax.Array) -> jax.Array:
    """The inverse of :func:`to_blocked`."""
    n, cb, *s, b = x.shape
    return jnp.moveaxis(x, -1, 2).reshape(n, cb * b, *s)
