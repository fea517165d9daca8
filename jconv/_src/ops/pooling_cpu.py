"""The formulations behind max and average pooling (1-D slice passes on CPU, ``reduce_window``
elsewhere), with the measurements that chose them."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jconv._src import checks, onednn
from jconv._src.onednn import pooling as onednn_pooling
from jconv._src.ops.geometry import PoolGeometry, Sizes, _avg_divisor, _reduce_padding, _window
from jconv._src.platform import on_cpu


def _max_pool_impl(
    x: jax.Array, pool: Sizes, strides: Sizes, geometry: PoolGeometry, layout: str
) -> jax.Array:
    """The formulation behind max pooling of every rank (batched, float input, checked arguments).

    On CPU, float32 runs on oneDNN where it can (:func:`_max_pool_cpu`); the XLA formulations below
    take the rest (other dtypes, ``JCONV_CPU_CONV=xla``, no extension). They were chosen from measurements on 2 CPU cores (forward + backward, float32, ms):

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
    return on_cpu(lambda x: _max_pool_cpu(x, pool, strides, geometry, layout),
                  lambda x: _max_pool_reduce_window(x, pool, strides, geometry, layout), x)


def _max_pool_cpu(x: jax.Array, pool: Sizes, strides: Sizes, geometry: PoolGeometry, layout: str) -> jax.Array:
    """oneDNN's max pooling where it takes the input (:func:`_onednn_params`), else the slice passes."""
    p = _onednn_params(x, pool, strides, geometry, layout)
    if not p:
        return _max_pool_slices(x, pool, strides, geometry, layout)
    if pb := _blocked(x, p):
        return onednn.from_blocked(onednn_pooling.max_pool(onednn.to_blocked(x, pb.blocked), pb))
    return onednn_pooling.max_pool(x, p)


