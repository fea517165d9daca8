"""Argument normalisation and validation shared by every op and layer.

Every public function checks its arguments here, at trace time, from static shapes, so that a
mistake surfaces as a ``ValueError`` (bad value or shape) or ``TypeError`` (wrong kind) naming
the function, the argument and the value -- before XLA sees anything.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]

LAYOUTS = ("NCHW", "NHWC")


def is_int(v: Any) -> bool:
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)


def pair(fn: str, name: str, value: Any, *, minimum: int = 1) -> Pair:
    """Normalises an int-or-pair argument to ``(h, w)`` and checks each entry ``>= minimum``."""
    if is_int(value):
        out = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        out = (int(value[0]), int(value[1]))
    else:
        raise TypeError(
            f"{fn}: `{name}` must be an int or a pair of ints (h, w), got {value!r}"
        )
    if min(out) < minimum:
        raise ValueError(f"{fn}: `{name}` must be >= {minimum} in each dimension, got {value!r}")
    return out


def layout(fn: str, value: Any) -> str:
    """Checks a layout string: ``"NCHW"`` or ``"NHWC"``."""
    if not isinstance(value, str) or value not in LAYOUTS:
        raise ValueError(f"{fn}: `layout` must be one of {LAYOUTS}, got {value!r}")
    return value


def same_padding(size: int, window: int, stride: int) -> Pair:
    """TensorFlow/lax ``"SAME"`` padding for one dimension: output ``ceil(size / stride)``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return (total // 2, total - total // 2)


def padding(
    fn: str, value: Any, spatial: Pair, window: Pair, strides: Pair
) -> Padding:
    """Normalises ``padding`` to per-side pairs ``((top, bottom), (left, right))``.

    Accepts an int, a pair ``(ph, pw)`` (both sides), per-side pairs, or ``"valid"`` / ``"same"``
    (case-insensitive). ``window`` is the effective (dilated) window extent.
    """
    if isinstance(value, str):
        key = value.lower()
        if key == "valid":
            return ((0, 0), (0, 0))
        if key == "same":
            return (
                same_padding(spatial[0], window[0], strides[0]),
                same_padding(spatial[1], window[1], strides[1]),
            )
        raise ValueError(f"{fn}: `padding` string must be 'valid' or 'same', got {value!r}")
    if is_int(value):
        out = ((int(value),) * 2, (int(value),) * 2)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        out = ((int(value[0]),) * 2, (int(value[1]),) * 2)
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(is_int(v) for v in p)
            for p in value
        )
    ):
        out = tuple((int(p[0]), int(p[1])) for p in value)
    else:
        raise TypeError(
            f"{fn}: `padding` must be an int, a pair, per-side pairs ((top, bottom), "
            f"(left, right)), 'valid' or 'same', got {value!r}"
        )
    if min(min(p) for p in out) < 0:
        raise ValueError(f"{fn}: `padding` must be non-negative, got {value!r}")
    return out  # type: ignore[return-value]


def array(fn: str, name: str, value: Any) -> jax.Array:
    """Checks that ``value`` is array-like and numeric; returns it as a JAX array (or tracer)."""
    if isinstance(value, jax.Array):
        arr = value
    elif isinstance(value, (np.ndarray, np.generic, numbers.Number, list, tuple)) and not isinstance(
        value, bool
    ):
        try:
            arr = jnp.asarray(value)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{fn}: `{name}` must be a numeric array, got {value!r}") from e
    else:
        raise TypeError(
            f"{fn}: `{name}` must be an array, got {type(value).__name__} {value!r:.80}"
        )
    if not (jnp.issubdtype(arr.dtype, jnp.number) or arr.dtype == jnp.bool_):
        raise TypeError(f"{fn}: `{name}` must have a numeric dtype, got {arr.dtype}")
    return arr


def float_dtype(*arrays: jax.Array) -> Any:
    """The result dtype: the arrays' promoted float dtype; integers and bools become float32."""
    dt = jnp.result_type(*arrays)
    if not jnp.issubdtype(dt, jnp.inexact):
        return jnp.float32
    return dt


def to_float(x: jax.Array, dtype: Any) -> jax.Array:
    return x if x.dtype == dtype else x.astype(dtype)


def activation_ranks(fn: str, x: jax.Array, name: str = "x") -> bool:
    """Checks ``x`` is 3-D (unbatched) or 4-D (batched); returns True when unbatched."""
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{fn}: `{name}` must be 4-D (N, C, H, W) / (N, H, W, C) or 3-D unbatched, "
            f"got shape {tuple(x.shape)}"
        )
    return x.ndim == 3


def to_nchw(x: jax.Array, layout_: str) -> jax.Array:
    return x if layout_ == "NCHW" else jnp.transpose(x, (0, 3, 1, 2))


def from_nchw(y: jax.Array, layout_: str) -> jax.Array:
    return y if layout_ == "NCHW" else jnp.transpose(y, (0, 2, 3, 1))


def spatial_axes(layout_: str) -> Pair:
    """The axes of ``H`` and ``W`` in a batched array of the given layout."""
    return (2, 3) if layout_ == "NCHW" else (1, 2)


def spatial_dims(shape: Sequence[int], layout_: str) -> Pair:
    """``(H, W)`` of a batched shape in the given layout."""
    h, w = spatial_axes(layout_)
    return (shape[h], shape[w])


def channels(shape: Sequence[int], layout_: str) -> int:
    return shape[1] if layout_ == "NCHW" else shape[3]


def check_mode(fn: str, mode: Any, choices: Sequence[str]) -> str:
    if not isinstance(mode, str) or mode not in choices:
        raise ValueError(f"{fn}: `mode` must be one of {tuple(choices)}, got {mode!r}")
    return mode


def check_bool(fn: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: `{name}` must be a bool, got {value!r}")
    return bool(value)
