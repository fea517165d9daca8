"""Adaptive pooling layers (1-, 2- and 3-D): PyTorch's bins to a fixed output size, Gluon-style names."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import jax

from jconv._src import checks
from jconv._src.nn.base import Layer, Shape, _check_fits
from jconv._src.nn.pooling import _ranked, _with_spatial
from jconv._src.ops import adaptive


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
        one_axis: Callable = adaptive._adaptive_avg_axis if self._kind == "avg" else adaptive._adaptive_max_axis
        return adaptive._adaptive(f"adaptive_{self._kind}_pool{self._rank}d", self._rank, x, self.output_size,
                             self.layout, one_axis)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(output_size={self.output_size}, layout={self.layout})"


def _adaptive(name: str, kind: str, rank: int, layout: str) -> type:
    doc = (f"Adaptive {'average' if kind == 'avg' else 'max'} pooling to ``output_size`` (PyTorch's "
           f"``nn.{name[:-1]}d``, Gluon's name): see "
           f":func:`jconv.adaptive_{kind}_pool{rank}d`. Input ``{layout}`` by default.")
    return dataclasses.dataclass(frozen=True, repr=False)(
        type(name, (_AdaptivePool,), {"__doc__": doc, "__annotations__": {"layout": "str"}, "layout": layout,
                                      "_kind": kind, "_rank": rank, "__module__": __name__, "__qualname__": name}))


AdaptiveAvgPool1D = _adaptive("AdaptiveAvgPool1D", "avg", 1, "NCW")


AdaptiveAvgPool2D = _adaptive("AdaptiveAvgPool2D", "avg", 2, "NCHW")


AdaptiveAvgPool3D = _adaptive("AdaptiveAvgPool3D", "avg", 3, "NCDHW")


AdaptiveMaxPool1D = _adaptive("AdaptiveMaxPool1D", "max", 1, "NCW")


AdaptiveMaxPool2D = _adaptive("AdaptiveMaxPool2D", "max", 2, "NCHW")


AdaptiveMaxPool3D = _adaptive("AdaptiveMaxPool3D", "max", 3, "NCDHW")
