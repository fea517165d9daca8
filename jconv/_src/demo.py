"""``jconv demo``: every output printed in the seed notebooks (d2l's "Convolutions"), computed
by jconv, section by section. Each section is plain user code; ``examples/`` has one script per
section with the same code."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import jconv as jc
from jconv import nn


def show(a: jax.Array) -> str:
    """Formats an array as the seeds print one (NumPy's repr of the values)."""
    return np.array2string(np.asarray(a), separator=" ")


def cross_correlation() -> None:
    X = jnp.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    K = jnp.array([[0, 1], [2, 3]])
    print(show(jc.corr2d(X, K)))


def edge_detection() -> None:
    X = jnp.ones((6, 8)).at[:, 2:6].set(0)
    print(show(X))
    K = jnp.array([[1, -1]])
    Y = jc.corr2d(X, K)
    print(show(Y))
    print(show(jc.corr2d(X.T, K)))


# The seed's run started from this kernel: solving its 10 printed SGD steps backwards from the
# printed learned kernel [[0.9895, -0.9873705]] gives it (tests/test_seeds.py re-derives it).
SEED_RUN_INIT = (0.00683409, 0.01299842)


def learn_kernel(init: Callable | None = None, steps: int = 10, every: int = 2) -> jax.Array:
    """Section 8.2.4: learn the edge kernel by gradient descent on the squared error."""
    X = jnp.ones((6, 8)).at[:, 2:6].set(0)
    Y = jc.corr2d(X, jnp.array([[1, -1]]))
    conv2d = nn.Conv2D(1, kernel_size=(1, 2), weight_init=init or nn.gluon_uniform())
    X, Y = X.reshape(1, 1, 6, 8), Y.reshape(1, 1, 6, 7)
    params = conv2d.init(jax.random.key(0), X.shape)

    @jax.jit
    def step(params):
        loss = lambda w: ((conv2d.apply({**params, "weight": w}, X) - Y) ** 2).sum()
        l, g = jax.value_and_grad(loss)(params["weight"])
        # As the seed: only the weight learns (the bias stays at its initial 0).
        return {**params, "weight": params["weight"] - 3e-2 * g}, l

    for i in range(steps):
        params, l = step(params)
        if (i + 1) % every == 0:
            print("batch %d, loss %.3f" % (i + 1, l))
    print(show(params["weight"].reshape(1, 2)))
    print(conv2d.with_inferred_sizes(X.shape))
    w = params["weight"]
    print(f"Parameter weight (shape={tuple(w.shape)}, dtype={w.dtype})")
    return w


def learn_kernel_seed_run() -> None:
    """The seed's exact run: its initial kernel, every batch printed."""
    w0 = jnp.array(SEED_RUN_INIT).reshape(1, 1, 1, 2)
    learn_kernel(init=lambda key, shape, dtype: w0.astype(dtype), every=1)


def comp_conv2d(conv2d: nn.Conv2D, X: jax.Array) -> jax.Array:
    """The seeds' helper: add batch and channel axes, apply a fresh layer, drop them again."""
    X = X.reshape((1, 1) + X.shape)
    Y = conv2d.apply(conv2d.init(jax.random.key(0), X.shape), X)
    return Y.reshape(Y.shape[2:])


def padding_and_stride() -> None:
    X = jax.random.uniform(jax.random.key(0), (8, 8))
    print(comp_conv2d(nn.Conv2D(1, kernel_size=3, padding=1), X).shape)
    print(comp_conv2d(nn.Conv2D(1, kernel_size=(5, 3), padding=(2, 1)), X).shape)
    print(comp_conv2d(nn.Conv2D(1, kernel_size=3, padding=1, strides=2), X).shape)
    print(comp_conv2d(nn.Conv2D(1, kernel_size=(3, 5), padding=(0, 1), strides=(3, 4)), X).shape)


def channels() -> None:
    X = jnp.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
    K = jnp.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]])
    print(K.shape)
    print(show(jc.corr2d_multi_in(X, K)))
    K = jnp.stack((K, K + 1, K + 2))
    print((K.shape, jc.corr2d_multi_in_out(X, K).shape))
    print(show(jc.corr2d_multi_in_out(X, K)))
    kx, kk = jax.random.split(jax.random.key(0))
    X = jax.random.uniform(kx, (3, 3, 3))
    K = jax.random.uniform(kk, (2, 3, 1, 1))
    Y1 = jc.corr2d_multi_in_out_1x1(X, K)
    Y2 = jc.corr2d_multi_in_out(X, K)
    print(bool(jnp.abs(Y1 - Y2).sum() < 1e-6))


def pooling() -> None:
    X = jnp.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    print(show(jc.pool2d(X, (2, 2))))
    print(show(jc.pool2d(X, (2, 2), "avg")))
    X = jnp.arange(16, dtype=jnp.float32).reshape(1, 1, 4, 4)
    print(show(X))
    print(show(nn.MaxPool2D(3).apply({}, X)))
    print(show(nn.MaxPool2D(3, padding=1, strides=2).apply({}, X)))
    print(show(nn.MaxPool2D((2, 3), padding=(1, 2), strides=(2, 3)).apply({}, X)))
    X = jnp.concatenate((X, X + 1), axis=1)
    print(show(X))
    # The seed printed one channel here (its cells ran out of order); both channels are pooled.
    print(show(nn.MaxPool2D(3, padding=1, strides=2).apply({}, X)))


SECTIONS: list[tuple[str, Callable[[], object]]] = [
    ("8.2.1 The cross-correlation operator", cross_correlation),
    ("8.2.3 Object edge detection in images", edge_detection),
    ("8.2.4 Learning a kernel (Gluon's Uniform(-0.07, 0.07) initializer)", learn_kernel),
    ("8.2.4 Learning a kernel (the seed's own run, from its initial kernel)", learn_kernel_seed_run),
    ("8.3 Padding and stride", padding_and_stride),
    ("8.4 Multiple input and output channels", channels),
    ("8.5 Pooling", pooling),
]


def main() -> None:
    for title, section in SECTIONS:
        print(f"## {title}")
        section()
        print()
