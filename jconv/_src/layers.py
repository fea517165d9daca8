"""Layers: immutable, hashable objects with ``init(key, input_shape)``, ``apply(params, x)`` and
``output_shape(input_shape)``; parameters are plain pytrees (dicts of arrays, tuples of those).

Shapes include the batch axis, as d2l prints them: ``(N, C, H, W)`` (or NHWC).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from jconv._src import checks
from jconv._src.conv import conv2d, conv_geometry
from jconv._src.pooling import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d, pool_geometry

Shape = tuple[int, ...]
Initializer = Callable[[jax.Array, Shape, Any], jax.Array]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "softrelu": jax.nn.softplus,
}


def gluon_uniform(scale: float = 0.07) -> Initializer:
    """Gluon's default weight initializer, ``Uniform(-scale, scale)`` (the seeds' ``initialize()``)."""

    def init(key: jax.Array, shape: Shape, dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


# Xavier / Glorot uniform over OIHW and (units, in_units) weights: what d2l initialises its CNNs
# with (``init.Xavier()``: uniform, fan average, magnitude 3).
xavier_uniform: Initializer = jax.nn.initializers.variance_scaling(
    1.0, "fan_avg", "uniform", in_axis=1, out_axis=0
)
zeros: Initializer = jax.nn.initializers.zeros


def _check_activation(fn: str, name: Any) -> None:
    if name is not None and name not in ACTIVATIONS:
        raise ValueError(f"{fn}: `activation` must be None or one of {tuple(ACTIVATIONS)}, got {name!r}")


def _positive_int(fn: str, name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not checks.is_int(value):
        raise TypeError(f"{fn}: `{name}` must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{fn}: `{name}` must be >= 1, got {value!r}")


def _check_padding_kind(fn: str, padding: Any) -> None:
    """Checks padding's kind and sign at construction (its size is checked against shapes later)."""
    checks.padding(fn, padding, (1, 1), (1, 1), (1, 1))


def _pad_repr(padding: Any) -> Any:
    return (padding, padding) if checks.is_int(padding) else padding


def _input_shape(fn: str, input_shape: Any, ndim: Sequence[int]) -> Shape:
    if not isinstance(input_shape, (tuple, list)) or not all(checks.is_int(d) for d in input_shape):
        raise TypeError(f"{fn}: `input_shape` must be a tuple of ints, got {input_shape!r}")
    if len(input_shape) not in ndim:
        raise ValueError(
            f"{fn}: `input_shape` must have {' or '.join(map(str, ndim))} dimensions, "
            f"got {tuple(input_shape)}"
        )
    return tuple(int(d) for d in input_shape)


class Layer:
    """The interface every layer implements."""

    def init(self, key: jax.Array, input_shape: Shape) -> Any:
        """Parameters for an input of ``input_shape``; ``{}`` when the layer has none."""
        self.output_shape(input_shape)
        return {}

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        raise NotImplementedError

    def output_shape(self, input_shape: Shape) -> Shape:
        raise NotImplementedError

    def bind(self, input_shape: Shape) -> "Layer":
        """This layer with the sizes it infers from ``input_shape`` filled in (for reprs)."""
        return self

    def __call__(self, params: Any, x: jax.Array) -> jax.Array:
        return self.apply(params, x)


def _weight_and_bias(layer: Any, key: jax.Array, weight_shape: Shape, units: int) -> dict[str, jax.Array]:
    """``{"weight", "bias"}`` from the layer's initializers (Xavier uniform and zeros by default)."""
    kw, kb = jax.random.split(key)
    params = {"weight": (layer.weight_init or xavier_uniform)(kw, weight_shape, jnp.float32)}
    if layer.use_bias:
        params["bias"] = (layer.bias_init or zeros)(kb, (units,), jnp.float32)
    return params


def _act(name: str | None, y: jax.Array) -> jax.Array:
    return y if name is None else ACTIVATIONS[name](y)


