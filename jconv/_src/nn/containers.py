"""Containers: layers made of layers."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax

from jconv._src.nn.base import Layer, Shape


@dataclasses.dataclass(frozen=True, repr=False, init=False)
class Sequential(Layer):
    """Layers applied in order. Parameters: a tuple of the children's, in order.

    Example:
      >>> import jax
      >>> from jconv import nn
      >>> net = nn.Sequential(nn.Conv2D(2, 3), nn.MaxPool2D(), nn.Dense(4))
      >>> params = net.init(jax.random.key(0), (1, 1, 8, 8))
      >>> net.apply(params, jax.numpy.ones((1, 1, 8, 8))).shape
      (1, 4)
    """

    layers: tuple[Layer, ...]

    def __init__(self, *layers: Layer) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: argument {i} must be a layer, got {layer!r}")
        object.__setattr__(self, "layers", tuple(layers))

    def init(self, key: jax.Array, input_shape: Shape) -> tuple[Any, ...]:
        params = []
        shape = tuple(input_shape)
        for layer, k in zip(self.layers, jax.random.split(key, max(len(self.layers), 1))):
            params.append(layer.init(k, shape))
            shape = layer.output_shape(shape)
        return tuple(params)

    def apply(self, params: Sequence[Any], x: jax.Array) -> jax.Array:
        if len(params) != len(self.layers):
            raise ValueError(
                f"Sequential: `params` has {len(params)} entries for {len(self.layers)} layers"
            )
        for layer, p in zip(self.layers, params):
            x = layer.apply(p, x)
        return x

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def bind(self, input_shape: Shape) -> "Sequential":
        bound, shape = [], tuple(input_shape)
        for layer in self.layers:
            bound.append(layer.bind(shape))
            shape = layer.output_shape(shape)
        return Sequential(*bound)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): " + repr(l).replace("\n", "\n  ") for i, l in enumerate(self.layers))
        return f"Sequential({inner}\n)"
