"""The layer contract and the helpers every layer family shares.

Layers are immutable, hashable objects with ``init(key, input_shape)``, ``apply(params, x)`` and
``output_shape(input_shape)``; parameters are plain pytrees (dicts of arrays, tuples of those).
Shapes include the batch axis, as d2l prints them: ``(N, C, H, W)`` (or NHWC).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Sequence

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

def _check_activation(fn: str, act: Any) -> None:
    if act is None or callable(act):
        return
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ValueError(
            f"{fn}: `activation` must be None, a function or one of {tuple(ACTIVATIONS)}, got {act!r}"
        )


def _act_name(act: Any) -> str:
    return act if isinstance(act, str) else getattr(act, "__name__", repr(act))


def _act(act: Any, y: jax.Array) -> jax.Array:
    if act is None:
        return y
    return act(y) if callable(act) else ACTIVATIONS[act](y)


def _positive_int(fn: str, name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not checks.is_int(value):
        raise TypeError(f"{fn}: `{name}` must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{fn}: `{name}` must be >= 1, got {value!r}")


def _padding(fn: str, padding: Any, rank: int = 2) -> Any:
    """Checks padding's kind and sign at construction and returns a hashable normal form:
    ``"valid"`` / ``"same"`` or per-side pairs, one per spatial axis (its size is checked
    against shapes later)."""
    ones = (1,) * rank
    normal = checks.padding(fn, padding, ones, ones, ones)
    return padding.lower() if isinstance(padding, str) else normal


def _pad_repr(padding: Any) -> Any:
    """Gluon's repr: ``(ph, pw)`` when both sides of each axis agree, per-side pairs otherwise."""
    if isinstance(padding, str) or any(a != b for a, b in padding):
        return padding
    return tuple(a for a, _ in padding)


def _hashable(value: Any) -> Any:
    """Lists (e.g. a ``precision`` pair) as tuples, so that layers stay hashable."""
    return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


def _input_shape(fn: str, input_shape: Any, ndim: Sequence[int]) -> Shape:
    if not isinstance(input_shape, (tuple, list)) or not all(checks.is_int(d) for d in input_shape):
        raise TypeError(f"{fn}: `input_shape` must be a tuple of ints, got {input_shape!r}")
    if len(input_shape) not in ndim:
        raise ValueError(
            f"{fn}: `input_shape` must have {' or '.join(map(str, ndim))} dimensions, "
            f"got {tuple(input_shape)}"
        )
    return tuple(int(d) for d in input_shape)


def _compute_dtype(layer: Any, x: jax.Array) -> Any:
    """The layer's ``dtype`` if set, else the input's float dtype (bf16 in, bf16 out)."""
    return layer.dtype if layer.dtype is not None else checks.float_dtype(x)


class InputShapeError(ValueError):
    """An input that does not fit a layer's parameters (or rank, or channels).

    The message names the layer (its repr), where it sits in the containers around it
    (``Sequential layer 4``), what it expected and what it got, and the input shape the model was
    built for when its builder recorded one (``Sequential(..., input_shape=...)``).
    """

    def __init__(self, layer: Any, expected: str, got: str):
        super().__init__()
        self.layer, self.expected, self.got = layer, expected, got
        self.where: list[str] = []
        self.model_input: Shape | None = None

    def __str__(self) -> str:
        where = " > ".join(self.where)
        s = f"{where + ', ' if where else ''}{self.layer!r}: expected {self.expected}, got {self.got}"
        if self.model_input is not None:
            s += f" (the model was built for examples of shape {self.model_input})"
        return s


