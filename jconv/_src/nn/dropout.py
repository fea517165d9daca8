"""Dropout: the one layer that needs randomness (an explicit key)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jconv._src import checks
from jconv._src.nn.base import Layer, Shape


@dataclasses.dataclass(frozen=True, repr=False)
class Dropout(Layer):
    """Dropout (Gluon's ``nn.Dropout``): in training (``apply_with_state(..., train=True,
    key=key)``) each element is zeroed with probability ``rate`` and the others are scaled by
    ``1 / (1 - rate)``; in evaluation (``train=False``, and ``apply``) it is the identity.

    The mask is ``jax.random.bernoulli(key, 1 - rate, x.shape)``, drawn over the flattened shape and
    reshaped (the same bits; XLA compiles a 1-D draw faster); in a container the key is
    ``fold_in(key, position)``, so every Dropout of a model draws its own mask.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jconv import nn
      >>> y, _ = nn.Dropout(0.5).apply_with_state({}, {}, jnp.ones(4), train=True, key=jax.random.key(0))
      >>> sorted(set(y.tolist())) in ([0.0, 2.0], [0.0], [2.0])
      True
    """

    rate: float

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)):
            raise TypeError(f"Dropout: `rate` must be a number, got {self.rate!r}")
        if not 0 <= self.rate < 1:
            raise ValueError(f"Dropout: `rate` must be in [0, 1), got {self.rate!r}")

    @property
    def needs_key(self) -> bool:  # type: ignore[override]
        return self.rate > 0

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        return x

    def apply_with_state(self, params: Any, state: Any, x: jax.Array, *, train: bool = False,
                         key: jax.Array | None = None) -> tuple[jax.Array, Any]:
        if not train or self.rate == 0:
            return x, state
        if key is None:
            raise ValueError(
                "Dropout: train=True needs a `key` (e.g. jax.random.key(0)) for the dropout mask; "
                "pass apply_with_state(params, state, x, train=True, key=key)"
            )
        x = checks.array("Dropout", "x", x)
        keep = jax.random.bernoulli(key, 1 - self.rate, (x.size,)).reshape(x.shape)
        return jnp.where(keep, x / jnp.asarray(1 - self.rate, x.dtype), jnp.zeros((), x.dtype)), state

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def __repr__(self) -> str:
        return f"Dropout(p = {self.rate}, axes=())"
