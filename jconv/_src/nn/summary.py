"""``summary``: a table of a network's layers, output shapes and parameter counts."""

from __future__ import annotations

import math

import jax

from jconv._src.nn.base import Layer, Shape, _act_name
from jconv._src.nn.containers import Concat, Residual, Sequential


def _children(layer: Layer) -> list[Layer] | None:
    """The children of a container, each applied to the container's input (``Concat``,
    ``Residual``) or in a chain (``Sequential``); None for a leaf."""
    if isinstance(layer, Sequential):
        return list(layer.layers)
    if isinstance(layer, Residual):
        return [layer.body] + ([layer.shortcut] if layer.shortcut is not None else [])
    if isinstance(layer, Concat):
        return list(layer.branches)
    return None


def _label(layer: Layer) -> str:
    if isinstance(layer, Residual) and layer.activation is not None:
        return f"Residual(activation={_act_name(layer.activation)})"
    return f"Concat(axis={layer.axis})" if isinstance(layer, Concat) else type(layer).__name__


def summary(layer: Layer, input_shape: Shape) -> str:
    """A table, one row per layer: its repr, output shape and parameter count.

    The output shapes are those d2l prints (``Conv2D output shape: (1, 6, 28, 28)``). The
    children of a top-level ``Sequential`` are rows of their own; a nested container
    (``Sequential``, ``Residual``, ``Concat``) has a row with its output shape and parameter
    count, followed by its children, indented.

    Example:
      >>> from jconv import nn
      >>> print(nn.summary(nn.Sequential(nn.Conv2D(2, 3), nn.Flatten()), (1, 1, 4, 4)))
      layer                                              output shape       params
      Conv2D(1 -> 2, kernel_size=(3, 3), stride=(1, 1))  (1, 2, 2, 2)           20
      Flatten                                            (1, 8)                  0
      total                                                                     20
    """
    rows: list[tuple[str, str, int]] = []
    key = jax.random.key(0)

    def walk(l: Layer, shape: Shape, depth: int, row: bool = True) -> tuple[Shape, int]:
        out = l.output_shape(shape)
        children = _children(l)
        if children is None:
            params = jax.eval_shape(lambda k: l.init(k, shape), key)
            count = sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(params))
            rows.append(("  " * depth + repr(l.with_inferred_sizes(shape)), str(out), count))
            return out, count
        at = len(rows)
        count, child_shape = 0, shape
        for child in children:
            child_out, c = walk(child, child_shape, depth + row)
            count += c
            if isinstance(l, Sequential):
                child_shape = child_out
        if row:
            rows.insert(at, ("  " * depth + _label(l), str(out), count))
        return out, count

    _, total = walk(layer, tuple(input_shape), 0, row=not isinstance(layer, Sequential))
    w = max(48, *(len(r[0]) + 2 for r in rows))
    cw = max(7, len(f"{total:,}"))
    lines = [f"{'layer':<{w}}{'output shape':<18}{'params':>{cw}}"]
    lines += [f"{r:<{w}}{s:<18}{c:>{cw},}" for r, s, c in rows]
    lines.append(f"{'total':<{w}}{'':<18}{total:>{cw},}")
    return "\n".join(lines)
