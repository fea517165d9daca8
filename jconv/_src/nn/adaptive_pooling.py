"""Adaptive pooling layers (1-, 2- and 3-D): PyTorch's bins to a fixed output size, Gluon-style names."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax

from jconv._src import checks
from jconv._src.nn.base import Layer, Rank1, Rank3, Shape, _check_fits
from jconv._src.nn.pooling import _ranked, _with_spatial
from jconv._src.ops.adaptive import adaptive_pool_nd


@dataclasses.dataclass(frozen=True, repr=False)
class _AdaptivePool(Layer):
    output_size: Any = 1
    layout: str = "NCHW"
    _kind: ClassVar[str] = "avg"
    _rank: ClassVar[int] = 2

    def __post_init__(self) -> None:
        fn = type(self).__name__
        size = self.output_size
        if isinstance(size, (tuple, list)) and len(size) == self._rank:
            size = tuple(None if o is None else checks.ntuple(fn, "output_size", o, 1)[0] for o in size)
        else:
            size = checks.ntuple(fn, "output_size", size, self._rank)
        object.__setattr__(self, "output_size", size)
        checks.layout(fn, self.layout, self._rank)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape, batched, c = _ranked(type(self).__name__, self, input_shape)
        out = tuple(s if o is None else o for o, s in zip(self.output_size, checks.spatial_dims(batched, self.layout)))
        return _with_spatial(shape, self.layout, self._rank, c, out)

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        _check_fits(self, x)
        return adaptive_pool_nd(f"adaptive_{self._kind}_pool{self._rank}d", self._rank, x, self.output_size,
                                self.layout, self._kind)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(output_size={self.output_size}, layout={self.layout})"


@dataclasses.dataclass(frozen=True, repr=False)
class _AdaptiveMax(_AdaptivePool):
    _kind: ClassVar[str] = "max"


@dataclasses.dataclass(frozen=True, repr=False)
class AdaptiveAvgPool2D(_AdaptivePool):
    """Adaptive average pooling to ``output_size`` (PyTorch's ``nn.AdaptiveAvgPool2d``, Gluon's
    name), ``(N, C, H, W)`` by default; see :func:`jconv.adaptive_avg_pool2d` for the bins.

    Example:
      >>> from jconv import nn
      >>> nn.AdaptiveAvgPool2D((6, 6)).output_shape((1, 256, 13, 13))
      (1, 256, 6, 6)
    """


@dataclasses.dataclass(frozen=True, repr=False)
class AdaptiveAvgPool1D(Rank1, _AdaptivePool):
    """Adaptive average pooling of ``(N, C, W)`` (PyTorch's ``nn.AdaptiveAvgPool1d``); see
    :func:`jconv.adaptive_avg_pool1d`."""


@dataclasses.dataclass(frozen=True, repr=False)
class AdaptiveAvgPool3D(Rank3, _AdaptivePool):
    """Adaptive average pooling of ``(N, C, D, H, W)`` (PyTorch's ``nn.AdaptiveAvgPool3d``)."""


@dataclasses.dataclass(frozen=True, repr=False)
class AdaptiveMaxPool2D(_AdaptiveMax):
    """Adaptive max pooling to ``output_size`` (PyTorch's ``nn.AdaptiveMaxPool2d``), ``(N, C, H, W)``
    by default; the gradient goes to each bin's first maximum (:func:`jconv.adaptive_max_pool2d`)."""


@dataclasses.dataclass(frozen=True, repr=False)
class AdaptiveMaxPool1D(Rank1, _AdaptiveMax):
    """Adaptive max pooling of ``(N, C, W)`` (PyTorch's ``nn.AdaptiveMaxPool1d``)."""


@dataclasses.dataclass(frozen=True, repr=False)
class AdaptiveMaxPool3D(Rank3, _AdaptiveMax):
    """Adaptive max pooling of ``(N, C, D, H, W)`` (PyTorch's ``nn.AdaptiveMaxPool3d``); see
    :func:`jconv.adaptive_max_pool3d`.

    Example:
      >>> from jconv import nn
      >>> nn.AdaptiveMaxPool3D(2).output_shape((1, 3, 5, 6, 7))
      (1, 3, 2, 2, 2)
    """
