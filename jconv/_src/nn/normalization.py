"""Batch normalisation: parameters ``{"gamma", "beta"}``, state ``{"running_mean", "running_var"}``."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jconv._src import checks
from jconv._src.nn.base import InputShapeError, Layer, Shape, _check_input, _compute_dtype, _input_shape, _positive_int


@dataclasses.dataclass(frozen=True, repr=False)
class BatchNorm(Layer):
    """Batch normalisation (Gluon's ``nn.BatchNorm``: names and defaults; PyTorch's update rule).

    Training (``apply_with_state(..., train=True)``) normalises each channel with the batch's
    mean and biased variance, ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``, and
    returns the new state ``running = momentum * running + (1 - momentum) * batch`` with the
    *unbiased* variance for ``running_var`` (``momentum=0.9`` is PyTorch's ``momentum=0.1``).
    Evaluation (``train=False``) normalises with the running statistics and returns the state
    unchanged. Statistics are computed over every axis but ``axis`` (``1``: NCHW or ``(N, C)``;
    ``-1`` or ``3``: NHWC), in at least float32; under ``jit`` with a batch sharded across devices
    they are those of the global batch (XLA inserts the reduction).

    Parameters: ``{"gamma": (C,), "beta": (C,)}`` (ones, zeros; without ``gamma`` when
    ``scale=False``, without ``beta`` when ``center=False``), in ``param_dtype``. State:
    ``{"running_mean": (C,), "running_var": (C,)}`` (zeros, ones), float32.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jconv import nn
      >>> bn = nn.BatchNorm()
      >>> params, state = bn.init_with_state(jax.random.key(0), (4, 3, 5, 5))
      >>> y, state = bn.apply_with_state(params, state, jnp.ones((4, 3, 5, 5)), train=True)
      >>> state["running_mean"]
      Array([0.1, 0.1, 0.1], dtype=float32)
    """

    axis: int = 1
    momentum: float = 0.9
    epsilon: float = 1e-5
    center: bool = True
    scale: bool = True
    in_channels: int | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    has_state = True

    def __post_init__(self) -> None:
        fn = "BatchNorm"
        if not checks.is_int(self.axis):
            raise TypeError(f"{fn}: `axis` must be an int, got {self.axis!r}")
        for name, lo, hi in (("momentum", 0.0, 1.0), ("epsilon", 0.0, float("inf"))):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{fn}: `{name}` must be a number, got {v!r}")
            if not (lo <= v <= hi if name == "momentum" else v > lo):
                raise ValueError(f"{fn}: `{name}` must be in {'[0, 1]' if name == 'momentum' else '(0, inf)'}, got {v!r}")
        checks.check_bool(fn, "center", self.center)
        checks.check_bool(fn, "scale", self.scale)
        _positive_int(fn, "in_channels", self.in_channels, allow_none=True)

    def _channels(self, input_shape: Shape) -> tuple[int, int]:
        """``(channel axis >= 0, channels)`` of an input of ``input_shape``."""
        shape = _input_shape("BatchNorm", input_shape, range(2, 9))
        if not -len(shape) <= self.axis < len(shape) or self.axis % len(shape) == 0:
            raise ValueError(
                f"BatchNorm: `axis` {self.axis} must be a non-batch axis of input_shape {shape}"
            )
        ax = self.axis % len(shape)
        if self.in_channels is not None and self.in_channels != shape[ax]:
            raise ValueError(
                f"BatchNorm: `in_channels` (={self.in_channels}) does not match the {shape[ax]} "
                f"channels on axis {self.axis} of input_shape {shape}"
            )
        return ax, shape[ax]

    def output_shape(self, input_shape: Shape) -> Shape:
        self._channels(input_shape)
        return tuple(input_shape)

    def init_with_state(self, key: jax.Array, input_shape: Shape) -> tuple[dict, dict]:
        _, c = self._channels(input_shape)
        params = {}
        if self.scale:
            params["gamma"] = jnp.ones((c,), self.param_dtype)
        if self.center:
            params["beta"] = jnp.zeros((c,), self.param_dtype)
        return params, {"running_mean": jnp.zeros((c,), jnp.float32), "running_var": jnp.ones((c,), jnp.float32)}

    def init(self, key: jax.Array, input_shape: Shape) -> dict:
        return self.init_with_state(key, input_shape)[0]

    def apply(self, params: dict, x: jax.Array) -> jax.Array:
        raise ValueError(
            "BatchNorm: this layer has state (running statistics), so `apply(params, x)` cannot "
            "be used; call `apply_with_state(params, state, x, train=...)` on the model, with "
            "`params, state = model.init_with_state(key, input_shape)`"
        )

    def apply_with_state(self, params: dict, state: dict, x: jax.Array, *, train: bool = False,
                         key: jax.Array | None = None) -> tuple[jax.Array, dict]:
        x = checks.array("BatchNorm", "x", x)
        c = state["running_mean"].shape[0]
        _check_input(dataclasses.replace(self, in_channels=c), x, range(2, 9))
        if not -x.ndim <= self.axis < x.ndim or self.axis % x.ndim == 0:
            raise InputShapeError(self, f"an input with a channel axis {self.axis}", f"shape {tuple(x.shape)}")
        _check_input(dataclasses.replace(self, in_channels=c), x, range(2, 9), self.axis, c)
        ax = self.axis % x.ndim
        dtype = _compute_dtype(self, x)
        stat_dtype = jnp.promote_types(dtype, jnp.float32)  # statistics in at least float32
        xs = x.astype(stat_dtype)
        axes = tuple(i for i in range(x.ndim) if i != ax)
        bshape = tuple(c if i == ax else 1 for i in range(x.ndim))
        if train:
            n = x.size // c
            if n < 2:
                raise ValueError(
                    f"BatchNorm: training needs more than one value per channel, got input shape "
                    f"{x.shape} (axis {self.axis})"
                )
            mean = jnp.mean(xs, axes)
            var = jnp.mean(jnp.square(xs - mean.reshape(bshape)), axes)
            m = self.momentum
            rm, rv = state["running_mean"], state["running_var"]
            new_state = jax.tree.map(lax.stop_gradient, {
                "running_mean": m * rm + (1 - m) * mean.astype(rm.dtype),
                "running_var": m * rv + (1 - m) * (var * (n / (n - 1))).astype(rv.dtype),
            })
        else:
            mean, var, new_state = state["running_mean"], state["running_var"], state
        inv = lax.rsqrt(var.astype(stat_dtype) + self.epsilon)
        if "gamma" in params:
            inv = inv * params["gamma"].astype(stat_dtype)
        y = (xs - mean.astype(stat_dtype).reshape(bshape)) * inv.reshape(bshape)
        if "beta" in params:
            y = y + params["beta"].astype(stat_dtype).reshape(bshape)
        return y.astype(dtype), new_state

    def with_inferred_sizes(self, input_shape: Shape) -> "BatchNorm":
        return dataclasses.replace(self, in_channels=self._channels(input_shape)[1])

    def __repr__(self) -> str:
        return (f"BatchNorm(axis={self.axis}, eps={self.epsilon}, momentum={self.momentum}, "
                f"in_channels={self.in_channels})")
