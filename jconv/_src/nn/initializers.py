"""Weight initializers: ``init(key, shape, dtype) -> array``."""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

Shape = tuple[int, ...]
Initializer = Callable[[jax.Array, Shape, Any], jax.Array]


def gluon_uniform(scale: float = 0.07) -> Initializer:
    """Gluon's default weight initializer, ``Uniform(-scale, scale)`` (the seeds' ``initialize()``)."""

    def init(key: jax.Array, shape: Shape, dtype: Any = jnp.float32) -> jax.Array:
        draw = lambda key, size: jax.random.uniform(key, size, dtype, -scale, scale)  # noqa: E731
        return _flat_draw(draw, key, math.prod(shape)).reshape(shape)

    return init


def variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
    """``jax.nn.initializers.variance_scaling(scale, mode, distribution, in_axis=1, out_axis=0)``
    over OIHW and ``(units, in_units)`` weights (``mode``: ``"fan_in"`` or ``"fan_avg"``;
    ``distribution``: ``"normal"`` or ``"uniform"``), with the same values, drawn over the
    flattened shape and reshaped.

    Why: threefry's bits depend only on an element's flat index, so the values are equal, but
    XLA compiles a 1-D draw ~5x faster than a 4-D one (0.17 s against 0.92 s for one
    192x480x3x3 weight on the 2-core CI machine), and a network's initialisation compiles one
    draw per weight shape (GoogLeNet: 58; its ``init`` took ~45 s before).
    """
    if mode not in ("fan_in", "fan_avg") or distribution not in ("normal", "uniform"):
        raise ValueError(f"variance_scaling: unsupported mode {mode!r} or distribution {distribution!r}")

    def init(key: jax.Array, shape: Shape, dtype: Any = jnp.float32) -> jax.Array:
        field = math.prod(shape[2:])
        fan_in, fan_out = shape[1] * field, shape[0] * field
        variance = jnp.array(scale / (fan_in if mode == "fan_in" else (fan_in + fan_out) / 2), dtype=dtype)
        if distribution == "normal":
            draw = lambda key, size: jax.random.normal(key, size, dtype) * jnp.sqrt(variance)  # noqa: E731
        else:
            draw = lambda key, size: jax.random.uniform(key, size, dtype, -1) * jnp.sqrt(3 * variance)  # noqa: E731
        return _flat_draw(draw, key, math.prod(shape)).reshape(shape)

    return init


_ROUND_UP_BELOW = 1 << 20


def _flat_draw(draw: Callable[[jax.Array, Shape], jax.Array], key: jax.Array, size: int) -> jax.Array:
    """``draw(key, (size,))``, taken as the first ``size`` elements of ``draw`` over the next power
    of two: the same values, since threefry's bits (``jax_threefry_partitionable``, JAX's default)
    depend only on an element's flat index and the transforms are elementwise.

    Why: outside ``jit`` every new size compiles its own draw, ~0.15 s each on the 2-core CI
    machine, and a network draws one size per weight shape (GoogLeNet: 58 of them, ~10 s); over
    powers of two all of a process's networks share ~20 compiled draws. Under a trace (an ``init``
    inside ``jit``), and from 2**20 elements on (where drawing, not compiling, dominates), the draw
    is of ``size`` exactly.
    """
    exact = size <= 1 or size >= _ROUND_UP_BELOW or not jax.config.jax_threefry_partitionable
    if exact or isinstance(key, jax.core.Tracer):
        return draw(key, (size,))
    return draw(key, (1 << (size - 1).bit_length(),))[:size]


# Xavier / Glorot uniform over OIHW and (units, in_units) weights: what d2l initialises its CNNs
# with (``init.Xavier()``: uniform, fan average, magnitude 3).
xavier_uniform: Initializer = variance_scaling(1.0, "fan_avg", "uniform")
zeros: Initializer = jax.nn.initializers.zeros

# He / Kaiming normal over OIHW and (units, in_units) weights (PyTorch's ``kaiming_normal_``,
# fan in, gain sqrt(2)): keeps the activations' scale through deep ReLU stacks without
# BatchNorm, where Xavier shrinks them layer by layer (VGG-11 stays on the ln(10) plateau).
he_normal: Initializer = variance_scaling(2.0, "fan_in", "normal")


def centered(init: Initializer) -> Initializer:
    """``init`` with each output unit's weights shifted to sum to zero: the mean over every axis
    but the first (OIHW: each filter's mean over input channels and window; ``(units, in_units)``:
    each unit's mean over its inputs) is subtracted, the spread is kept. A 1-D shape (one unit) is
    returned as ``init`` draws it.

    Why: a ReLU layer's inputs are ReLU outputs (all >= 0), whose mean can dominate their spread,
    so with plain random weights a unit whose weights sum well below zero is negative for every
    input, dead from the start (with He weights, 4-31 of each of the 384-channel layers of NiN's
    third block and 0-3 of the 10 of its last block's, on mnist5k). A zero-sum filter answers
    only to deviations from the mean: about half of its outputs are positive, whatever the input's
    mean. It is where weight standardisation (Qiao et al., 2019) starts, without the
    reparametrisation; the weights' variance shrinks only by ``1 - 1/fan_in``.

    Example:
      >>> import jax, jconv.nn as nn
      >>> w = nn.centered(nn.he_normal)(jax.random.key(0), (4, 3, 3, 3))
      >>> bool(abs(w.sum(axis=(1, 2, 3))).max() < 1e-5)
      True
    """

    def centered_init(key: jax.Array, shape: Shape, dtype: Any = jnp.float32) -> jax.Array:
        w = init(key, shape, dtype)
        return w - jnp.mean(w, axis=tuple(range(1, len(shape))), keepdims=True) if len(shape) > 1 else w

    return centered_init
