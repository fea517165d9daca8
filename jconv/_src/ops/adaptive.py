"""Adaptive average and max pooling (1-, 2- and 3-D) with PyTorch's bins."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jconv._src import checks
from jconv._src.ops.geometry import adaptive_bins


def _adaptive_args(fn: str, rank: int, x: Any, output_size: Any, layout: Any) -> tuple:
    x = checks.array(fn, "x", x)
    layout = checks.layout(fn, layout, rank)
    unbatched = checks.activation_ranks(fn, x, rank=rank)
    if unbatched:
        x = x[None]
    size = checks.spatial_dims(x.shape, layout)
    if isinstance(output_size, (tuple, list)) and len(output_size) == rank:  # None keeps that axis's size
        output_size = tuple(s if o is None else o for o, s in zip(output_size, size))
    out = checks.ntuple(fn, "output_size", output_size, rank)
    if min(size) < 1:
        raise ValueError(f"{fn}: `x` has an empty spatial axis, shape {tuple(x.shape)}")
    return checks.to_float(x, checks.float_dtype(x)), unbatched, out, layout


def _adaptive_avg_axis(x: jax.Array, axis: int, n: int) -> jax.Array:
    """Bin means along ``axis`` as one contraction with a static ``(n, L)`` pooling matrix
    (its transpose spreads the gradient back, as PyTorch does)."""
    size = x.shape[axis]
    start, end = adaptive_bins(size, n)
    pos = np.arange(size)
    matrix = ((pos >= start[:, None]) & (pos < end[:, None])) / (end - start)[:, None]
    acc = jnp.promote_types(x.dtype, jnp.float32)
    y = jnp.tensordot(x.astype(acc), jnp.asarray(matrix, acc), axes=[[axis], [1]], precision="highest")
    return jnp.moveaxis(y, -1, axis).astype(x.dtype)


def _adaptive_max_axis(x: jax.Array, axis: int, n: int) -> jax.Array:
    """Bin maxima along ``axis``: each bin's elements gathered into a new axis of the largest
    bin's width (shorter bins repeat their last element), then the first maximum taken with
    ``argmax`` so that the gradient goes to one element, the first maximum (PyTorch's rule)."""
    size = x.shape[axis]
    start, end = adaptive_bins(size, n)
    width = int((end - start).max())
    index = np.minimum(start[:, None] + np.arange(width)[None, :], end[:, None] - 1)  # (n, width)
    g = jnp.take(x, jnp.asarray(index.ravel()), axis=axis)
    g = g.reshape(x.shape[:axis] + (n, width) + x.shape[axis + 1:])
    first = jnp.argmax(g, axis=axis + 1, keepdims=True)
    return jnp.take_along_axis(g, first, axis=axis + 1).squeeze(axis + 1)


def adaptive_pool_nd(fn: str, rank: int, x: Any, output_size: Any, layout: Any, kind: str) -> jax.Array:
    """Adaptive ``kind`` (``"avg"`` or ``"max"``) pooling of rank ``rank``; errors name ``fn``."""
    one_axis = _adaptive_avg_axis if kind == "avg" else _adaptive_max_axis
    x, unbatched, out, layout = _adaptive_args(fn, rank, x, output_size, layout)
    for axis, n in reversed(list(zip(checks.spatial_axes(layout), out))):  # last axis first
        x = one_axis(x, axis, n)
    return x[0] if unbatched else x


def adaptive_avg_pool2d(x: jax.Array, output_size: Any, *, layout: str = "NCHW") -> jax.Array:
    """Adaptive average pooling to a fixed output size, PyTorch's ``adaptive_avg_pool2d``.

    Bin ``i`` of ``n`` over an axis of size ``L`` covers ``[floor(i * L / n), ceil((i + 1) * L / n))``,
    so bins overlap when ``n`` does not divide ``L`` and an output larger than the input repeats
    elements. Each bin's mean is a contraction with a static pooling matrix per axis.

    Args:
      x: ``(N, C, H, W)`` (``"NCHW"``) or ``(N, H, W, C)`` (``"NHWC"``); or unbatched.
      output_size: an int or ``(oh, ow)`` (``None`` keeps that axis's size).
      layout: ``"NCHW"`` or ``"NHWC"``.

    Returns:
      ``(N, C, oh, ow)`` in the layout of ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> jc.adaptive_avg_pool2d(jnp.arange(9.0).reshape(1, 1, 3, 3), 2)[0, 0]
      Array([[2., 3.],
             [5., 6.]], dtype=float32)
    """
    return adaptive_pool_nd("adaptive_avg_pool2d", 2, x, output_size, layout, "avg")


def adaptive_max_pool2d(x: jax.Array, output_size: Any, *, layout: str = "NCHW") -> jax.Array:
    """Adaptive max pooling to a fixed output size, PyTorch's ``adaptive_max_pool2d``: the bins of
    :func:`adaptive_avg_pool2d`, the maximum of each.

    Gradient: each output's cotangent goes to its bin's first maximum (in row-major order).

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> jc.adaptive_max_pool2d(jnp.arange(16.0).reshape(1, 1, 4, 4), (1, 2))[0, 0]
      Array([[13., 15.]], dtype=float32)
    """
    return adaptive_pool_nd("adaptive_max_pool2d", 2, x, output_size, layout, "max")


def adaptive_avg_pool1d(x: jax.Array, output_size: Any, *, layout: str = "NCW") -> jax.Array:
    """1-D :func:`adaptive_avg_pool2d`: ``(N, C, W)`` (``"NCW"``) or ``(N, W, C)`` to ``output_size``."""
    return adaptive_pool_nd("adaptive_avg_pool1d", 1, x, output_size, layout, "avg")


def adaptive_avg_pool3d(x: jax.Array, output_size: Any, *, layout: str = "NCDHW") -> jax.Array:
    """3-D :func:`adaptive_avg_pool2d`: ``(N, C, D, H, W)`` (``"NCDHW"``) or ``"NDHWC"``; ``output_size``
    an int or ``(od, oh, ow)``."""
    return adaptive_pool_nd("adaptive_avg_pool3d", 3, x, output_size, layout, "avg")


def adaptive_max_pool1d(x: jax.Array, output_size: Any, *, layout: str = "NCW") -> jax.Array:
    """1-D :func:`adaptive_max_pool2d`: ``(N, C, W)`` (``"NCW"``) or ``(N, W, C)`` to ``output_size``."""
    return adaptive_pool_nd("adaptive_max_pool1d", 1, x, output_size, layout, "max")


def adaptive_max_pool3d(x: jax.Array, output_size: Any, *, layout: str = "NCDHW") -> jax.Array:
    """3-D :func:`adaptive_max_pool2d`: ``(N, C, D, H, W)`` (``"NCDHW"``) or ``"NDHWC"``; ``output_size``
    an int or ``(od, oh, ow)``."""
    return adaptive_pool_nd("adaptive_max_pool3d", 3, x, output_size, layout, "max")
