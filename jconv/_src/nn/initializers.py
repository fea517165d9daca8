"""Weight initializers: ``init(key, shape, dtype) -> array``."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Shape = tuple[int, ...]
Initializer = Callable[[jax.Array, Shape, Any], jax.Array]


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

# He / Kaiming normal over OIHW and (units, in_units) weights (PyTorch's ``kaiming_normal_``,
# fan in, gain sqrt(2)): keeps the activations' scale through deep ReLU stacks without
# BatchNorm, where Xavier shrinks them layer by layer (VGG-11 stays on the ln(10) plateau).
he_normal: Initializer = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal", in_axis=1, out_axis=0)