def _blocked(x: jax.Array, p: onednn_pooling.PoolParams,
             algorithm: int = onednn_pooling.MAX) -> onednn_pooling.PoolParams | None:
    """``p`` on oneDNN's blocked activations, where the convolutions around the pooling run on them
    too (channels first, a multiple of :func:`onednn.activation_block`) and oneDNN takes it: the
    transposes around the call then cancel against theirs. Else None."""
    b = onednn.activation_block()
    if not b or p.channels_last or x.shape[1] % b:
        return None
    pb = p._replace(blocked=b)
    n, c, *s = x.shape
    return pb if onednn_pooling.supported((n, c // b, *s, b), pb, algorithm) else None


def _onednn_params(x: jax.Array, pool: Sizes, strides: Sizes, geometry: PoolGeometry, layout: str,
                   algorithm: int = onednn_pooling.MAX) -> onednn_pooling.PoolParams | None:
    """The oneDNN kernel's geometry, where it runs this pooling: float32 on the oneDNN backend
    (``jc.cpu_conv_backend()``), a non-empty input, windows of fewer than 256 elements, an output size that
    oneDNN's rule gives (floor over the padding, ceil mode's extra included), and a geometry that
    oneDNN's primitives take (asked once per geometry); else None.

    Max pooling forward + backward, float32, time against PyTorch on 2 cores (Intel Xeon, session 17,
    three runs of ``benchmarks/pool_slices.py``; BENCHMARKS.md has them): 3x3/2 pad 1 on (32, 64, 112, 112)
    (the ResNet stem) 0.42-0.45x (the slices 1.09-1.14x), on (128, 192, 14, 14) 0.42-0.54x, 3x3/1 on
    (128, 480, 7, 7) 0.23-0.29x, 2x2/2 on (64, 32, 56, 56) 0.49-0.69x; on LeNet's (256, 6, 28, 28)
    0.52-0.57x, though 1.13-1.52x the slices alone there (in LeNet's whole step oneDNN's is faster:
    0.87-0.95x, interleaved).
    """
    if x.dtype != jnp.float32 or x.size == 0 or onednn.cpu_conv_backend() != "onednn":
        return None
    p = onednn_pooling.PoolParams(tuple(pool), tuple(strides), tuple(lo for lo, _ in geometry.padding),
                                  tuple(hi + e for (_, hi), e in zip(geometry.padding, geometry.extra)),
                                  checks.channels_last(layout))
    if checks.spatial_dims(onednn_pooling.out_shape(x.shape, p), layout) != tuple(geometry.out_size):
        return None
    return p if onednn_pooling.supported(tuple(x.shape), p, algorithm) else None


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
    """For each window offset ``j``, the output-sized slice ``xp[j::s]`` of ``x`` padded with
    ``fill`` along ``a.axis``.

    Taken as plain slices of the padded axis reshaped to ``(m, s)`` (offset ``j = q * s + r`` is
    rows ``q:q + n`` of column ``r``) rather than strided slices: their transposes in the gradient
    are then plain pads, not interior ones. Forward + backward, time against strided slices, three
    runs on 2 cores (Intel Xeon, session 16, `benchmarks/pool_slices.py`): 2x2/2 on (64, 32, 56, 56)
    0.61-0.87x and on (256, 6, 28, 28) 0.50-0.62x; 3x3/2 pad 1 on (128, 192, 14, 14) 0.91-0.99x and on
    (32, 64, 112, 112) 0.98-1.01x (still 1.15-1.18x PyTorch); 3x3/1 pad 1 on (128, 480, 7, 7) 0.95-0.98x.
    """
    m = a.n + (a.k - 1) // a.s  # rows of the reshaped axis that the windows reach
    cfg = [(0, 0, 0)] * x.ndim
    cfg[a.axis] = (a.lo, m * a.s - a.lo - x.shape[a.axis], 0)  # a negative high pad crops
    rows = lax.pad(x, np.array(fill, x.dtype), cfg).reshape(x.shape[:a.axis] + (m, a.s) + x.shape[a.axis + 1:])
    return [lax.index_in_dim(lax.slice_in_dim(rows, j // a.s, j // a.s + a.n, axis=a.axis), j % a.s, a.axis + 1,
                             keepdims=False) for j in range(a.k)]


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


def _avg_pool_impl(x: jax.Array, pool: Sizes, strides: Sizes, geometry: PoolGeometry, layout: str,
                   count_include_pad: bool) -> jax.Array:
    """The formulation behind average pooling: oneDNN's kernel on CPU where it takes the input
    (:func:`_avg_pool_cpu`), else :func:`_avg_pool_reduce_window`."""
    return on_cpu(lambda x: _avg_pool_cpu(x, pool, strides, geometry, layout, count_include_pad),
                  lambda x: _avg_pool_reduce_window(x, pool, strides, geometry, layout, count_include_pad), x)


def _avg_pool_cpu(x: jax.Array, pool: Sizes, strides: Sizes, geometry: PoolGeometry, layout: str,
                  count_include_pad: bool) -> jax.Array:
    """oneDNN's average pooling where :func:`_onednn_params` allows it and its divisor is PyTorch's:
    counting the padding, oneDNN counts ceil mode's extra padding too, which PyTorch does not."""
    counts_extra = count_include_pad and any(geometry.extra)
    algorithm = onednn_pooling.AVG_INCLUDE_PAD if count_include_pad else onednn_pooling.AVG_EXCLUDE_PAD
    p = None if counts_extra else _onednn_params(x, pool, strides, geometry, layout, algorithm)
    if not p:
        return _avg_pool_reduce_window(x, pool, strides, geometry, layout, count_include_pad)
    if pb := _blocked(x, p, algorithm):
        return onednn.from_blocked(onednn_pooling.avg_pool(onednn.to_blocked(x, pb.blocked), pb, count_include_pad))
    return onednn_pooling.avg_pool(x, p, count_include_pad)


def _avg_pool_reduce_window(x: jax.Array, pool: Sizes, strides: Sizes, geometry: PoolGeometry, layout: str,
                            count_include_pad: bool) -> jax.Array:
    """Average pooling as window sums over a static divisor (the product of one count per axis),
    summed in at least float32 (bf16 input, bf16 output)."""
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
