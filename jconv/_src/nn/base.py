"""The layer contract and the helpers every layer family shares.

Layers are immutable, hashable objects with ``init(key, input_shape)``, ``apply(params, x)`` and
``output_shape(input_shape)``; parameters are plain pytrees (dicts of arrays, tuples of those).
Shapes include the batch axis, as d2l prints them: ``(N, C, H, W)`` (or NHWC).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from jconv._src import checks
from jconv._src.nn.initializers import xavier_uniform, zeros

Shape = tuple[int, ...]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "softrelu": jax.nn.softplus,
}


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
