"""Global pooling layers (1-, 2- and 3-D; Gluon's names and reprs): max or mean over every spatial position."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax

from jconv._src import checks
from jconv._src.nn.base import Layer, Rank1, Rank3, Shape, _check_fits
from jconv._src.nn.pooling import _ranked, _with_spatial
from jconv._src.ops.pooling import global_pool_nd


@dataclasses.dataclass(frozen=True, repr=False)
class _GlobalPool(Layer):
    layout: str = "NCHW"
    _kind: ClassVar[str] = "max"
    _rank: ClassVar[int] = 2

    def __post_init__(self) -> None:
        checks.layout(type(self).__name__, self.layout, self._rank)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape, _, c = _ranked(type(self).__name__, self, input_shape)
        return _with_spatial(shape, self.layout, self._rank, c, (1,) * self._rank)

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        _check_fits(self, x)
        return global_pool_nd(f"global_{self._kind}_pool{self._rank}d", self._rank, x, self.layout, self._kind)

    def __repr__(self) -> str:
        ones, zeros = (1,) * self._rank, (0,) * self._rank
        return (
            f"{type(self).__name__}(size={ones}, stride={ones}, padding={zeros}, ceil_mode=True, "
            f"global_pool=True, pool_type={self._kind}, layout={self.layout})"
        )


@dataclasses.dataclass(frozen=True, repr=False)
class _GlobalAvg(_GlobalPool):
    _kind: ClassVar[str] = "avg"


@dataclasses.dataclass(frozen=True, repr=False)
class GlobalMaxPool2D(_GlobalPool):
    """Max over all spatial positions (Gluon's ``nn.GlobalMaxPool2D``): ``(N, C, H, W) -> (N, C, 1, 1)``.

    Example:
      >>> from jconv import nn
      >>> nn.GlobalMaxPool2D().output_shape((8, 16, 7, 7))
      (8, 16, 1, 1)
    """


@dataclasses.dataclass(frozen=True, repr=False)
class GlobalMaxPool1D(Rank1, _GlobalPool):
    """Max over the positions of ``(N, C, W)`` (Gluon's ``nn.GlobalMaxPool1D``): ``(N, C, 1)``."""


@dataclasses.dataclass(frozen=True, repr=False)
class GlobalMaxPool3D(Rank3, _GlobalPool):
    """Max over the positions of ``(N, C, D, H, W)`` (Gluon's ``nn.GlobalMaxPool3D``), keeping
    three size-1 axes."""


@dataclasses.dataclass(frozen=True, repr=False)
class GlobalAvgPool2D(_GlobalAvg):
    """Mean over all spatial positions (Gluon's ``nn.GlobalAvgPool2D``; NiN's and ResNet's head):
    ``(N, C, H, W) -> (N, C, 1, 1)``, summed in at least float32."""


@dataclasses.dataclass(frozen=True, repr=False)
class GlobalAvgPool1D(Rank1, _GlobalAvg):
    """Mean over the positions of ``(N, C, W)`` (Gluon's ``nn.GlobalAvgPool1D``)."""


@dataclasses.dataclass(frozen=True, repr=False)
class GlobalAvgPool3D(Rank3, _GlobalAvg):
    """Mean over the positions of ``(N, C, D, H, W)`` (Gluon's ``nn.GlobalAvgPool3D``): ``(N, C, 1, 1, 1)``.

    Example:
      >>> from jconv import nn
      >>> nn.GlobalAvgPool3D().output_shape((2, 4, 3, 5, 5))
      (2, 4, 1, 1, 1)
    """
