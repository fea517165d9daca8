"""The static geometry the oneDNN kernels take (:class:`Params`) and the shapes of their results."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Params(NamedTuple):
    """A convolution's static geometry, as the kernels take it (hashable: a primitive parameter)."""

    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    groups: int
    channels_last: bool


# --- shapes ---------------------------------------------------------------------------------


def _activation(n: int, c: int, spatial: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    return (n, *spatial, c) if channels_last else (n, c, *spatial)


def _spatial(shape: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    return tuple(shape[1:-1] if channels_last else shape[2:])


def _channels(shape: tuple[int, ...], channels_last: bool) -> int:
    return shape[-1] if channels_last else shape[1]


def _out_spatial(in_size: tuple[int, ...], kernel: tuple[int, ...], p: Params) -> tuple[int, ...]:
    return tuple((i + lo + hi - (k - 1) * d - 1) // s + 1
                 for i, k, s, d, lo, hi in zip(in_size, kernel, p.strides, p.dilation, p.pad_lo, p.pad_hi))


def _fwd_shape(x: tuple[int, ...], w: tuple[int, ...], p: Params, **_: Any) -> tuple[int, ...]:
    out = _out_spatial(_spatial(x, p.channels_last), w[2:], p)
    return _activation(x[0], w[0], out, p.channels_last)


def _bwd_data_shape(dy: tuple[int, ...], w: tuple[int, ...], p: Params, *, in_size: tuple[int, ...],
                    **_: Any) -> tuple[int, ...]:
    return _activation(dy[0], w[1] * p.groups, in_size, p.channels_last)


def _bwd_weights_shape(x: tuple[int, ...], dy: tuple[int, ...], p: Params, *, kernel: tuple[int, ...],
                       **_: Any) -> tuple[int, ...]:
    return (_channels(dy, p.channels_last), _channels(x, p.channels_last) // p.groups, *kernel)


_SHAPES: dict[str, Callable[..., tuple[int, ...]]] = {
    "fwd": _fwd_shape, "bwd_data": _bwd_data_shape, "bwd_weights": _bwd_weights_shape}
