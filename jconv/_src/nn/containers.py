"""Containers: layers made of layers (``Sequential``, ``Residual``, ``Concat``) and ``Lambda``.

Parameters and state mirror the structure: a ``Sequential`` has a tuple of its children's, a
``Residual`` a dict ``{"body", "shortcut"}``, a ``Concat`` a tuple per branch. Child ``i`` gets
the key ``jax.random.fold_in(key, i)`` (for Dropout), so keys never repeat across layers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from jconv._src.nn.base import (InputShapeError, Layer, Shape, _act, _act_name, _check_activation, _fold, _input_shape,
                                _located)


def _check_layers(fn: str, layers: Sequence[Any]) -> tuple[Layer, ...]:
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"{fn}: argument {i} must be a layer, got {layer!r}")
    return tuple(layers)


def _check_entries(fn: str, name: str, value: Any, n: int) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != n:
        got = f"{len(value)} entries" if isinstance(value, (tuple, list)) else repr(type(value).__name__)
        raise ValueError(f"{fn}: `{name}` has {got} for {n} layers")


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")


@dataclasses.dataclass(frozen=True, repr=False, init=False)
class Sequential(Layer):
    """Layers applied in order. Parameters (and state): a tuple of the children's, in order.

    ``input_shape`` (optional, keyword-only) records the input shape the network was built for
    (the model builders set it); an input that does not fit a layer then raises an
    :class:`InputShapeError` that names it, beside the layer's position and repr.

    Example:
      >>> import jax
      >>> from jconv import nn
      >>> net = nn.Sequential(nn.Conv2D(2, 3), nn.MaxPool2D(), nn.Dense(4))
      >>> params = net.init(jax.random.key(0), (1, 1, 8, 8))
      >>> net.apply(params, jax.numpy.ones((1, 1, 8, 8))).shape
      (1, 4)
    """

    layers: tuple[Layer, ...]
    input_shape: Shape | None = None

    def __init__(self, *layers: Layer, input_shape: Shape | None = None) -> None:
        object.__setattr__(self, "layers", _check_layers("Sequential", layers))
        if input_shape is not None:
            input_shape = _input_shape("Sequential", input_shape, range(1, 9))
        object.__setattr__(self, "input_shape", input_shape)

    @property
    def has_state(self) -> bool:  # type: ignore[override]
        return any(layer.has_state for layer in self.layers)

    @property
    def needs_key(self) -> bool:  # type: ignore[override]
        return any(layer.needs_key for layer in self.layers)

    def init_with_state(self, key: jax.Array, input_shape: Shape) -> tuple[tuple, tuple]:
        params, states = [], []
        shape = tuple(input_shape)
        for layer, k in zip(self.layers, jax.random.split(key, max(len(self.layers), 1))):
            p, s = layer.init_with_state(k, shape)
            params.append(p)
            states.append(s)
            shape = layer.output_shape(shape)
        return tuple(params), tuple(states)

    def init(self, key: jax.Array, input_shape: Shape) -> tuple[Any, ...]:
        return self.init_with_state(key, input_shape)[0]

    def apply(self, params: Sequence[Any], x: jax.Array) -> jax.Array:
        _check_entries("Sequential", "params", params, len(self.layers))
        return self._run(lambda i, layer, x: (layer.apply(params[i], x), None), x)[0]

    def _run(self, call: Callable[[int, Layer, jax.Array], tuple[jax.Array, Any]], x: jax.Array
             ) -> tuple[jax.Array, tuple]:
        """Threads ``x`` through ``call(i, layer, x) -> (x, state_i)``; an input error inside
        is located (``Sequential layer i``) and told the shape the model was built for."""
        states = []
        try:
            for i, layer in enumerate(self.layers):
                x, s = _located(f"Sequential layer {i}", lambda: call(i, layer, x))
                states.append(s)
        except InputShapeError as e:
            if e.model_input is None:
                e.model_input = self.input_shape
            raise
        return x, tuple(states)

    def apply_with_state(self, params: Sequence[Any], state: Sequence[Any], x: jax.Array, *,
                         train: bool = False, key: jax.Array | None = None) -> tuple[jax.Array, tuple]:
        _check_entries("Sequential", "params", params, len(self.layers))
        _check_entries("Sequential", "state", state, len(self.layers))
        return self._run(
            lambda i, layer, x: layer.apply_with_state(params[i], state[i], x, train=train, key=_fold(key, i)), x)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def with_inferred_sizes(self, input_shape: Shape) -> "Sequential":
        bound, shape = [], tuple(input_shape)
        for layer in self.layers:
            bound.append(layer.with_inferred_sizes(shape))
            shape = layer.output_shape(shape)
        return Sequential(*bound, input_shape=self.input_shape)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): " + _indent(repr(l)) for i, l in enumerate(self.layers))
        return f"Sequential({inner}\n)"


@dataclasses.dataclass(frozen=True, repr=False)
class Residual(Layer):
    """``activation(body(x) + shortcut(x))``: d2l's residual block (identity shortcut when
    ``shortcut`` is None; a 1x1 strided ``Conv2D`` where the shapes change).

    Parameters (and state): ``{"body": ..., "shortcut": ...}`` (``{}`` for the identity).

    Example:
      >>> from jconv import nn
      >>> block = nn.Residual(nn.Sequential(nn.Conv2D(4, 3, padding=1), nn.BatchNorm()),
      ...                     activation="relu")
      >>> block.output_shape((2, 4, 8, 8))
      (2, 4, 8, 8)
    """

    body: Layer
    shortcut: Layer | None = None
    activation: Any = None

    def __post_init__(self) -> None:
        _check_layers("Residual", [self.body] + ([self.shortcut] if self.shortcut is not None else []))
        _check_activation("Residual", self.activation)

    @property
    def has_state(self) -> bool:  # type: ignore[override]
        return any(c.has_state for c in (self.body, self.shortcut) if c is not None)

    @property
    def needs_key(self) -> bool:  # type: ignore[override]
        return any(c.needs_key for c in (self.body, self.shortcut) if c is not None)

    def output_shape(self, input_shape: Shape) -> Shape:
        out = self.body.output_shape(input_shape)
        short = tuple(input_shape) if self.shortcut is None else self.shortcut.output_shape(input_shape)
        if out != short:
            raise ValueError(
                f"Residual: the body gives {out} but the shortcut gives {short} for input "
                f"{tuple(input_shape)}; give a `shortcut` (e.g. a 1x1 Conv2D with the body's "
                f"channels and strides) that matches"
            )
        return out

    def init_with_state(self, key: jax.Array, input_shape: Shape) -> tuple[dict, dict]:
        self.output_shape(input_shape)
        kb, ks = jax.random.split(key)
        pb, sb = self.body.init_with_state(kb, input_shape)
        ps, ss = ({}, {}) if self.shortcut is None else self.shortcut.init_with_state(ks, input_shape)
        return {"body": pb, "shortcut": ps}, {"body": sb, "shortcut": ss}

    def init(self, key: jax.Array, input_shape: Shape) -> dict:
        return self.init_with_state(key, input_shape)[0]

    def apply(self, params: dict, x: jax.Array) -> jax.Array:
        y = _located("Residual body", lambda: self.body.apply(params["body"], x))
        short = x if self.shortcut is None else _located(
            "Residual shortcut", lambda: self.shortcut.apply(params["shortcut"], x))
        return _act(self.activation, y + short)

    def apply_with_state(self, params: dict, state: dict, x: jax.Array, *, train: bool = False,
                         key: jax.Array | None = None) -> tuple[jax.Array, dict]:
        y, sb = _located("Residual body", lambda: self.body.apply_with_state(
            params["body"], state["body"], x, train=train, key=_fold(key, 0)))
        short, ss = x, state["shortcut"]
        if self.shortcut is not None:
            short, ss = _located("Residual shortcut", lambda: self.shortcut.apply_with_state(
                params["shortcut"], ss, x, train=train, key=_fold(key, 1)))
        return _act(self.activation, y + short), {"body": sb, "shortcut": ss}

    def with_inferred_sizes(self, input_shape: Shape) -> "Residual":
        short = None if self.shortcut is None else self.shortcut.with_inferred_sizes(input_shape)
        return dataclasses.replace(self, body=self.body.with_inferred_sizes(input_shape), shortcut=short)

    def __repr__(self) -> str:
        s = f"Residual(\n  (body): {_indent(repr(self.body))}"
        if self.shortcut is not None:
            s += f"\n  (shortcut): {_indent(repr(self.shortcut))}"
        if self.activation is not None:
            s += f"\n  (activation): Activation({_act_name(self.activation)})"
        return s + "\n)"


@dataclasses.dataclass(frozen=True, repr=False, init=False)
class Concat(Layer):
    """Every branch applied to the same input, outputs concatenated along ``axis`` (the channel
    axis by default): Inception blocks, DenseNet. Parameters (and state): a tuple per branch.

    Example:
      >>> from jconv import nn
      >>> nn.Concat(nn.Conv2D(2, 1), nn.Conv2D(3, 3, padding=1)).output_shape((1, 4, 8, 8))
      (1, 5, 8, 8)
    """

    branches: tuple[Layer, ...]
    axis: int = 1

    def __init__(self, *branches: Layer, axis: int = 1) -> None:
        if not branches:
            raise ValueError("Concat: needs at least one branch")
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"Concat: `axis` must be an int, got {axis!r}")
        object.__setattr__(self, "branches", _check_layers("Concat", branches))
        object.__setattr__(self, "axis", axis)

    @property
    def has_state(self) -> bool:  # type: ignore[override]
        return any(b.has_state for b in self.branches)

    @property
    def needs_key(self) -> bool:  # type: ignore[override]
        return any(b.needs_key for b in self.branches)

    def output_shape(self, input_shape: Shape) -> Shape:
        shapes = [b.output_shape(input_shape) for b in self.branches]
        rank = len(shapes[0])
        if not -rank <= self.axis < rank:
            raise ValueError(f"Concat: `axis` {self.axis} is out of range for outputs of rank {rank}")
        ax = self.axis % rank
        drop = lambda s: s[:ax] + s[ax + 1:]  # noqa: E731
        if any(len(s) != rank or drop(s) != drop(shapes[0]) for s in shapes):
            raise ValueError(
                f"Concat: the branches' outputs {shapes} differ on axes other than {self.axis} "
                f"for input {tuple(input_shape)}"
            )
        return shapes[0][:ax] + (sum(s[ax] for s in shapes),) + shapes[0][ax + 1:]

    def init_with_state(self, key: jax.Array, input_shape: Shape) -> tuple[tuple, tuple]:
        self.output_shape(input_shape)
        pairs = [b.init_with_state(k, input_shape)
                 for b, k in zip(self.branches, jax.random.split(key, len(self.branches)))]
        return tuple(p for p, _ in pairs), tuple(s for _, s in pairs)

    def init(self, key: jax.Array, input_shape: Shape) -> tuple:
        return self.init_with_state(key, input_shape)[0]

    def apply(self, params: Sequence[Any], x: jax.Array) -> jax.Array:
        _check_entries("Concat", "params", params, len(self.branches))
        outs = [_located(f"Concat branch {i}", lambda: b.apply(p, x))
                for i, (b, p) in enumerate(zip(self.branches, params))]
        return jnp.concatenate(outs, axis=self.axis)

    def apply_with_state(self, params: Sequence[Any], state: Sequence[Any], x: jax.Array, *,
                         train: bool = False, key: jax.Array | None = None) -> tuple[jax.Array, tuple]:
        _check_entries("Concat", "params", params, len(self.branches))
        _check_entries("Concat", "state", state, len(self.branches))
        outs = [_located(f"Concat branch {i}", lambda: b.apply_with_state(p, s, x, train=train, key=_fold(key, i)))
                for i, (b, p, s) in enumerate(zip(self.branches, params, state))]
        return jnp.concatenate([y for y, _ in outs], axis=self.axis), tuple(s for _, s in outs)

    def with_inferred_sizes(self, input_shape: Shape) -> "Concat":
        return Concat(*(b.with_inferred_sizes(input_shape) for b in self.branches), axis=self.axis)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): " + _indent(repr(b)) for i, b in enumerate(self.branches))
        return f"Concat(axis={self.axis},{inner}\n)"


@dataclasses.dataclass(frozen=True, repr=False)
class Lambda(Layer):
    """A parameter-free layer from a pure function of the input (reshapes, resizes, custom
    activations). Its ``output_shape`` is computed with ``jax.eval_shape`` (float32 input).

    Example:
      >>> from jconv import nn
      >>> nn.Lambda(lambda x: x[:, :, ::2, ::2]).output_shape((1, 3, 8, 8))
      (1, 3, 4, 4)
    """

    fn: Callable[[jax.Array], jax.Array]

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"Lambda: `fn` must be a function, got {self.fn!r}")

    def apply(self, params: Any, x: jax.Array) -> jax.Array:
        return self.fn(x)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = _input_shape("Lambda", input_shape, range(0, 9))
        out = jax.eval_shape(self.fn, jax.ShapeDtypeStruct(shape, jnp.float32))
        if not hasattr(out, "shape"):
            raise ValueError(f"Lambda: `fn` must return one array, got {out!r}")
        return tuple(out.shape)

    def __repr__(self) -> str:
        return f"Lambda({_act_name(self.fn)})"

