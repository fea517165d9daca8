"""Dense (fully connected), Flatten and Activation layers."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from jconv._src import checks
from jconv._src.nn.base import (ACTIVATIONS, InputShapeError, Layer, Shape, _act, _act_name, _check_activation,
                                _check_input, _compute_dtype, _hashable, _input_shape, _positive_int, _weight_and_bias)
from jconv._src.nn.initializers import Initializer


@dataclasses.dataclass(frozen=True, repr=False)
class Dense(Layer):
    """Fully connected layer (Gluon's ``nn.Dense``): ``activation(x @ weight.T + bias)``.

    Parameters: ``{"weight": (units, in_units), "bias": (units,)}`` in ``param_dtype``; computed
    in ``dtype`` (default: the input's float dtype). With ``flatten=True``
    (default) all axes but the first are flattened; otherwise it acts on the last axis.

    Example:
      >>> from jconv import nn
      >>> nn.Dense(120, activation="sigmoid").output_shape((1, 16, 5, 5))
      (1, 120)
    """

    units: int
    activation: Any = None
    use_bias: bool = True
    flatten: bool = True
    in_units: int | None = None
    weight_init: Initializer | None = None
    bias_init: Initializer | None = None
    precision: Any = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        _positive_int("Dense", "units", self.units)
        _positive_int("Dense", "in_units", self.in_units, allow_none=True)
        _check_activation("Dense", self.activation)
        object.__setattr__(self, "precision", _hashable(self.precision))
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
        layer = dataclasses.replace(self, in_units=params["weight"].shape[1])
        _check_input(layer, x, range(2 if self.flatten else 1, 9))
        got = math.prod(x.shape[1:]) if self.flatten else x.shape[-1]
        if got != layer.in_units:
            where = "all axes but the first" if self.flatten else "the last axis"
            raise InputShapeError(layer, f"{layer.in_units} input features ({where})",
                                  f"{got} (input shape {tuple(x.shape)})")
        dtype = _compute_dtype(self, x)
        x = x.astype(dtype)
        if self.flatten:
            x = x.reshape(x.shape[0], -1)
        y = jnp.matmul(x, params["weight"].T.astype(dtype), precision=self.precision)
        if "bias" in params:
            y = y + params["bias"].astype(dtype).reshape((1,) * (y.ndim - 1) + (-1,))
        return _act(self.activation, y)

    def output_shape(self, input_shape: Shape) -> Shape:
        self._in_units(input_shape)
        shape = tuple(input_shape)
        return (shape[0], self.units) if self.flatten else shape[:-1] + (self.units,)

    def with_inferred_sizes(self, input_shape: Shape) -> "Dense":
        return dataclasses.replace(self, in_units=self._in_units(input_shape))

    def __repr__(self) -> str:
        return f"Dense({self.in_units} -> {self.units}, {f'Activation({_act_name(self.activation)})' if self.activation else 'linear'})"


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
    """An element-wise activation: ``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"softrelu"``
    (Gluon's names) or any pure function of an array, e.g. ``jax.nn.gelu``."""

    name: Any

    def __post_init__(self) -> None:
        if not callable(self.name) and (not isinstance(self.name, str) or self.name not in ACTIVATIONS):
            raise ValueError(
                f"Activation: `name` must be a function or one of {tuple(ACTIVATIONS)}, got {self.name!r}"
            )

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        return _act(self.name, x)

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def __repr__(self) -> str:
        return f"Activation({_act_name(self.name)})"