def _check_input(layer: Any, x: Any, ndim: Sequence[int], axis: int | None = None, size: int | None = None,
                 what: str = "channels") -> None:
    """Raises :class:`InputShapeError` unless ``x`` has one of the ranks ``ndim`` and, when
    ``axis`` is given, ``size`` entries along it."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) not in ndim:
        raise InputShapeError(layer, f"a {' or '.join(map(str, ndim))}-D input",
                              f"shape {shape}")
    if axis is not None and shape[axis] != size:
        raise InputShapeError(layer, f"{size} {what if size != 1 else what[:-1]} on axis {axis % len(shape)}",
                              f"{shape[axis]} (input shape {shape})")


def _check_fits(layer: Any, x: Any) -> None:
    """Raises :class:`InputShapeError` when ``layer.output_shape`` refuses ``x``'s shape (a
    window larger than the padded input, a rank the layer does not take)."""
    try:
        layer.output_shape(tuple(x.shape))
    except ValueError as e:
        raise InputShapeError(layer, "an input of a shape it accepts", f"shape {tuple(x.shape)}: {e}") from None


def _located(where: str, call: Callable[[], Any]) -> Any:
    """``call()``, with ``where`` (e.g. ``"Sequential layer 4"``) prepended to the location of an
    :class:`InputShapeError` raised inside it."""
    try:
        return call()
    except InputShapeError as e:
        e.where.insert(0, where)
        raise


def _fold(key: jax.Array | None, i: int) -> jax.Array | None:
    """Child ``i``'s key: ``fold_in(key, i)`` (None stays None)."""
    return None if key is None else jax.random.fold_in(key, i)


class Layer:
    """The interface every layer implements.

    Stateless layers (convolutions, pooling, dense) implement ``init``, ``apply`` and
    ``output_shape``; the state/randomness channel then comes for free: ``init_with_state``
    returns ``(params, {})`` and ``apply_with_state`` passes the state through. Layers with state
    (``BatchNorm``), randomness (``Dropout``) and the containers implement ``init_with_state``
    and ``apply_with_state`` as well.

    * ``params = layer.init(key, input_shape)``; ``y = layer.apply(params, x)`` (evaluation mode:
      raises ``ValueError`` naming ``apply_with_state`` when the model has state);
    * ``params, state = layer.init_with_state(key, input_shape)``;
      ``y, state = layer.apply_with_state(params, state, x, train=False, key=None)``: in training
      (``train=True``) batch statistics and dropout, new state out; ``key`` is folded per child.
    """

    #: Whether the layer (or a child) carries state that ``apply`` cannot update.
    has_state: bool = False
    #: Whether training mode needs a ``key`` (Dropout, or a container with one).
    needs_key: bool = False

    def init(self, key: jax.Array, input_shape: Shape) -> Any:
        """Parameters for an input of ``input_shape``; ``{}`` when the layer has none."""
        self.output_shape(input_shape)
        return {}

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        raise NotImplementedError

    def init_with_state(self, key: jax.Array, input_shape: Shape) -> tuple[Any, Any]:
        """``(params, state)`` for an input of ``input_shape``; state ``{}`` when there is none."""
        return self.init(key, input_shape), {}

    def apply_with_state(self, params: Any, state: Any, x: jax.Array, *, train: bool = False,
                         key: jax.Array | None = None) -> tuple[jax.Array, Any]:
        """``(y, new_state)``; ``train`` selects batch statistics and dropout, ``key`` the masks."""
        return self.apply(params, x), state

    def output_shape(self, input_shape: Shape) -> Shape:
        raise NotImplementedError

    def with_inferred_sizes(self, input_shape: Shape) -> "Layer":
        """This layer with the sizes it infers from ``input_shape`` (``in_channels``,
        ``in_units``) filled in; used for reprs and ``summary``. Not Flax's ``bind``: no
        parameters are attached."""
        return self

    def __call__(self, params: Any, x: jax.Array) -> jax.Array:
        return self.apply(params, x)


def _weight_and_bias(layer: Any, key: jax.Array, weight_shape: Shape, units: int) -> dict[str, jax.Array]:
    """``{"weight", "bias"}`` from the layer's initializers (Xavier uniform and zeros by default),
    in the layer's ``param_dtype``."""
    kw, kb = jax.random.split(key)
    params = {"weight": (layer.weight_init or xavier_uniform)(kw, weight_shape, layer.param_dtype)}
    if layer.use_bias:
        params["bias"] = (layer.bias_init or zeros)(kb, (units,), layer.param_dtype)
    return params


@dataclasses.dataclass(frozen=True, repr=False)
class Rank1:
    """Mixin of the 1-D layers (listed first among the bases): channels-first ``(N, C, W)`` by default."""

    layout: str = "NCW"
    _rank: ClassVar[int] = 1


@dataclasses.dataclass(frozen=True, repr=False)
class Rank3:
    """Mixin of the 3-D layers (listed first among the bases): channels-first ``(N, C, D, H, W)`` by default."""

    layout: str = "NCDHW"
    _rank: ClassVar[int] = 3
