"""Pooling layers (1-, 2- and 3-D; Gluon's names and reprs): max, average, global, adaptive."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax

from jconv._src import checks
from jconv._src.nn.base import Layer, Rank1, Rank3, Shape, _check_fits, _input_shape, _pad_repr, _padding
from jconv._src.ops import geometry
from jconv._src.ops import pooling as ops


def _ranked(fn: str, layer: Any, input_shape: Shape) -> tuple[Shape, Shape, int]:
    """``(shape, batched shape, channels)`` of an input of ``layer``'s rank."""
    n = layer._rank
    shape = _input_shape(fn, input_shape, (n + 1, n + 2))
    batched = shape if len(shape) == n + 2 else (1,) + shape
    return shape, batched, checks.channels(batched, layer.layout)


def _with_spatial(shape: Shape, layout: str, rank: int, c: int, out: tuple[int, ...]) -> Shape:
    lead = shape[:len(shape) - rank - 1]
    return lead + (out + (c,) if checks.channels_last(layout) else (c,) + out)


@dataclasses.dataclass(frozen=True, repr=False)
class _Pool(Layer):
    pool_size: Any = 2
    strides: Any = None
    padding: Any = 0
    ceil_mode: bool = False
    layout: str = "NCHW"

    _kind: ClassVar[str] = "max"
    _rank: ClassVar[int] = 2

    def __post_init__(self) -> None:
        fn, n = type(self).__name__, self._rank
        object.__setattr__(self, "pool_size", checks.ntuple(fn, "pool_size", self.pool_size, n))
        if self.strides is not None:
            object.__setattr__(self, "strides", checks.ntuple(fn, "strides", self.strides, n))
        object.__setattr__(self, "padding", _padding(fn, self.padding, n))
        checks.layout(fn, self.layout, n)
        checks.check_bool(fn, "ceil_mode", self.ceil_mode)

    def output_shape(self, input_shape: Shape) -> Shape:
        fn = type(self).__name__
        shape, batched, c = _ranked(fn, self, input_shape)
        strides = self.pool_size if self.strides is None else self.strides
        geom = geometry.pool_geometry(fn, checks.spatial_dims(batched, self.layout), self.pool_size, strides,
                                 self.padding, self.ceil_mode)
        return _with_spatial(shape, self.layout, self._rank, c, geom.out_size)

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        _check_fits(self, x)
        fn = f"{self._kind}_pool{self._rank}d"  # the op's name in its error messages
        if self._kind == "max":
            return ops.max_pool_nd(fn, self._rank, x, self.pool_size, self.strides, self.padding, self.ceil_mode,
                                 self.layout)
        return ops.avg_pool_nd(fn, self._rank, x, self.pool_size, self.strides, self.padding, self.ceil_mode,
                             self.count_include_pad, self.layout)

    def __repr__(self) -> str:
        strides = self.pool_size if self.strides is None else self.strides
        return (
            f"{type(self).__name__}(size={self.pool_size}, stride={strides}, "
            f"padding={_pad_repr(self.padding)}, "
            f"ceil_mode={self.ceil_mode}, global_pool=False, pool_type={self._kind}, "
            f"layout={self.layout})"
        )


@dataclasses.dataclass(frozen=True, repr=False)
class _AvgPool(_Pool):
    count_include_pad: bool = True
    _kind: ClassVar[str] = "avg"

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.check_bool(type(self).__name__, "count_include_pad", self.count_include_pad)


@dataclasses.dataclass(frozen=True, repr=False)
class MaxPool2D(_Pool):
    """Max pooling layer (Gluon's ``nn.MaxPool2D``; ``strides=None`` means the window). See
    :func:`jconv.max_pool2d` for the semantics.

    Example:
      >>> from jconv import nn
      >>> nn.MaxPool2D((2, 3), padding=(1, 2), strides=(2, 3)).output_shape((1, 1, 4, 4))
      (1, 1, 3, 2)
    """


@dataclasses.dataclass(frozen=True, repr=False)
class MaxPool1D(Rank1, _Pool):
    """1-D max pooling layer (Gluon's ``nn.MaxPool1D``) over ``(N, C, W)`` (or ``"NWC"``); see
    :func:`jconv.max_pool1d`."""


@dataclasses.dataclass(frozen=True, repr=False)
class MaxPool3D(Rank3, _Pool):
    """3-D max pooling layer (Gluon's ``nn.MaxPool3D``) over ``(N, C, D, H, W)`` (or ``"NDHWC"``).

    Example:
      >>> from jconv import nn
      >>> nn.MaxPool3D(2).output_shape((1, 4, 8, 8, 8))
      (1, 4, 4, 4, 4)
    """


@dataclasses.dataclass(frozen=True, repr=False)
class AvgPool2D(_AvgPool):
    """Average pooling layer (Gluon's ``nn.AvgPool2D``). See :func:`jconv.avg_pool2d`."""


@dataclasses.dataclass(frozen=True, repr=False)
class AvgPool1D(Rank1, _AvgPool):
    """1-D average pooling layer (Gluon's ``nn.AvgPool1D``); see :func:`jconv.avg_pool1d`."""


@dataclasses.dataclass(frozen=True, repr=False)
class AvgPool3D(Rank3, _AvgPool):
    """3-D average pooling layer (Gluon's ``nn.AvgPool3D``) over ``(N, C, D, H, W)``; ``count_include_pad``
    as :func:`jconv.avg_pool2d`'s. See :func:`jconv.avg_pool3d`."""
