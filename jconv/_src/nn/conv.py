"""Convolution layers: ``Conv1D`` / ``Conv2D`` / ``Conv3D`` and their transposes (Gluon's names),
one implementation parameterised by the spatial rank."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jconv._src import checks
from jconv._src.nn.base import (Layer, Rank1, Rank3, Shape, _act, _act_name, _check_activation, _check_fits,
                                _check_input, _compute_dtype, _hashable, _input_shape, _pad_repr, _padding,
                                _positive_int, _weight_and_bias)
from jconv._src.nn.initializers import Initializer
from jconv._src.ops.conv import conv, conv_transpose
from jconv._src.ops.geometry import _transpose_geometry, check_output_padding, conv_geometry


@dataclasses.dataclass(frozen=True, repr=False)
class _Conv(Layer):
    """The convolution layer of rank ``_rank`` (``_transposed``: its adjoint)."""

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

    _rank: ClassVar[int] = 2
    _transposed: ClassVar[bool] = False

    @property
    def _name(self) -> str:
        return type(self).__name__

    def __post_init__(self) -> None:
        fn, n = self._name, self._rank
        _positive_int(fn, "channels", self.channels)
        _positive_int(fn, "groups", self.groups)
        _positive_int(fn, "in_channels", self.in_channels, allow_none=True)
        for name in ("kernel_size", "strides", "dilation"):
            object.__setattr__(self, name, checks.ntuple(fn, name, getattr(self, name), n))
        object.__setattr__(self, "padding", _padding(fn, self.padding, n))
        object.__setattr__(self, "precision", _hashable(self.precision))
        checks.layout(fn, self.layout, n)
        _check_activation(fn, self.activation)
        checks.check_bool(fn, "use_bias", self.use_bias)
        if self.channels % self.groups:
            raise ValueError(f"{fn}: `groups` (={self.groups}) must divide `channels` (={self.channels})")

    def _in_channels(self, input_shape: Shape) -> int:
        fn, n = self._name, self._rank
        shape = _input_shape(fn, input_shape, (n + 1, n + 2))
        c = checks.channels(shape if len(shape) == n + 2 else (1,) + shape, self.layout)
        if self.in_channels is not None and self.in_channels != c:
            raise ValueError(
                f"{fn}: `in_channels` (={self.in_channels}) does not match the {c} channels of "
                f"input_shape {shape} ({self.layout})"
            )
        if c % self.groups:
            raise ValueError(f"{fn}: `groups` (={self.groups}) must divide the input channels (={c})")
        return c

    def _weight_shape(self, c: int) -> Shape:
        if self._transposed:  # (C_in, O // groups, *k), as PyTorch and Gluon store it
            return (c, self.channels // self.groups) + self.kernel_size
        return (self.channels, c // self.groups) + self.kernel_size

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        c = self._in_channels(input_shape)
        self.output_shape(input_shape)
        return _weight_and_bias(self, key, self._weight_shape(c), self.channels)

    def _options(self) -> dict[str, Any]:
        return dict(strides=self.strides, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    layout=self.layout, precision=self.precision)

    def apply(self, params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        x = checks.array(self._name, "x", x)
        w = params["weight"]
        layer = dataclasses.replace(self, in_channels=w.shape[0] if self._transposed else w.shape[1] * self.groups)
        channel_axis = -1 if checks.channels_last(self.layout) else 1
        _check_input(layer, x, (self._rank + 2,), channel_axis, layer.in_channels)
        _check_fits(layer, x)
        dtype = _compute_dtype(self, x)
        cast = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
        if self._transposed:
            y = conv_transpose(cast(x), cast(w), cast(params.get("bias")), output_padding=self.output_padding,
                               **self._options())
        else:
            y = conv(cast(x), cast(w), cast(params.get("bias")), **self._options())
        return _act(self.activation, y)

    def _out_size(self, size: tuple[int, ...]) -> tuple[int, ...]:
        if self._transposed:
            return _transpose_geometry(self._name, size, self.kernel_size, self.strides, self.padding,
                                       self.output_padding, self.dilation)[0]
        return conv_geometry(self._name, size, self.kernel_size, self.strides, self.padding, self.dilation).out_size

    def output_shape(self, input_shape: Shape) -> Shape:
        self._in_channels(input_shape)
        shape = tuple(input_shape)
        batched = shape if len(shape) == self._rank + 2 else (1,) + shape
        out = self._out_size(checks.spatial_dims(batched, self.layout))
        lead = shape[:len(shape) - self._rank - 1]
        return lead + (out + (self.channels,) if checks.channels_last(self.layout) else (self.channels,) + out)

    def with_inferred_sizes(self, input_shape: Shape) -> "_Conv":
        return dataclasses.replace(self, in_channels=self._in_channels(input_shape))

    def __repr__(self) -> str:
        s = f"{self._name}({self.in_channels} -> {self.channels}, kernel_size={self.kernel_size}, stride={self.strides}"
        if self.padding not in (((0, 0),) * self._rank, "valid"):
            s += f", padding={_pad_repr(self.padding)}"
        if self._transposed and any(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1,) * self._rank:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if not self.use_bias:
            s += ", bias=False"
        if self.activation:
            s += f", Activation({_act_name(self.activation)})"
        return s + ")"


@dataclasses.dataclass(frozen=True, repr=False)
class Conv2D(_Conv):
    """2-D convolution layer (Gluon's ``nn.Conv2D``): ``activation(conv2d(x, weight) + bias)``.

    Parameters: ``{"weight": (channels, in_channels // groups, kh, kw), "bias": (channels,)}`` (no
    ``"bias"`` with ``use_bias=False``) in ``param_dtype`` (float32); the computation runs in
    ``dtype``, by default the input's float dtype. ``activation``: a Gluon name or a function.
    ``weight_init`` defaults to Xavier uniform (d2l's ``init.Xavier()``), ``bias_init`` to zeros.
    Input NCHW (default) or NHWC; see :func:`jconv.conv2d` for the semantics.

    Example:
      >>> from jconv import nn
      >>> nn.Conv2D(6, kernel_size=5, padding=2, activation="sigmoid").output_shape((1, 1, 28, 28))
      (1, 6, 28, 28)
    """


@dataclasses.dataclass(frozen=True, repr=False)
class Conv1D(Rank1, _Conv):
    """1-D convolution layer (Gluon's ``nn.Conv1D``): :class:`Conv2D` over ``(N, C, W)`` (or NWC), weight
    ``(channels, in_channels // groups, kw)``; see :func:`jconv.conv1d`.

    Example:
      >>> from jconv import nn
      >>> nn.Conv1D(8, kernel_size=5, padding=2).output_shape((4, 3, 100))
      (4, 8, 100)
    """


@dataclasses.dataclass(frozen=True, repr=False)
class Conv3D(Rank3, _Conv):
    """3-D convolution layer (Gluon's ``nn.Conv3D``): :class:`Conv2D` over ``(N, C, D, H, W)`` (or NDHWC),
    weight ``(channels, in_channels // groups, kd, kh, kw)``; see :func:`jconv.conv3d`."""


@dataclasses.dataclass(frozen=True, repr=False)
class _ConvTranspose(_Conv):
    output_padding: Any = 0
    _transposed: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        op = checks.ntuple(self._name, "output_padding", self.output_padding, self._rank, minimum=0)
        object.__setattr__(self, "output_padding", op)
        check_output_padding(self._name, op, self.strides, self.dilation)


@dataclasses.dataclass(frozen=True, repr=False)
class Conv2DTranspose(_ConvTranspose):
    """2-D transposed convolution layer (Gluon's ``nn.Conv2DTranspose``): ``activation(conv_transpose2d(x,
    weight) + bias)``, the up-sampling layer of FCNs, U-Nets and GAN generators.

    Parameters: ``{"weight": (in_channels, channels // groups, kh, kw), "bias": (channels,)}``, as
    PyTorch and Gluon store transposed weights; initialisation, dtypes and activation as
    :class:`Conv2D`. The output size per axis is
    ``(size - 1) * stride - (lo + hi) + dilation * (kernel - 1) + output_padding + 1``; see
    :func:`jconv.conv_transpose2d`.

    Example:
      >>> from jconv import nn
      >>> nn.Conv2DTranspose(8, 4, strides=2, padding=1).output_shape((1, 16, 14, 14))
      (1, 8, 28, 28)
    """


@dataclasses.dataclass(frozen=True, repr=False)
class Conv1DTranspose(Rank1, _ConvTranspose):
    """1-D transposed convolution layer (Gluon's ``nn.Conv1DTranspose``): :class:`Conv2DTranspose` over
    ``(N, C, W)``, weight ``(in_channels, channels // groups, kw)``."""


@dataclasses.dataclass(frozen=True, repr=False)
class Conv3DTranspose(Rank3, _ConvTranspose):
    """3-D transposed convolution layer (Gluon's ``nn.Conv3DTranspose``): :class:`Conv2DTranspose` over
    ``(N, C, D, H, W)``, weight ``(in_channels, channels // groups, kd, kh, kw)``; see
    :func:`jconv.conv_transpose3d`."""
