"""What the model builders share: input-shape checks and the "d2l's stem if it fits" rule."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from jconv import nn
from jconv._src import checks

Shape = tuple[int, ...]


def check_args(fn: str, num_classes: Any, input_shape: Any) -> Shape:
    """Checks ``num_classes`` and a ``(C, H, W)`` ``input_shape``; returns the batched shape."""
    if not checks.is_int(num_classes):
        raise TypeError(f"{fn}: `num_classes` must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"{fn}: `num_classes` must be >= 1, got {num_classes!r}")
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or not all(checks.is_int(d) and d >= 1 for d in input_shape)):
        raise ValueError(f"{fn}: `input_shape` must be (channels, height, width), got {input_shape!r}")
    return (1,) + tuple(int(d) for d in input_shape)


def fits(net: nn.Layer, shape: Shape) -> bool:
    """Whether ``net`` accepts an input of ``shape`` (every window fits the feature maps)."""
    try:
        net.output_shape(shape)
    except ValueError:
        return False
    return True


def built_for(net: nn.Sequential, shape: Shape) -> nn.Sequential:
    """``net`` recording the example shape ``shape[1:]`` it was built for (named in input errors)."""
    return nn.Sequential(*net.layers, input_shape=shape[1:])


def first_that_fits(fn: str, shape: Shape, *builders: Callable[[], nn.Sequential]) -> nn.Sequential:
    """The first of ``builders``' networks that accepts ``shape`` (d2l's first, then smaller stems)."""
    for build in builders:
        net = build()
        if fits(net, shape):
            return built_for(net, shape)
    raise ValueError(f"{fn}: input_shape {shape[1:]} is too small for this network")


def with_weight_init(layer: nn.Layer, weight_init: Any) -> nn.Layer:
    """``layer`` with every ``Conv2D`` and ``Dense`` inside it initialised by ``weight_init``
    (unchanged when it is None: Xavier uniform, d2l's ``init_cnn``)."""
    if weight_init is None:
        return layer
    if isinstance(layer, (nn.Conv2D, nn.Dense)):
        return dataclasses.replace(layer, weight_init=weight_init)
    if isinstance(layer, nn.Sequential):
        return nn.Sequential(*(with_weight_init(c, weight_init) for c in layer.layers), input_shape=layer.input_shape)
    if isinstance(layer, nn.Concat):
        return nn.Concat(*(with_weight_init(b, weight_init) for b in layer.branches), axis=layer.axis)
    if isinstance(layer, nn.Residual):
        short = None if layer.shortcut is None else with_weight_init(layer.shortcut, weight_init)
        return dataclasses.replace(layer, body=with_weight_init(layer.body, weight_init), shortcut=short)
    return layer
