"""Static geometry of convolutions, transposed convolutions and pooling: padding, output sizes,
windows and adaptive bins, from shapes and options alone."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from jconv._src import checks


class ConvGeometry(NamedTuple):
    """Static geometry of one convolution, derived from shapes and options alone."""

    padding: checks.Padding  # per-side padding actually applied, per spatial axis
    out_size: tuple[int, ...]  # output spatial size


def conv_geometry(
    fn: str,
    in_size: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    padding: Any,
    dilation: tuple[int, ...],
) -> ConvGeometry:
    """Normalises padding and computes the output size; raises if the kernel does not fit."""
    eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    pad = checks.padding(fn, padding, in_size, eff, strides)
    out = []
    for size, (lo, hi), e, s in zip(in_size, pad, eff, strides):
        padded = size + lo + hi
        if padded < e:
            raise ValueError(
                f"{fn}: the kernel (size {tuple(kernel)}, dilation {tuple(dilation)}: extent {eff}) "
                f"is larger than the padded input (spatial size {tuple(in_size)}, padding {pad})"
            )
        out.append((padded - e) // s + 1)
    return ConvGeometry(pad, tuple(out))


class _ConvSpec(NamedTuple):
    """Everything static about one convolution call (hashable: a ``custom_jvp`` argument)."""

    strides: tuple[int, ...]
    geometry: ConvGeometry
    dilation: tuple[int, ...]
    layout: str
    precision: Any


def check_output_padding(fn: str, output_padding: tuple[int, ...], strides: tuple[int, ...],
                         dilation: tuple[int, ...]) -> None:
    """``0 <= output_padding < max(stride, dilation)`` per axis (the op and its layers check it here)."""
    if any(op >= max(s, d) for op, s, d in zip(output_padding, strides, dilation)):
        raise ValueError(
            f"{fn}: `output_padding` must be smaller than max(stride, dilation) in each dimension, "
            f"got output_padding {output_padding} for strides {strides} and dilation {dilation}"
        )


def _transpose_geometry(fn: str, in_size: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
                        padding: Any, output_padding: tuple[int, ...], dilation: tuple[int, ...]
                        ) -> tuple[tuple[int, ...], ConvGeometry]:
    """The output size of a transposed convolution and the geometry of the convolution it is
    the adjoint of (that convolution's input is the output here)."""
    eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    check_output_padding(fn, output_padding, strides, dilation)
    if isinstance(padding, str) and padding.lower() == "same":
        if any(output_padding):
            raise ValueError(f"{fn}: `output_padding` must be 0 with padding='same', got {output_padding}")
        out = tuple(size * s for size, s in zip(in_size, strides))  # the convolution's 'same' input
        pad = checks.padding(fn, padding, out, eff, strides)
    else:
        pad = checks.padding(fn, padding, in_size, eff, strides)
        out = tuple((size - 1) * s - lo - hi + e + op
                    for size, s, (lo, hi), e, op in zip(in_size, strides, pad, eff, output_padding))
    if min(out) < 1:
        raise ValueError(
            f"{fn}: the output would be empty: input spatial size {tuple(in_size)}, kernel {tuple(kernel)}, "
            f"strides {strides}, padding {pad}, dilation {dilation} and output_padding {output_padding} give "
            f"{out}; use less padding"
        )
    full = tuple((o + lo + hi - e) // s + 1 for o, (lo, hi), e, s in zip(out, pad, eff, strides))
    return out, ConvGeometry(pad, full)


# --- pooling

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


# --- adaptive pooling: PyTorch's bins, bin i of n over size L = [floor(i L / n), ceil((i + 1) L / n)).

def adaptive_bins(size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` of the ``n`` bins of an axis of ``size`` (PyTorch's rule; they overlap
    when ``n`` does not divide ``size`` and repeat elements when ``n > size``)."""
    i = np.arange(n)
    return (i * size) // n, -((-(i + 1) * size) // n)
