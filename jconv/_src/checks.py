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
Padding = tuple[Pair, ...]  # per-side (lo, hi) for each spatial axis

#: The layouts of each spatial rank: channels first (the default), channels last.
LAYOUTS_BY_RANK = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}
_NAMES = {1: "(w,)", 2: "(h, w)", 3: "(d, h, w)"}
_KINDS = {1: "a 1-tuple", 2: "a pair", 3: "a triple"}


def is_int(v: Any) -> bool:
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)


def ntuple(fn: str, name: str, value: Any, n: int, *, minimum: int = 1) -> tuple[int, ...]:
    """Normalises an int-or-``n``-tuple argument (one entry per spatial axis) and checks each
    entry ``>= minimum``."""
    if is_int(value):
        out = (int(value),) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(is_int(v) for v in value):
        out = tuple(int(v) for v in value)
    else:
        raise TypeError(
            f"{fn}: `{name}` must be an int or {_KINDS[n]} of ints {_NAMES[n]}, got {value!r}"
        )
    if min(out) < minimum:
        raise ValueError(f"{fn}: `{name}` must be >= {minimum} in each dimension, got {value!r}")
    return out


def pair(fn: str, name: str, value: Any, *, minimum: int = 1) -> Pair:
    """Normalises an int-or-pair argument to ``(h, w)`` and checks each entry ``>= minimum``."""
    return ntuple(fn, name, value, 2, minimum=minimum)  # type: ignore[return-value]


def layout(fn: str, value: Any, rank: int = 2) -> str:
    """Checks a layout string of a ``rank``-D op (``None``: channels first, e.g. ``"NCHW"``)."""
    choices = LAYOUTS_BY_RANK[rank]
    if value is None:
        return choices[0]
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{fn}: `layout` must be one of {choices} for {rank}-D, got {value!r}")
    return value


def channels_last(layout_: str) -> bool:
    return layout_[-1] == "C"


def same_padding(size: int, window: int, stride: int) -> Pair:
    """TensorFlow/lax ``"SAME"`` padding for one dimension: output ``ceil(size / stride)``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return (total // 2, total - total // 2)


def padding(
    fn: str, value: Any, spatial: Sequence[int], window: Sequence[int], strides: Sequence[int]
) -> Padding:
    """Normalises ``padding`` to per-side pairs, one ``(lo, hi)`` per spatial axis (2-D:
    ``((top, bottom), (left, right))``).

    Accepts an int, one int per axis (both sides), per-side pairs, or ``"valid"`` / ``"same"``
    (case-insensitive). ``window`` is the effective (dilated) window extent.
    """
    n = len(spatial)
    if isinstance(value, str):
        key = value.lower()
        if key == "valid":
            return ((0, 0),) * n
        if key == "same":
            return tuple(same_padding(d, w, s) for d, w, s in zip(spatial, window, strides))
        raise ValueError(f"{fn}: `padding` string must be 'valid' or 'same', got {value!r}")
    if is_int(value):
        out = ((int(value),) * 2,) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(is_int(v) for v in value):
        out = tuple((int(v),) * 2 for v in value)
    elif (
        isinstance(value, (tuple, list))
        and len(value) == n
        and all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(is_int(v) for v in p)
            for p in value
        )
    ):
        out = tuple((int(p[0]), int(p[1])) for p in value)
    else:
        sides = {1: "((left, right),)", 2: "((top, bottom), (left, right))",
                 3: "((front, back), (top, bottom), (left, right))"}[n]
        raise TypeError(
            f"{fn}: `padding` must be an int, {_KINDS[n]} {_NAMES[n]}, per-side pairs {sides}, "
            f"'valid' or 'same', got {value!r}"
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
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{fn}: `{name}` must be real (jconv's ops are real-valued), got {arr.dtype}")
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


def activation_ranks(fn: str, x: jax.Array, name: str = "x", rank: int = 2) -> bool:
    """Checks ``x`` is batched (``rank + 2`` axes) or unbatched (``rank + 1``) for a ``rank``-D
    op; returns True when unbatched."""
    if x.ndim not in (rank + 1, rank + 2):
        first, last = LAYOUTS_BY_RANK[rank]
        forms = f"({', '.join(first)}) / ({', '.join(last)})"
        raise ValueError(
            f"{fn}: `{name}` must be {rank + 2}-D {forms} or {rank + 1}-D unbatched, "
            f"got shape {tuple(x.shape)}"
        )
    return x.ndim == rank + 1


def spatial_axes(layout_: str) -> tuple[int, ...]:
    """The spatial axes of a batched array of the given layout (2-D: those of ``H`` and ``W``)."""
    n = len(layout_) - 2
    return tuple(range(1, 1 + n)) if channels_last(layout_) else tuple(range(2, 2 + n))


def spatial_dims(shape: Sequence[int], layout_: str) -> tuple[int, ...]:
    """The spatial sizes of a batched shape in the given layout (2-D: ``(H, W)``)."""
    return tuple(shape[a] for a in spatial_axes(layout_))


def channels(shape: Sequence[int], layout_: str) -> int:
    return shape[-1] if channels_last(layout_) else shape[1]


def check_mode(fn: str, mode: Any, choices: Sequence[str]) -> str:
    if not isinstance(mode, str) or mode not in choices:
        raise ValueError(f"{fn}: `mode` must be one of {tuple(choices)}, got {mode!r}")
    return mode


def check_bool(fn: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: `{name}` must be a bool, got {value!r}")
    return bool(value)
