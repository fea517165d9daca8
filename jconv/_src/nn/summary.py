"""``summary``: a table of a network's layers, output shapes and parameter counts."""

from __future__ import annotations

import math

import jax

from jconv._src.nn.base import Layer, Shape
from jconv._src.nn.containers import Sequential


def summary(layer: Layer, input_shape: Shape) -> str:
    """A table, one row per (leaf) layer: its repr, output shape and parameter count.

    The output shapes are those d2l prints (``Conv2D output shape: (1, 6, 28, 28)``).

    Example:
      >>> from jconv import nn
      >>> print(nn.summary(nn.Sequential(nn.Conv2D(2, 3), nn.Flatten()), (1, 1, 4, 4)))
      layer                                              output shape       params
      Conv2D(1 -> 2, kernel_size=(3, 3), stride=(1, 1))  (1, 2, 2, 2)           20
      Flatten                                            (1, 8)                  0
      total                                                                     20
    """
    rows = []
    key = jax.random.key(0)

    def walk(l: Layer, shape: Shape) -> Shape:
        if isinstance(l, Sequential):
            for child in l.layers:
                shape = walk(child, shape)
            return shape
        params = jax.eval_shape(lambda k: l.init(k, shape), key)
        count = sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(params))
        out = l.output_shape(shape)
        rows.append((repr(l.bind(shape)), str(out), count))
        return out

    walk(layer, tuple(input_shape))
    w = max(48, *(len(r[0]) + 2 for r in rows))
    lines = [f"{'layer':<{w}}{'output shape':<18}{'params':>7}"]
    lines += [f"{r:<{w}}{s:<18}{c:>7,}" for r, s, c in rows]
    lines.append(f"{'total':<{w}}{'':<18}{sum(r[2] for r in rows):>7,}")
    return "\n".join(lines)