@dataclasses.dataclass(frozen=True, repr=False)
class Conv2D(Layer):
    """2-D convolution layer (Gluon's ``nn.Conv2D``): ``activation(conv2d(x, weight) + bias)``.

    Parameters: ``{"weight": (channels, in_channels // groups, kh, kw), "bias": (channels,)}``
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
    activation: str | None = None
    use_bias: bool = True
    in_channels: int | None = None
    weight_init: Initializer | None = None
    bias_init: Initializer | None = None
    precision: Any = None

    def __post_init__(self) -> None:
        fn = "Conv2D"
        _positive_int(fn, "channels", self.channels)
        _positive_int(fn, "groups", self.groups)
        _positive_int(fn, "in_channels", self.in_channels, allow_none=True)
        for name in ("kernel_size", "strides", "dilation"):
            object.__setattr__(self, name, checks.pair(fn, name, getattr(self, name)))
        _check_padding_kind(fn, self.padding)
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
        y = conv2d(
            x, params["weight"], params.get("bias"), strides=self.strides, padding=self.padding,
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

    def bind(self, input_shape: Shape) -> "Conv2D":
        return dataclasses.replace(self, in_channels=self._in_channels(input_shape))

    def __repr__(self) -> str:
        s = f"Conv2D({self.in_channels} -> {self.channels}, kernel_size={self.kernel_size}, stride={self.strides}"
        if self.padding not in (0, (0, 0), ((0, 0), (0, 0)), "valid"):
            s += f", padding={_pad_repr(self.padding)}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if not self.use_bias:
            s += ", bias=False"
        if self.activation:
            s += f", Activation({self.activation})"
        return s + ")"


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
        _check_padding_kind(fn, self.padding)
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


@dataclasses.dataclass(frozen=True, repr=False)
class Dense(Layer):
    """Fully connected layer (Gluon's ``nn.Dense``): ``activation(x @ weight.T + bias)``.

    Parameters: ``{"weight": (units, in_units), "bias": (units,)}``. With ``flatten=True``
    (default) all axes but the first are flattened; otherwise it acts on the last axis.

    Example:
      >>> from jconv import nn
      >>> nn.Dense(120, activation="sigmoid").output_shape((1, 16, 5, 5))
      (1, 120)
    """

    units: int
    activation: str | None = None
    use_bias: bool = True
    flatten: bool = True
    in_units: int | None = None
    weight_init: Initializer | None = None
    bias_init: Initializer | None = None
    precision: Any = None

    def __post_init__(self) -> None:
        _positive_int("Dense", "units", self.units)
        _positive_int("Dense", "in_units", self.in_units, allow_none=True)
        _check_activation("Dense", self.activation)
        checks.check_bool("Dense", "use_bias", self.use_bias)
        checks.check_bool("Dense", "flatten", self.flatten)

    def _in_units(self, input_shape: Shape) -> int:
        shape = _input_shape("Dense", input_shape, range(1, 9) if not self.flatten else range(2, 9))
        n = math.prod(shape[1:]) if self.flatten else shape[-1]
        if self.in_units is not None and self.in_units != n:
            raise ValueError(
                f"Dense: `in_units` (={self.in_units}) does not match input_shape {shape}, "
                f"which gives {n} input units"
            )
        return n

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        return _weight_and_bias(self, key, (self.units, self._in_units(input_shape)), self.units)

    def apply(self, params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        x = checks.array("Dense", "x", x)
        x = checks.to_float(x, checks.float_dtype(x))
        if self.flatten:
            x = x.reshape(x.shape[0], -1)
        y = jnp.matmul(x, params["weight"].T, precision=self.precision)
        if "bias" in params:
            y = y + params["bias"].reshape((1,) * (y.ndim - 1) + (-1,))
        return _act(self.activation, y)

    def output_shape(self, input_shape: Shape) -> Shape:
        self._in_units(input_shape)
        shape = tuple(input_shape)
        return (shape[0], self.units) if self.flatten else shape[:-1] + (self.units,)

    def bind(self, input_shape: Shape) -> "Dense":
        return dataclasses.replace(self, in_units=self._in_units(input_shape))

    def __repr__(self) -> str:
        return f"Dense({self.in_units} -> {self.units}, {f'Activation({self.activation})' if self.activation else 'linear'})"


@dataclasses.dataclass(frozen=True, repr=False)
class Flatten(Layer):
    """``(N, ...) -> (N, prod(...))``."""

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = _input_shape("Flatten", input_shape, range(1, 9))
        return (shape[0], math.prod(shape[1:]))

    def __repr__(self) -> str:
        return "Flatten"


@dataclasses.dataclass(frozen=True, repr=False)
class Activation(Layer):
    """An element-wise activation: ``"relu"``, ``"sigmoid"``, ``"tanh"`` or ``"softrelu"``."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in ACTIVATIONS:
            raise ValueError(f"Activation: `name` must be one of {tuple(ACTIVATIONS)}, got {self.name!r}")

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        return ACTIVATIONS[self.name](x)

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def __repr__(self) -> str:
        return f"Activation({self.name})"


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


def summary(layer: Layer, input_shape: Shape) -> str:
    """A table, one row per (leaf) layer: its repr, output shape and parameter count.

    The output shapes are those d2l prints (``Conv2D output shape: (1, 6, 28, 28)``).

    Example:
      >>> from jconv import nn
      >>> print(nn.summary(nn.Sequential(nn.Conv2D(2, 3), nn.Flatten()), (1, 1, 4, 4)))
      layer                                              output shape       params
      Conv2D(1 -> 2, kernel_size=(3, 3), stride=(1, 1))  (1, 2, 2, 2)           20
      Flatten                                            (1, 8)                  0
      total                                                                     20
    """
    rows = []
    key = jax.random.key(0)

    def walk(l: Layer, shape: Shape) -> Shape:
        if isinstance(l, Sequential):
            for child in l.layers:
                shape = walk(child, shape)
            return shape
        params = jax.eval_shape(lambda k: l.init(k, shape), key)
        count = sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(params))
        out = l.output_shape(shape)
        rows.append((repr(l.bind(shape)), str(out), count))
        return out

    walk(layer, tuple(input_shape))
    w = max(48, *(len(r[0]) + 2 for r in rows))
    lines = [f"{'layer':<{w}}{'output shape':<18}{'params':>7}"]
    lines += [f"{r:<{w}}{s:<18}{c:>7,}" for r, s, c in rows]
    lines.append(f"{'total':<{w}}{'':<18}{sum(r[2] for r in rows):>7,}")
    return "\n".join(lines)
