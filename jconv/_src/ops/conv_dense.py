"""A convolution on a small map as one dense layer (the CPU formulation of the ``jconv bench`` row
"conv 3x3 on 2x2 maps"): where every output position's window reaches every input position, the
convolution is ``y[n, o, q] = sum_{c, p} x[n, c, p] * W[o, c, tap(p, q)]``, one matmul of the
flattened input with the unfolded weight ``(C * P, O * Q)`` (``P`` input, ``Q`` output positions),
with no multiply spent on padding.

ResNet-18's last stages at 28x28 input (3x3 convolutions on 2x2 and 1x1 maps) and GoogLeNet's
inception branches on 2x2 and 1x1 maps are such convolutions. oneDNN's kernels there compute
over the padding (512 -> 512 on 1x1: all nine taps for the one that reads data) and pay a fixed
cost per call.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jconv._src import checks
from jconv._src.ops.geometry import _ConvSpec

#: The unfolded weight ``(O, C // groups, P, Q)`` is materialised (and its gradient); beyond this
#: many elements (16 MiB in float32) the dense form is not taken.
_MAX_UNFOLDED = 2**22


class DenseTaps(NamedTuple):
    """Where the dense form applies: the kernel window ``box`` (a ``(start, stop)`` per spatial
    axis) that holds every tap some pair uses, and ``index`` ``(P, Q)``, the tap (flat, into
    ``box``) linking input position ``p`` to output position ``q`` over the flattened maps."""

    box: tuple[tuple[int, int], ...]
    index: np.ndarray


@functools.lru_cache(maxsize=256)
def _taps(in_size: tuple[int, ...], out_size: tuple[int, ...], kernel: tuple[int, ...],
          strides: tuple[int, ...], dilation: tuple[int, ...], pad_lo: tuple[int, ...]) -> DenseTaps | None:
    """:class:`DenseTaps` of a geometry, or ``None`` where some (input, output) pair is not linked
    by any tap (the dense form would multiply zeros there)."""
    index, box = np.zeros((1, 1), dtype=np.int64), []
    for n, m, k, s, d, lo in zip(in_size, out_size, kernel, strides, dilation, pad_lo):
        off = np.arange(n)[:, None] + lo - np.arange(m)[None, :] * s  # (n, m): offset in the padded window
        if np.any(off % d) or np.any(off < 0) or np.any(off // d >= k):
            return None
        tap = off // d
        start, stop = int(tap.min()), int(tap.max()) + 1
        box.append((start, stop))
        index = (index[:, None, :, None] * (stop - start) + (tap - start)[None, :, None, :])
        index = index.reshape(index.shape[0] * n, -1)
    return DenseTaps(tuple(box), index)


def dense_taps(x_shape: tuple[int, ...], w_shape: tuple[int, ...], spec: _ConvSpec,
               groups: int) -> DenseTaps | None:
    """The taps where the dense form applies, else ``None``: every (input, output)
    position pair linked by a tap (:func:`_taps`), the kernel larger than 1x1 (1x1 kernels have
    their own formulations), and the unfolded weight within :data:`_MAX_UNFOLDED` elements."""
    kernel = tuple(w_shape[2:])
    if math.prod(kernel) == 1:
        return None
    in_size = checks.spatial_dims(x_shape, spec.layout)
    out_size = tuple(spec.geometry.out_size)
    if w_shape[0] * w_shape[1] * math.prod(in_size) * math.prod(out_size) > _MAX_UNFOLDED:
        return None
    pad_lo = tuple(lo for lo, _ in spec.geometry.padding)
    return _taps(in_size, out_size, kernel, tuple(spec.strides), tuple(spec.dilation), pad_lo)


def conv_dense(x: jax.Array, weight: jax.Array, spec: _ConvSpec, groups: int, taps: DenseTaps) -> jax.Array:
    """The convolution as one matmul with the unfolded weight (see the module docstring).

    Args:
      x: ``(N, C, *in)`` or, channels last, ``(N, *in, C)``.
      weight: ``(O, C // groups, *kernel)``.
      taps: :func:`dense_taps` of these shapes.

    Returns:
      ``(N, O, *out)`` or ``(N, *out, O)``. The unfolded weight is the kernel window that holds the
      used taps (taps outside it read no data and never enter, nor do their NaNs: on a 1x1 map all
      but the centre) times a constant one-hot ``(K, P, Q)`` selection (exact: one nonzero per
      column), so its derivatives of every order are matmuls too (a gather's transpose, a
      scatter-add, is slower on XLA:CPU).
    """
    last = checks.channels_last(spec.layout)
    n, o, cg = x.shape[0], weight.shape[0], weight.shape[1]
    window = weight[(slice(None), slice(None)) + tuple(slice(a, b) for a, b in taps.box)]
    k, (p, q) = math.prod(window.shape[2:]), taps.index.shape
    select = np.zeros((k, p, q), dtype=weight.dtype)
    select[taps.index, np.arange(p)[:, None], np.arange(q)[None, :]] = 1
    g = "g" if groups > 1 else ""  # no batch dimension of size 1 in the matmuls
    w = window.reshape((groups,) * bool(g) + (o // groups, cg, k))
    unfolded = jnp.einsum(f"{g}ock,kpq->{g}ocpq", w, select, precision=lax.Precision.HIGHEST)
    out = tuple(spec.geometry.out_size)
    if last:
        xs = x.reshape((n, p) + (groups,) * bool(g) + (cg,))
        y = jnp.einsum(f"np{g}c,{g}ocpq->nq{g}o", xs, unfolded, precision=spec.precision)
        return y.reshape(n, *out, o)
    xs = x.reshape((n,) + (groups,) * bool(g) + (cg, p))
    y = jnp.einsum(f"n{g}cp,{g}ocpq->n{g}oq", xs, unfolded, precision=spec.precision)
    return y.reshape(n, o, *out)
