"""Max, average, global and adaptive pooling (1-, 2- and 3-D) with Gluon's defaults and
PyTorch's edge rules; one implementation for every rank."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jconv._src import checks
from jconv._src.ops.geometry import PoolGeometry, Sizes, pool_geometry
from jconv._src.ops.pooling_cpu import _avg_pool_impl, _max_pool_impl


def _pool_args(
    fn: str,
    rank: int,
    x: Any,
    pool_size: Any,
    strides: Any,
    padding: Any,
    ceil_mode: Any,
    layout: str,
) -> tuple[jax.Array, bool, Sizes, Sizes, PoolGeometry, str]:
    x = checks.array(fn, "x", x)
    layout = checks.layout(fn, layout, rank)
    unbatched = checks.activation_ranks(fn, x, rank=rank)
    pool = checks.ntuple(fn, "pool_size", pool_size, rank)
    strides_ = pool if strides is None else checks.ntuple(fn, "strides", strides, rank)
    ceil_mode = checks.check_bool(fn, "ceil_mode", ceil_mode)
    if unbatched:
        x = x[None]
    geometry = pool_geometry(
        fn, checks.spatial_dims(x.shape, layout), pool, strides_, padding, ceil_mode
    )
    x = checks.to_float(x, checks.float_dtype(x))
    return x, unbatched, pool, strides_, geometry, layout


def max_pool_nd(fn: str, rank: int, x: Any, pool_size: Any, strides: Any, padding: Any, ceil_mode: Any,
              layout: Any) -> jax.Array:
    x, unbatched, pool, strides_, geometry, layout = _pool_args(
        fn, rank, x, pool_size, strides, padding, ceil_mode, layout)
    y = _max_pool_impl(x, pool, strides_, geometry, layout)
    return y[0] if unbatched else y


def avg_pool_nd(fn: str, rank: int, x: Any, pool_size: Any, strides: Any, padding: Any, ceil_mode: Any,
              count_include_pad: Any, layout: Any) -> jax.Array:
    count_include_pad = checks.check_bool(fn, "count_include_pad", count_include_pad)
    x, unbatched, pool, strides_, geometry, layout = _pool_args(
        fn, rank, x, pool_size, strides, padding, ceil_mode, layout)
    y = _avg_pool_impl(x, pool, strides_, geometry, layout, count_include_pad)
    return y[0] if unbatched else y


def max_pool2d(
    x: jax.Array,
    pool_size: int | checks.Pair = 2,
    strides: int | checks.Pair | None = None,
    padding: Any = 0,
    *,
    ceil_mode: bool = False,
    layout: str = "NCHW",
) -> jax.Array:
    """2-D max pooling.

    Args:
      x: ``(N, C, H, W)`` (``layout="NCHW"``) or ``(N, H, W, C)``; or unbatched ``(C, H, W)``.
      pool_size: window, int or ``(kh, kw)``.
      strides: int, ``(sh, sw)`` or ``None`` (= ``pool_size``).
      padding: int, pair, per-side pairs, ``"valid"`` or ``"same"``; each side ``< pool_size``.
      ceil_mode: add the partial last window (see below).
      layout: ``"NCHW"`` or ``"NHWC"``.

    Returns:
      ``(N, C, H', W')`` (same layout and rank as ``x``), ``H' = (H + top + bottom - kh) // sh
      + 1`` (or the ceil_mode size). Float dtypes are kept; integers become float32.

    Semantics (Gluon's defaults, PyTorch's edge rules):

    * ``strides=None`` means ``strides = pool_size`` (Gluon; Flax's default is 1).
    * ``padding`` must be smaller than the window on every side (``ValueError`` otherwise), so
      every window overlaps the input; unlike PyTorch, padding above half the window is
      allowed, as Gluon allows it.
    * ``ceil_mode=True`` adds the partial last window (PyTorch's rule: output
      ``ceil((H + top + bottom - kh) / sh) + 1``), but a window that would start in the
      bottom/right padding is dropped.
    * Padded positions are never selected (they act as ``-inf``); NaN in a window propagates
      to its output, as in PyTorch.
    * Gradient: each output's cotangent goes to the position of its window's maximum; when
      several positions tie, to the first in row-major window order (PyTorch's CPU rule).
      When the maximum is NaN, the cotangent goes to the window's last NaN on CPU (as
      PyTorch); other backends use ``select_and_scatter``, whose NaN routing differs.

    Raises:
      ValueError, TypeError: see :func:`conv2d`; also padding not smaller than the window.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> X = jnp.arange(16.0).reshape(1, 1, 4, 4)
      >>> jc.max_pool2d(X, 3)
      Array([[[[10.]]]], dtype=float32)
      >>> jc.max_pool2d(X, 3, padding=1, strides=2)
      Array([[[[ 5.,  7.],
               [13., 15.]]]], dtype=float32)
      >>> jc.max_pool2d(X, (2, 3), padding=(1, 2), strides=(2, 3))[0, 0]
      Array([[ 0.,  3.],
             [ 8., 11.],
             [12., 15.]], dtype=float32)
    """
    return max_pool_nd("max_pool2d", 2, x, pool_size, strides, padding, ceil_mode, layout)


def avg_pool2d(
    x: jax.Array,
    pool_size: int | checks.Pair = 2,
    strides: int | checks.Pair | None = None,
    padding: Any = 0,
    *,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    layout: str = "NCHW",
) -> jax.Array:
    """2-D average pooling.

    Args:
      x, pool_size, strides, padding, ceil_mode: as :func:`max_pool2d`.
      count_include_pad: divide by the window clipped to the padded input (``True``, Gluon's
        and PyTorch's default) or by the number of real input elements in it (``False``).
      layout: ``"NCHW"`` or ``"NHWC"``.

    Returns:
      ``(N, C, H', W')``, same layout and rank as ``x``; sizes as :func:`max_pool2d`.

    Semantics: :func:`max_pool2d`'s (``strides=None``, padding smaller than the window, ceil_mode).

    * A window of the partial (ceil_mode) row/column is clipped to the padded input before
      counting, as in PyTorch.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> X = jnp.arange(16.0).reshape(1, 1, 4, 4)
      >>> jc.avg_pool2d(X, 2)[0, 0]
      Array([[ 2.5,  4.5],
             [10.5, 12.5]], dtype=float32)
    """
    return avg_pool_nd("avg_pool2d", 2, x, pool_size, strides, padding, ceil_mode, count_include_pad, layout)


def max_pool1d(x: jax.Array, pool_size: Any = 2, strides: Any = None, padding: Any = 0, *, ceil_mode: bool = False,
               layout: str = "NCW") -> jax.Array:
    """1-D max pooling: :func:`max_pool2d`'s semantics over ``(N, C, W)`` (``"NCW"``) or
    ``(N, W, C)`` (``"NWC"``); ``pool_size``, ``strides``, ``padding`` an int or a 1-tuple.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> jc.max_pool1d(jnp.array([[[1.0, 3.0, 2.0, 5.0, 4.0]]]), 2)
      Array([[[3., 5.]]], dtype=float32)
    """
    return max_pool_nd("max_pool1d", 1, x, pool_size, strides, padding, ceil_mode, layout)


def max_pool3d(x: jax.Array, pool_size: Any = 2, strides: Any = None, padding: Any = 0, *, ceil_mode: bool = False,
               layout: str = "NCDHW") -> jax.Array:
    """3-D max pooling: :func:`max_pool2d`'s semantics over ``(N, C, D, H, W)`` (``"NCDHW"``) or
    ``(N, D, H, W, C)`` (``"NDHWC"``); ties go to the first maximum in ``(d, h, w)`` order."""
    return max_pool_nd("max_pool3d", 3, x, pool_size, strides, padding, ceil_mode, layout)


def avg_pool1d(x: jax.Array, pool_size: Any = 2, strides: Any = None, padding: Any = 0, *, ceil_mode: bool = False,
               count_include_pad: bool = True, layout: str = "NCW") -> jax.Array:
    """1-D average pooling: :func:`avg_pool2d`'s semantics over ``(N, C, W)`` or ``(N, W, C)``."""
    return avg_pool_nd("avg_pool1d", 1, x, pool_size, strides, padding, ceil_mode, count_include_pad, layout)


def avg_pool3d(x: jax.Array, pool_size: Any = 2, strides: Any = None, padding: Any = 0, *, ceil_mode: bool = False,
               count_include_pad: bool = True, layout: str = "NCDHW") -> jax.Array:
    """3-D average pooling: :func:`avg_pool2d`'s semantics over ``(N, C, D, H, W)`` or
    ``(N, D, H, W, C)``."""
    return avg_pool_nd("avg_pool3d", 3, x, pool_size, strides, padding, ceil_mode, count_include_pad, layout)


def global_pool_nd(fn: str, rank: int, x: Any, layout: str, kind: str) -> jax.Array:
    """Global ``kind`` (``"max"`` or ``"avg"``) pooling of rank ``rank``; errors name ``fn``."""
    x = checks.array(fn, "x", x)
    layout = checks.layout(fn, layout, rank)
    unbatched = checks.activation_ranks(fn, x, rank=rank)
    x = checks.to_float(x, checks.float_dtype(x))
    lead = 0 if unbatched else 1
    axes = tuple(a - 1 + lead for a in checks.spatial_axes(layout))  # spatial axes of x as given
    if kind == "avg":  # sums in at least float32
        return jnp.mean(x, axis=axes, keepdims=True, dtype=jnp.promote_types(x.dtype, jnp.float32)).astype(x.dtype)
    return jnp.max(x, axis=axes, keepdims=True)


def global_max_pool2d(x: jax.Array, *, layout: str = "NCHW") -> jax.Array:
    """Max over all spatial positions, keeping them as size-1 axes (as Gluon).

    Args:
      x: ``(N, C, H, W)`` / ``(N, H, W, C)`` or unbatched ``(C, H, W)`` / ``(H, W, C)``.
      layout: ``"NCHW"`` or ``"NHWC"``.

    Returns:
      ``(N, C, 1, 1)`` (``(N, 1, 1, C)`` for NHWC; unbatched in, unbatched out).

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> jc.global_max_pool2d(jnp.arange(8.0).reshape(1, 2, 2, 2)).ravel()
      Array([3., 7.], dtype=float32)
    """
    return global_pool_nd("global_max_pool2d", 2, x, layout, "max")


def global_avg_pool2d(x: jax.Array, *, layout: str = "NCHW") -> jax.Array:
    """Mean over all spatial positions, summed in at least float32: :func:`global_max_pool2d`'s
    shapes and layouts, ``(N, C, H, W) -> (N, C, 1, 1)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> jc.global_avg_pool2d(jnp.arange(8.0).reshape(1, 2, 2, 2)).ravel()
      Array([1.5, 5.5], dtype=float32)
    """
    return global_pool_nd("global_avg_pool2d", 2, x, layout, "avg")


def global_max_pool1d(x: jax.Array, *, layout: str = "NCW") -> jax.Array:
    """Max over the spatial axis: ``(N, C, W) -> (N, C, 1)`` (or ``"NWC"``; unbatched accepted)."""
    return global_pool_nd("global_max_pool1d", 1, x, layout, "max")


def global_avg_pool1d(x: jax.Array, *, layout: str = "NCW") -> jax.Array:
    """Mean over the spatial axis: ``(N, C, W) -> (N, C, 1)`` (or ``"NWC"``; unbatched accepted)."""
    return global_pool_nd("global_avg_pool1d", 1, x, layout, "avg")


def global_max_pool3d(x: jax.Array, *, layout: str = "NCDHW") -> jax.Array:
    """Max over the spatial axes: ``(N, C, D, H, W) -> (N, C, 1, 1, 1)`` (or ``"NDHWC"``)."""
    return global_pool_nd("global_max_pool3d", 3, x, layout, "max")


def global_avg_pool3d(x: jax.Array, *, layout: str = "NCDHW") -> jax.Array:
    """Mean over the spatial axes: ``(N, C, D, H, W) -> (N, C, 1, 1, 1)`` (or ``"NDHWC"``)."""
    return global_pool_nd("global_avg_pool3d", 3, x, layout, "avg")
