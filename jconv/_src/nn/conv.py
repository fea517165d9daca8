"""Convolution layers."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jconv._src import checks
from jconv._src.conv import conv2d, conv_geometry
from jconv._src.nn.base import (Layer, Shape, _act, _check_fits, _check_input, _act_name, _check_activation, _compute_dtype, _hashable,
                                _input_shape, _pad_repr, _padding, _positive_int, _weight_and_bias)
from jconv._src.nn.initializers import Initializer


@dataclasses.dataclass(frozen=True, repr=False)
class Conv2D(Layer):
    """2-D convolution layer (Gluon's ``nn.Conv2D``): ``activation(conv2d(x, weight) + bias)``.

    Parameters: ``{"weight": (channels, in_channels // groups, kh, kw), "bias": (channels,)}``
    in ``param_dtype`` (float32); the computation runs in ``dtype``, by default the input's float
    dtype (bf16 activations stay bf16 with float32 parameters). ``activation``: a name (Gluon's)
    or a function.
    (no ``"bias"`` when ``use_bias=False``). ``weight_init`` defaults to Xavier uniform (d2l's
    ``init.Xavier()``); use :func:`gluon_uniform` for Gluon's own default; ``bias_init`` to zeros.

    Example:
      >>> from jconv import nn
      >>> nn.Conv2D(6, kernel_size=5, padding=2, activation="sigmoid").output_shape((1, 1, 28, 28))
      (1, 6, 28, 28)
    """

    channels: int
    kernel_size: Any
    strides: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    layout: str = "NCHW"
    activation: Any = None
    use_bias: bool = True
    in_channels: int | None = None
    weight_init: Initializer | None = None
    bias_init: Initializer | None = None
    precision: Any = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        fn = "Conv2D"
        _positive_int(fn, "channels", self.channels)
        _positive_int(fn, "groups", self.groups)
        _positive_int(fn, "in_channels", self.in_channels, allow_none=True)
        for name in ("kernel_size", "strides", "dilation"):
            object.__setattr__(self, name, checks.pair(fn, name, getattr(self, name)))
        object.__setattr__(self, "padding", _padding(fn, self.padding))
        object.__setattr__(self, "precision", _hashable(self.precision))
        checks.layout(fn, self.layout)
        _check_activation(fn, self.activation)
        checks.check_bool(fn, "use_bias", self.use_bias)
        if self.channels % self.groups:
            raise ValueError(f"{fn}: `groups` (={self.groups}) must divide `channels` (={self.channels})")

    def _in_channels(self, input_shape: Shape) -> int:
        fn = "Conv2D"
        shape = _input_shape(fn, input_shape, (3, 4))
        c = checks.channels(shape if len(shape) == 4 else (1,) + shape, self.layout)
        if self.in_channels is not None and self.in_channels != c:
            raise ValueError(
                f"{fn}: `in_channels` (={self.in_channels}) does not match the {c} channels of "
                f"input_shape {shape} ({self.layout})"
            )
        if c % self.groups:
            raise ValueError(f"{fn}: `groups` (={self.groups}) must divide the input channels (={c})")
        return c

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        c = self._in_channels(input_shape)
        self.output_shape(input_shape)
        shape = (self.channels, c // self.groups) + self.kernel_size
        return _weight_and_bias(self, key, shape, self.channels)

    def apply(self, params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        x = checks.array("Conv2D", "x", x)
        layer = dataclasses.replace(self, in_channels=params["weight"].shape[1] * self.groups)
        _check_input(layer, x, (4,), 1 if self.layout == "NCHW" else 3, layer.in_channels)
        _check_fits(layer, x)
        dtype = _compute_dtype(self, x)
        cast = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
        y = conv2d(
            cast(x), cast(params["weight"]), cast(params.get("bias")), strides=self.strides, padding=self.padding,
            dilation=self.dilation, groups=self.groups, layout=self.layout, precision=self.precision,
        )
        return _act(self.activation, y)

    def output_shape(self, input_shape: Shape) -> Shape:
        self._in_channels(input_shape)
        shape = tuple(input_shape)
        batched = shape if len(shape) == 4 else (1,) + shape
        geom = conv_geometry(
            "Conv2D", checks.spatial_dims(batched, self.layout), self.kernel_size, self.strides,
            self.padding, self.dilation,
        )
        lead = shape[:-3]
        return lead + ((self.channels,) + geom.out_hw if self.layout == "NCHW" else geom.out_hw + (self.channels,))

    def with_inferred_sizes(self, input_shape: Shape) -> "Conv2D":
        return dataclasses.replace(self, in_channels=self._in_channels(input_shape))

    def __repr__(self) -> str:
        s = f"Conv2D({self.in_channels} -> {self.channels}, kernel_size={self.kernel_size}, stride={self.strides}"
        if self.padding not in (((0, 0), (0, 0)), "valid"):
            s += f", padding={_pad_repr(self.padding)}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if not self.use_bias:
            s += ", bias=False"
        if self.activation:
            s += f", Activation({_act_name(self.activation)})"
        return s + ")"
