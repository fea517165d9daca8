"""Max, average, global and adaptive pooling (1-, 2- and 3-D) with Gluon's defaults and
PyTorch's edge rules; one implementation for every rank."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jconv._src import checks
from jconv._src.platform import on_cpu


Sizes = tuple[int, ...]


class PoolGeometry(NamedTuple):
    """Static geometry of one pooling op, derived from shapes and options alone."""

    padding: checks.Padding  # the user's per-side padding, per spatial axis
    extra: Sizes  # padding added at the end of each axis so ceil_mode windows fit
    out_size: Sizes


def pool_geometry(
    fn: str,
    in_hw: Sizes,
    pool: Sizes,
    strides: Sizes,
    padding: Any,
    ceil_mode: bool,
) -> PoolGeometry:
    """Normalises pooling padding and computes the output size (PyTorch's ceil_mode rule)."""
    pad = checks.padding(fn, padding, in_hw, pool, strides)
    out, extra = [], []
    for size, (lo, hi), k, s in zip(in_hw, pad, pool, strides):
        if lo >= k or hi >= k:
            raise ValueError(
                f"{fn}: pooling padding must be smaller than the window in each dimension, "
                f"got padding {pad} for pool_size {tuple(pool)}"
            )
        padded = size + lo + hi
        if padded < k:
            raise ValueError(
                f"{fn}: the window (pool_size {tuple(pool)}) is larger than the padded input "
                f"(spatial size {tuple(in_hw)}, padding {pad})"
            )
        if ceil_mode:
            n = -(-(padded - k) // s) + 1
            # PyTorch's rule: the last window must start inside the input or its top/left
            # padding; one starting in the bottom/right padding is dropped.
            if (n - 1) * s >= size + lo:
                n -= 1
        else:
            n = (padded - k) // s + 1
        out.append(n)
        extra.append(max((n - 1) * s + k - padded, 0))
    return PoolGeometry(pad, tuple(extra), tuple(out))


def _avg_divisor(
    size: int, k: int, s: int, lo: int, hi: int, n: int, count_include_pad: bool
) -> np.ndarray:
    """How many elements each window of one dimension averages over (a static constant)."""
    start = np.arange(n) * s - lo
    if count_include_pad:
        return np.minimum(start + k, size + hi) - start
    return np.minimum(start + k, size) - np.maximum(start, 0)


def _window(layout: str, pool: Sizes) -> Sizes:
    return (1,) + tuple(pool) + (1,) if checks.channels_last(layout) else (1, 1) + tuple(pool)


def _reduce_padding(layout: str, geometry: PoolGeometry) -> list[checks.Pair]:
    sp = [(lo, hi + e) for (lo, hi), e in zip(geometry.padding, geometry.extra)]
    return [(0, 0)] + sp + [(0, 0)] if checks.channels_last(layout) else [(0, 0), (0, 0)] + sp


def _max_pool_impl(
    x: jax.Array, pool: Sizes, strides: Sizes, geometry: PoolGeometry, layout: str
) -> jax.Array:
    """The formulation behind max pooling of every rank (batched, float input, checked arguments).

    Chosen from measurements on 2 CPU cores (forward + backward, float32, ms):

    =========================================  =============  ==========  ==========
    case                                       reduce_window  2-D slices  1-D passes
    =========================================  =============  ==========  ==========
    2x2/2 on (64, 32, 56, 56)                  107-114        22          17-25
    3x3/2 pad 1 on (32, 64, 112, 112) (ResNet) 574-616        622         205-297
    2x2/2 on (256, 6, 28, 28) (LeNet)          10.8           2.7         2.5-3.6
    =========================================  =============  ==========  ==========

    (1-D passes: 205 ms with a ``custom_vjp``, 276-297 ms with the ``custom_jvp`` kept here,
    which also gives forward mode and higher orders.) The passes extend to every rank, one per
    spatial axis, and win there too (ms, 1-D passes / reduce_window / PyTorch): (32, 64, 1024)
    k3/2 pad 1 7.9 / 25.9 / 10.0; k2/2 2.7 / 20.1 / 8.5; (4, 16, 16, 32, 32) 2x2x2/2
    1.4 / 8.3 / 3.2; 3x3x3/2 pad 1 3.0 / 29.8 / 4.6.

    XLA:CPU lowers the gradient of ``reduce_window`` to ``select_and_scatter``, which runs on
    one thread; pooling columns then rows with strided slices (:func:`_max_pool_slices`)
    parallelises and, for overlapping windows, writes far less than one pass over all
    ``kh * kw`` offsets. Other backends keep ``reduce_window`` (not measured here; their
    ``select_and_scatter`` is parallel).
    """
    return on_cpu(lambda x: _max_pool_slices(x, pool, strides, geometry, layout),
                  lambda x: _max_pool_reduce_window(x, pool, strides, geometry, layout), x)


def _max_pool_reduce_window(
    x: jax.Array, pool: Sizes, strides: Sizes, geometry: PoolGeometry, layout: str
) -> jax.Array:
    """Max pooling as one ``reduce_window`` (the reference formulation; its gradient is
    ``select_and_scatter``, which routes ties to the first maximum in window order)."""
    return lax.reduce_window(
        x,
        np.array(-np.inf, x.dtype),
        lax.max,
        _window(layout, pool),
        _window(layout, strides),
        _reduce_padding(layout, geometry),
    )


class _Axis1D(NamedTuple):
    """One spatial axis of a pooling window: where, how wide, how padded (all static)."""

    axis: int
    k: int
    s: int
    lo: int  # top/left padding
    hi: int  # bottom/right padding, including the ceil_mode extra
    n: int  # output size


def _max_pool_slices(
    x: jax.Array, pool: Sizes, strides: Sizes, geometry: PoolGeometry, layout: str
) -> jax.Array:
    """Max pooling as one 1-D pass per spatial axis (2-D: columns, then rows) of strided-slice
    maxima.

    A window's maximum is the maximum over its rows of each row's maximum, and the 1-D
    gradient rule below composes to the 2-D one: the first maximum in row-major window
    order is, within the first row holding the maximum, its first maximum (likewise the
    last NaN). ``tests/test_fast_paths.py`` checks values and gradients against
    :func:`_max_pool_reduce_window` and PyTorch.
    """
    axes = checks.spatial_axes(layout)
    for i in reversed(range(len(axes))):
        (lo, hi), extra = geometry.padding[i], geometry.extra[i]
        x = _max_pool_1d(x, _Axis1D(axes[i], pool[i], strides[i], lo, hi + extra, geometry.out_size[i]))
    return x


def _slices_1d(x: jax.Array, a: _Axis1D, fill: float) -> list[jax.Array]:
    """``x`` padded with ``fill`` along ``a.axis``, then for each window offset ``j`` the
    output-sized strided slice ``xp[j::s]``."""
    cfg = [(0, 0, 0)] * x.ndim
    cfg[a.axis] = (a.lo, a.hi, 0)
    xp = lax.pad(x, np.array(fill, x.dtype), cfg)
    return [lax.slice_in_dim(xp, j, j + (a.n - 1) * a.s + 1, a.s, a.axis) for j in range(a.k)]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_pool_1d(x: jax.Array, a: _Axis1D) -> jax.Array:
    """Max over windows along one axis; ``lax.max`` propagates NaN."""
    return functools.reduce(lax.max, _slices_1d(x, a, -np.inf))


def _first_hits(hits: list[jax.Array]) -> list[jax.Array]:
    """``hits[i] & ~(hits[0] | ... | hits[i-1])``: the first hit of each output position."""
    out, taken = [], None
    for hit in hits:
        out.append(hit if taken is None else hit & ~taken)
        taken = hit if taken is None else taken | hit
    return out


@_max_pool_1d.defjvp
def _max_pool_1d_jvp(a: _Axis1D, primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    """Each output takes the tangent of one window position: the first equal to the maximum
    (padding never counts), or, for a NaN maximum, the window's last NaN (PyTorch's CPU
    kernel keeps replacing its pick while ``val > max || isnan(val)``; ``select_and_scatter``
    agrees on ties). Linear in the tangent, so JAX transposes it into the gradient (a
    strided scatter), and forward mode and higher orders work too."""
    (x,), (t,) = primals, tangents
    slices = _slices_1d(x, a, -np.inf)
    y = functools.reduce(lax.max, slices)
    pos = np.arange(a.n)[:, None] * a.s + np.arange(a.k)[None, :] - a.lo  # (n, k)
    real = (pos >= 0) & (pos < x.shape[a.axis])
    shape = [-1 if d == a.axis else 1 for d in range(x.ndim)]
    equal = [
        (s == y) if real[:, j].all() else (s == y) & real[:, j].reshape(shape)
        for j, s in enumerate(slices)
    ]
    nan = [jnp.isnan(s) for s in slices]  # padding is -inf, never NaN
    picks = [e | n for e, n in zip(_first_hits(equal), _first_hits(nan[::-1])[::-1])]
    zero = np.array(0, t.dtype)
    t_out = functools.reduce(
        lax.add, [jnp.where(p, ts, zero) for p, ts in zip(picks, _slices_1d(t, a, 0))]
    )
    return y, t_out


def _avg_pool_impl(
    x: jax.Array,
    pool: Sizes,
    strides: Sizes,
    geometry: PoolGeometry,
    layout: str,
    count_include_pad: bool,
) -> jax.Array:
    """The formulation behind average pooling: window sums over a static divisor (the product
    of one count per axis), summed in at least float32 (bf16 input, bf16 output)."""
    acc = jnp.promote_types(x.dtype, jnp.float32)
    sums = lax.reduce_window(
        x.astype(acc),
        np.array(0, acc),
        lax.add,
        _window(layout, pool),
        _window(layout, strides),
        _reduce_padding(layout, geometry),
    )
    counts = [
        _avg_divisor(size, k, s, lo, hi, n, count_include_pad)
        for size, k, s, (lo, hi), n in zip(checks.spatial_dims(x.shape, layout), pool, strides, geometry.padding,
                                          geometry.out_size)
    ]
    divisor = functools.reduce(np.multiply.outer, counts)
    divisor = divisor[None, ..., None] if checks.channels_last(layout) else divisor[None, None]
    return (sums / jnp.asarray(divisor, acc)).astype(x.dtype)


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


_POOL_SEMANTICS = """
    Semantics (Gluon's defaults, PyTorch's edge rules):

    * ``strides=None`` means ``strides = pool_size`` (Gluon; Flax's default is 1).
    * ``padding`` must be smaller than the window on every side (``ValueError`` otherwise), so
      every window overlaps the input; unlike PyTorch, padding above half the window is
      allowed, as Gluon allows it.
    * ``ceil_mode=True`` adds the partial last window (PyTorch's rule: output
      ``ceil((H + top + bottom - kh) / sh) + 1``), but a window that would start in the
      bottom/right padding is dropped.
"""


def _max_pool(fn: str, rank: int, x: Any, pool_size: Any, strides: Any, padding: Any, ceil_mode: Any,
              layout: Any) -> jax.Array:
    x, unbatched, pool, strides_, geometry, layout = _pool_args(
        fn, rank, x, pool_size, strides, padding, ceil_mode, layout)
    y = _max_pool_impl(x, pool, strides_, geometry, layout)
    return y[0] if unbatched else y


def _avg_pool(fn: str, rank: int, x: Any, pool_size: Any, strides: Any, padding: Any, ceil_mode: Any,
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
    {semantics}
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
    return _max_pool("max_pool2d", 2, x, pool_size, strides, padding, ceil_mode, layout)


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
      x: ``(N, C, H, W)`` (``layout="NCHW"``) or ``(N, H, W, C)``; or unbatched ``(C, H, W)``.
      pool_size: window, int or ``(kh, kw)``.
      strides: int, ``(sh, sw)`` or ``None`` (= ``pool_size``).
      padding: int, pair, per-side pairs, ``"valid"`` or ``"same"``; each side ``< pool_size``.
      ceil_mode: add the partial last window (see below).
      count_include_pad: divide by the window clipped to the padded input (``True``, Gluon's
        and PyTorch's default) or by the number of real input elements in it (``False``).
      layout: ``"NCHW"`` or ``"NHWC"``.

    Returns:
      ``(N, C, H', W')``, same layout and rank as ``x``; sizes as :func:`max_pool2d`.
    {semantics}
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
    return _avg_pool("avg_pool2d", 2, x, pool_size, strides, padding, ceil_mode, count_include_pad, layout)


max_pool2d.__doc__ = max_pool2d.__doc__.replace("{semantics}", _POOL_SEMANTICS)  # type: ignore[union-attr]
avg_pool2d.__doc__ = avg_pool2d.__doc__.replace("{semantics}", _POOL_SEMANTICS)  # type: ignore[union-attr]


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
    return _max_pool("max_pool1d", 1, x, pool_size, strides, padding, ceil_mode, layout)


def max_pool3d(x: jax.Array, pool_size: Any = 2, strides: Any = None, padding: Any = 0, *, ceil_mode: bool = False,
               layout: str = "NCDHW") -> jax.Array:
    """3-D max pooling: :func:`max_pool2d`'s semantics over ``(N, C, D, H, W)`` (``"NCDHW"``) or
    ``(N, D, H, W, C)`` (``"NDHWC"``); ties go to the first maximum in ``(d, h, w)`` order."""
    return _max_pool("max_pool3d", 3, x, pool_size, strides, padding, ceil_mode, layout)


def avg_pool1d(x: jax.Array, pool_size: Any = 2, strides: Any = None, padding: Any = 0, *, ceil_mode: bool = False,
               count_include_pad: bool = True, layout: str = "NCW") -> jax.Array:
    """1-D average pooling: :func:`avg_pool2d`'s semantics over ``(N, C, W)`` or ``(N, W, C)``."""
    return _avg_pool("avg_pool1d", 1, x, pool_size, strides, padding, ceil_mode, count_include_pad, layout)


def avg_pool3d(x: jax.Array, pool_size: Any = 2, strides: Any = None, padding: Any = 0, *, ceil_mode: bool = False,
               count_include_pad: bool = True, layout: str = "NCDHW") -> jax.Array:
    """3-D average pooling: :func:`avg_pool2d`'s semantics over ``(N, C, D, H, W)`` or
    ``(N, D, H, W, C)``."""
    return _avg_pool("avg_pool3d", 3, x, pool_size, strides, padding, ceil_mode, count_include_pad, layout)


def _global_pool(fn: str, rank: int, x: Any, layout: str, reduce: Any) -> jax.Array:
    x = checks.array(fn, "x", x)
    layout = checks.layout(fn, layout, rank)
    unbatched = checks.activation_ranks(fn, x, rank=rank)
    x = checks.to_float(x, checks.float_dtype(x))
    lead = 0 if unbatched else 1
    axes = tuple(a - 1 + lead for a in checks.spatial_axes(layout))  # spatial axes of x as given
    if reduce is jnp.mean:  # sums in at least float32
        return jnp.mean(x, axis=axes, keepdims=True, dtype=jnp.promote_types(x.dtype, jnp.float32)).astype(x.dtype)
    return reduce(x, axis=axes, keepdims=True)


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
    return _global_pool("global_max_pool2d", 2, x, layout, jnp.max)


def global_avg_pool2d(x: jax.Array, *, layout: str = "NCHW") -> jax.Array:
    """Mean over all spatial positions, keeping them as size-1 axes (as Gluon).

    Args:
      x: ``(N, C, H, W)`` / ``(N, H, W, C)`` or unbatched ``(C, H, W)`` / ``(H, W, C)``.
      layout: ``"NCHW"`` or ``"NHWC"``.

    Returns:
      ``(N, C, 1, 1)`` (``(N, 1, 1, C)`` for NHWC; unbatched in, unbatched out).

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> jc.global_avg_pool2d(jnp.arange(8.0).reshape(1, 2, 2, 2)).ravel()
      Array([1.5, 5.5], dtype=float32)
    """
    return _global_pool("global_avg_pool2d", 2, x, layout, jnp.mean)


def global_max_pool1d(x: jax.Array, *, layout: str = "NCW") -> jax.Array:
    """Max over the spatial axis: ``(N, C, W) -> (N, C, 1)`` (or ``"NWC"``; unbatched accepted)."""
    return _global_pool("global_max_pool1d", 1, x, layout, jnp.max)


def global_avg_pool1d(x: jax.Array, *, layout: str = "NCW") -> jax.Array:
    """Mean over the spatial axis: ``(N, C, W) -> (N, C, 1)`` (or ``"NWC"``; unbatched accepted)."""
    return _global_pool("global_avg_pool1d", 1, x, layout, jnp.mean)


def global_max_pool3d(x: jax.Array, *, layout: str = "NCDHW") -> jax.Array:
    """Max over the spatial axes: ``(N, C, D, H, W) -> (N, C, 1, 1, 1)`` (or ``"NDHWC"``)."""
    return _global_pool("global_max_pool3d", 3, x, layout, jnp.max)


def global_avg_pool3d(x: jax.Array, *, layout: str = "NCDHW") -> jax.Array:
    """Mean over the spatial axes: ``(N, C, D, H, W) -> (N, C, 1, 1, 1)`` (or ``"NDHWC"``)."""
    return _global_pool("global_avg_pool3d", 3, x, layout, jnp.mean)


# --- adaptive pooling: PyTorch's bins, bin i of n over size L = [floor(i L / n), ceil((i + 1) L / n)).

def adaptive_bins(size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` of the ``n`` bins of an axis of ``size`` (PyTorch's rule; they overlap
    when ``n`` does not divide ``size`` and repeat elements when ``n > size``)."""
    i = np.arange(n)
    return (i * size) // n, -((-(i + 1) * size) // n)


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


def _adaptive(fn: str, rank: int, x: Any, output_size: Any, layout: Any, one_axis: Any) -> jax.Array:
    x, unbatched, out, layout = _adaptive_args(fn, rank, x, output_size, layout)
    for axis, n in reversed(list(zip(checks.spatial_axes(layout), out))):  # last axis first
        x = one_axis(x, axis, n)
    return x[0] if unbatched else x


_ADAPTIVE_DOC = """Adaptive {kind} pooling to a fixed output size ({rank}-D), PyTorch's
    ``adaptive_{kind}_pool{rank}d``: bin ``i`` of ``n`` over an axis of size ``L`` covers
    ``[floor(i * L / n), ceil((i + 1) * L / n))``, so bins overlap when ``n`` does not divide
    ``L`` and an output larger than the input repeats elements.

    Args:
      x: ``(N, C, *spatial)`` (``"{first}"``) or channels last (``"{last}"``); or unbatched.
      output_size: an int or one per spatial axis (``None`` keeps that axis's size).
      layout: ``"{first}"`` or ``"{last}"``.

    Returns:
      ``(N, C, *output_size)`` in the layout of ``x``. {extra}
"""


def adaptive_avg_pool1d(x: jax.Array, output_size: Any, *, layout: str = "NCW") -> jax.Array:
    return _adaptive("adaptive_avg_pool1d", 1, x, output_size, layout, _adaptive_avg_axis)


def adaptive_avg_pool2d(x: jax.Array, output_size: Any, *, layout: str = "NCHW") -> jax.Array:
    return _adaptive("adaptive_avg_pool2d", 2, x, output_size, layout, _adaptive_avg_axis)


def adaptive_avg_pool3d(x: jax.Array, output_size: Any, *, layout: str = "NCDHW") -> jax.Array:
    return _adaptive("adaptive_avg_pool3d", 3, x, output_size, layout, _adaptive_avg_axis)


def adaptive_max_pool1d(x: jax.Array, output_size: Any, *, layout: str = "NCW") -> jax.Array:
    return _adaptive("adaptive_max_pool1d", 1, x, output_size, layout, _adaptive_max_axis)


def adaptive_max_pool2d(x: jax.Array, output_size: Any, *, layout: str = "NCHW") -> jax.Array:
    return _adaptive("adaptive_max_pool2d", 2, x, output_size, layout, _adaptive_max_axis)


def adaptive_max_pool3d(x: jax.Array, output_size: Any, *, layout: str = "NCDHW") -> jax.Array:
    return _adaptive("adaptive_max_pool3d", 3, x, output_size, layout, _adaptive_max_axis)


for _f, _rank in ((adaptive_avg_pool1d, 1), (adaptive_avg_pool2d, 2), (adaptive_avg_pool3d, 3),
                  (adaptive_max_pool1d, 1), (adaptive_max_pool2d, 2), (adaptive_max_pool3d, 3)):
    _kind = "avg" if "avg" in _f.__name__ else "max"
    _f.__doc__ = _ADAPTIVE_DOC.format(
        kind=_kind, rank=_rank, first=checks.LAYOUTS_BY_RANK[_rank][0], last=checks.LAYOUTS_BY_RANK[_rank][1],
        extra=("Each bin's mean is a contraction with a static pooling matrix per axis." if _kind == "avg" else
               "Gradient: each output's cotangent goes to its bin's first maximum (in row-major order)."))
del _f, _rank, _kind
