"""Max and average pooling with Gluon's defaults and PyTorch's edge rules."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jconv._src import checks


class PoolGeometry(NamedTuple):
    """Static geometry of one pooling op, derived from shapes and options alone."""

    padding: checks.Padding  # the user's per-side padding
    extra: checks.Pair  # padding added at the bottom/right so ceil_mode windows fit
    out_hw: checks.Pair


def pool_geometry(
    fn: str,
    in_hw: checks.Pair,
    pool: checks.Pair,
    strides: checks.Pair,
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
    return PoolGeometry(pad, (extra[0], extra[1]), (out[0], out[1]))


def _avg_divisor(
    size: int, k: int, s: int, lo: int, hi: int, n: int, count_include_pad: bool
) -> np.ndarray:
    """How many elements each window of one dimension averages over (a static constant)."""
    start = np.arange(n) * s - lo
    if count_include_pad:
        return np.minimum(start + k, size + hi) - start
    return np.minimum(start + k, size) - np.maximum(start, 0)


def _window(layout: str, pool: checks.Pair) -> tuple[int, int, int, int]:
    return (1, 1) + pool if layout == "NCHW" else (1,) + pool + (1,)  # type: ignore[return-value]


def _reduce_padding(layout: str, geometry: PoolGeometry) -> list[checks.Pair]:
    (pt, pb), (pl, pr) = geometry.padding
    hw = [(pt, pb + geometry.extra[0]), (pl, pr + geometry.extra[1])]
    return [(0, 0), (0, 0)] + hw if layout == "NCHW" else [(0, 0)] + hw + [(0, 0)]


def _max_pool_impl(
    x: jax.Array, pool: checks.Pair, strides: checks.Pair, geometry: PoolGeometry, layout: str
) -> jax.Array:
    """The formulation behind :func:`max_pool2d` (batched, float input, checked arguments).

    Chosen from measurements on 2 CPU cores (forward + backward, float32):

    * CPU, windows that do not overlap (stride >= pool): :func:`_max_pool_slices`. XLA:CPU
      lowers the gradient of ``reduce_window`` to ``select_and_scatter``, which runs on one
      thread: 2x2/2 on (64, 32, 56, 56) took 114 ms that way and 22 ms with slices; on
      LeNet's (256, 6, 28, 28), 10.8 ms against 2.7 ms.
    * Overlapping windows (the ResNet stem's 3x3/2): ``reduce_window``; the slice form's
      backward writes ``kh * kw`` full-size arrays and was slower (622 ms against 574 ms on
      (32, 64, 112, 112)).
    * Other backends: ``reduce_window`` (not measured here; their ``select_and_scatter`` is
      parallel).
    """
    overlapping = strides[0] < pool[0] or strides[1] < pool[1]
    if jax.default_backend() == "cpu" and not overlapping:
        return _max_pool_slices(x, pool, strides, geometry, layout)
    return _max_pool_reduce_window(x, pool, strides, geometry, layout)


def _max_pool_reduce_window(
    x: jax.Array, pool: checks.Pair, strides: checks.Pair, geometry: PoolGeometry, layout: str
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


def _spatial_axes(layout: str) -> tuple[int, int]:
    return (2, 3) if layout == "NCHW" else (1, 2)


def _window_slices(
    x: jax.Array, pool: checks.Pair, strides: checks.Pair, geometry: PoolGeometry, layout: str
) -> tuple[jax.Array, list[tuple[jax.Array, list[tuple[int, int, int]], Any]]]:
    """The input padded with ``-inf``, and for each window offset ``(a, b)`` in row-major
    order: the strided slice ``xp[..., a::sh, b::sw]`` (output-sized), the ``lax.pad``
    configuration that puts it back in place (its transpose), and a static mask of the
    output positions whose offset ``(a, b)`` is a real input element (``None``: all are)."""
    axes = _spatial_axes(layout)
    pads = _reduce_padding(layout, geometry)
    xp = lax.pad(x, np.array(-np.inf, x.dtype), [(lo, hi, 0) for lo, hi in pads])
    in_hw = checks.spatial_dims(x.shape, layout)
    out = []
    for a in range(pool[0]):
        for b in range(pool[1]):
            start, limit, step = [0] * 4, list(xp.shape), [1] * 4
            back = [(0, 0, 0)] * 4
            real = []
            for axis, off, s, n, size, (lo, _) in zip(
                axes, (a, b), strides, geometry.out_hw, in_hw, geometry.padding
            ):
                start[axis], limit[axis], step[axis] = off, off + (n - 1) * s + 1, s
                back[axis] = (off, xp.shape[axis] - limit[axis], s - 1)
                pos = np.arange(n) * s + off - lo
                real.append((pos >= 0) & (pos < size))
            mask = None
            if not (real[0].all() and real[1].all()):
                m = np.outer(real[0], real[1])
                mask = m[None, None] if layout == "NCHW" else m[None, :, :, None]
            out.append((lax.slice(xp, start, limit, step), back, mask))
    return xp, out


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _max_pool_slices(
    x: jax.Array, pool: checks.Pair, strides: checks.Pair, geometry: PoolGeometry, layout: str
) -> jax.Array:
    """Max pooling as the maximum of ``kh * kw`` strided slices (fused by XLA into one loop).

    ``lax.max`` propagates NaN. The gradient sends each output's cotangent to the first
    position in row-major window order that equals the maximum, skipping padding (the rule
    of ``select_and_scatter`` and of PyTorch's CPU kernel), or, when the maximum is NaN, to
    the window's last NaN (PyTorch's rule; ``select_and_scatter`` differs there).
    ``tests/test_fast_paths.py`` checks values and gradients against
    :func:`_max_pool_reduce_window` and PyTorch.
    """
    _, slices = _window_slices(x, pool, strides, geometry, layout)
    return functools.reduce(lax.max, [s for s, _, _ in slices])


def _max_pool_slices_fwd(x, pool, strides, geometry, layout):  # type: ignore[no-untyped-def]
    y = _max_pool_slices(x, pool, strides, geometry, layout)
    return y, (x, y)


def _first_hits(hits: list[jax.Array]) -> list[jax.Array]:
    """``hits[i] & ~(hits[0] | ... | hits[i-1])``: the first hit of each output position."""
    out, taken = [], None
    for hit in hits:
        out.append(hit if taken is None else hit & ~taken)
        taken = hit if taken is None else taken | hit
    return out


def _max_pool_slices_bwd(pool, strides, geometry, layout, res, g):  # type: ignore[no-untyped-def]
    x, y = res
    _, slices = _window_slices(x, pool, strides, geometry, layout)
    equal = [(s == y) if mask is None else (s == y) & mask for s, _, mask in slices]
    nan = [jnp.isnan(s) for s, _, _ in slices]  # padding is -inf, never NaN
    # Ties: the first maximum in window order; a NaN maximum: the last NaN (PyTorch's CPU
    # kernel keeps replacing its pick while ``val > max || isnan(val)``).
    picks = [a | b for a, b in zip(_first_hits(equal), _first_hits(nan[::-1])[::-1])]
    zero = np.array(0, g.dtype)
    gxp = functools.reduce(
        lax.add, [lax.pad(jnp.where(p, g, zero), zero, back) for p, (_, back, _) in zip(picks, slices)]
    )
    pads = _reduce_padding(layout, geometry)
    gx = lax.slice(gxp, [lo for lo, _ in pads], [lo + n for (lo, _), n in zip(pads, x.shape)])
    return (gx,)


_max_pool_slices.defvjp(_max_pool_slices_fwd, _max_pool_slices_bwd)


def _avg_pool_impl(
    x: jax.Array,
    pool: checks.Pair,
    strides: checks.Pair,
    geometry: PoolGeometry,
    layout: str,
    count_include_pad: bool,
) -> jax.Array:
    """The formulation behind :func:`avg_pool2d`: window sums over a static divisor."""
    sums = lax.reduce_window(
        x,
        np.array(0, x.dtype),
        lax.add,
        _window(layout, pool),
        _window(layout, strides),
        _reduce_padding(layout, geometry),
    )
    h, w = checks.spatial_dims(x.shape, layout)
    (pt, pb), (pl, pr) = geometry.padding
    dh = _avg_divisor(h, pool[0], strides[0], pt, pb, geometry.out_hw[0], count_include_pad)
    dw = _avg_divisor(w, pool[1], strides[1], pl, pr, geometry.out_hw[1], count_include_pad)
    divisor = np.outer(dh, dw)
    divisor = divisor[None, None] if layout == "NCHW" else divisor[None, :, :, None]
    return sums / jnp.asarray(divisor, x.dtype)


def _pool_args(
    fn: str,
    x: Any,
    pool_size: Any,
    strides: Any,
    padding: Any,
    ceil_mode: Any,
    layout: str,
) -> tuple[jax.Array, bool, checks.Pair, checks.Pair, PoolGeometry, str]:
    x = checks.array(fn, "x", x)
    layout = checks.layout(fn, layout)
    unbatched = checks.activation_ranks(fn, x)
    pool = checks.pair(fn, "pool_size", pool_size)
    strides_ = pool if strides is None else checks.pair(fn, "strides", strides)
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
    x, unbatched, pool, strides_, geometry, layout = _pool_args(
        "max_pool2d", x, pool_size, strides, padding, ceil_mode, layout
    )
    y = _max_pool_impl(x, pool, strides_, geometry, layout)
    return y[0] if unbatched else y


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
    fn = "avg_pool2d"
    count_include_pad = checks.check_bool(fn, "count_include_pad", count_include_pad)
    x, unbatched, pool, strides_, geometry, layout = _pool_args(
        fn, x, pool_size, strides, padding, ceil_mode, layout
    )
    y = _avg_pool_impl(x, pool, strides_, geometry, layout, count_include_pad)
    return y[0] if unbatched else y


max_pool2d.__doc__ = max_pool2d.__doc__.replace("{semantics}", _POOL_SEMANTICS)  # type: ignore[union-attr]
avg_pool2d.__doc__ = avg_pool2d.__doc__.replace("{semantics}", _POOL_SEMANTICS)  # type: ignore[union-attr]


def _global_pool(fn: str, x: Any, layout: str, reduce: Any) -> jax.Array:
    x = checks.array(fn, "x", x)
    layout = checks.layout(fn, layout)
    checks.activation_ranks(fn, x)
    x = checks.to_float(x, checks.float_dtype(x))
    axes = (-2, -1) if layout == "NCHW" else (-3, -2)
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
    return _global_pool("global_max_pool2d", x, layout, jnp.max)


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
    return _global_pool("global_avg_pool2d", x, layout, jnp.mean)
