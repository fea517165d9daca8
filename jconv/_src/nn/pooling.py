"""Pooling layers."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from jconv._src import checks
from jconv._src.nn.base import Layer, Shape, _check_fits, _input_shape, _pad_repr, _padding
from jconv._src.pooling import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d, pool_geometry


@dataclasses.dataclass(frozen=True, repr=False)
class _Pool2D(Layer):
    pool_size: Any = 2
    strides: Any = None
    padding: Any = 0
    ceil_mode: bool = False
    layout: str = "NCHW"

    _kind = "max"

    def __post_init__(self) -> None:
        fn = type(self).__name__
        object.__setattr__(self, "pool_size", checks.pair(fn, "pool_size", self.pool_size))
        if self.strides is not None:
            object.__setattr__(self, "strides", checks.pair(fn, "strides", self.strides))
        object.__setattr__(self, "padding", _padding(fn, self.padding))
        checks.layout(fn, self.layout)
        checks.check_bool(fn, "ceil_mode", self.ceil_mode)

    def output_shape(self, input_shape: Shape) -> Shape:
        fn = type(self).__name__
        shape = _input_shape(fn, input_shape, (3, 4))
        batched = shape if len(shape) == 4 else (1,) + shape
        strides = self.pool_size if self.strides is None else self.strides
        geom = pool_geometry(
            fn, checks.spatial_dims(batched, self.layout), self.pool_size, strides, self.padding,
            self.ceil_mode,
        )
        c = checks.channels(batched, self.layout)
        lead = shape[:-3]
        return lead + ((c,) + geom.out_hw if self.layout == "NCHW" else geom.out_hw + (c,))

    def __repr__(self) -> str:
        strides = self.pool_size if self.strides is None else self.strides
        return (
            f"{type(self).__name__}(size={self.pool_size}, stride={strides}, "
            f"padding={_pad_repr(self.padding)}, "
            f"ceil_mode={self.ceil_mode}, global_pool=False, pool_type={self._kind}, "
            f"layout={self.layout})"
        )


@dataclasses.dataclass(frozen=True, repr=False)
class MaxPool2D(_Pool2D):
    """Max pooling layer (Gluon's ``nn.MaxPool2D``; ``strides=None`` means the window). See
    :func:`jconv.max_pool2d` for the semantics.

    Example:
      >>> from jconv import nn
      >>> nn.MaxPool2D((2, 3), padding=(1, 2), strides=(2, 3)).output_shape((1, 1, 4, 4))
      (1, 1, 3, 2)
    """

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        _check_fits(self, x)
        return max_pool2d(x, self.pool_size, self.strides, self.padding, ceil_mode=self.ceil_mode, layout=self.layout)


@dataclasses.dataclass(frozen=True, repr=False)
class AvgPool2D(_Pool2D):
    """Average pooling layer (Gluon's ``nn.AvgPool2D``). See :func:`jconv.avg_pool2d`."""

    count_include_pad: bool = True
    _kind = "avg"

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.check_bool("AvgPool2D", "count_include_pad", self.count_include_pad)

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        _check_fits(self, x)
        return avg_pool2d(
            x, self.pool_size, self.strides, self.padding, ceil_mode=self.ceil_mode,
            count_include_pad=self.count_include_pad, layout=self.layout,
        )


@dataclasses.dataclass(frozen=True, repr=False)
class _GlobalPool2D(Layer):
    layout: str = "NCHW"
    _kind = "max"

    def __post_init__(self) -> None:
        checks.layout(type(self).__name__, self.layout)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = _input_shape(type(self).__name__, input_shape, (3, 4))
        return shape[:-3] + ((shape[-3], 1, 1) if self.layout == "NCHW" else (1, 1, shape[-1]))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size=(1, 1), stride=(1, 1), padding=(0, 0), ceil_mode=True, "
            f"global_pool=True, pool_type={self._kind}, layout={self.layout})"
        )


@dataclasses.dataclass(frozen=True, repr=False)
class GlobalMaxPool2D(_GlobalPool2D):
    """Max over all spatial positions: ``(N, C, H, W) -> (N, C, 1, 1)``."""

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        return global_max_pool2d(x, layout=self.layout)


@dataclasses.dataclass(frozen=True, repr=False)
class GlobalAvgPool2D(_GlobalPool2D):
    """Mean over all spatial positions: ``(N, C, H, W) -> (N, C, 1, 1)``."""

    _kind = "avg"

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        return global_avg_pool2d(x, layout=self.layout)
