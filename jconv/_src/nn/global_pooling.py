"""Global pooling layers (1-, 2- and 3-D; Gluon's names and reprs): max or mean over every spatial position."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax

from jconv._src import checks
from jconv._src.nn.base import Layer, Shape, _check_fits
from jconv._src.nn.pooling import _ranked, _with_spatial
from jconv._src.ops import pooling as ops


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
        reduce = ops.jnp.max if self._kind == "max" else ops.jnp.mean
        return ops._global_pool(f"global_{self._kind}_pool{self._rank}d", self._rank, x, self.layout, reduce)

    def __repr__(self) -> str:
        ones, zeros = (1,) * self._rank, (0,) * self._rank
        return (
            f"{type(self).__name__}(size={ones}, stride={ones}, padding={zeros}, ceil_mode=True, "
            f"global_pool=True, pool_type={self._kind}, layout={self.layout})"
        )


def _global(name: str, kind: str, rank: int, layout: str) -> type:
    doc = (f"{'Max' if kind == 'max' else 'Mean'} over all spatial positions (Gluon's ``nn.{name}``): "
           f"``{layout}`` to size 1 on every spatial axis.")
    cls = dataclasses.dataclass(frozen=True, repr=False)(
        type(name, (_GlobalPool,), {"__doc__": doc, "__annotations__": {"layout": "str"}, "layout": layout,
                                    "_kind": kind, "_rank": rank, "__module__": __name__, "__qualname__": name}))
    return cls


GlobalMaxPool1D = _global("GlobalMaxPool1D", "max", 1, "NCW")


GlobalMaxPool2D = _global("GlobalMaxPool2D", "max", 2, "NCHW")


GlobalMaxPool3D = _global("GlobalMaxPool3D", "max", 3, "NCDHW")


GlobalAvgPool1D = _global("GlobalAvgPool1D", "avg", 1, "NCW")


GlobalAvgPool2D = _global("GlobalAvgPool2D", "avg", 2, "NCHW")


GlobalAvgPool3D = _global("GlobalAvgPool3D", "avg", 3, "NCDHW")
