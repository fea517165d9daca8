"""The d2l chapter's functions, with its names and NumPy-like shapes, on lax and vmap."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jconv._src import checks


def _rank(fn: str, name: str, a: jax.Array, ndim: int, shape: str) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{fn}: `{name}` must be {ndim}-D {shape}, got shape {tuple(a.shape)}")


def _fits(fn: str, x: jax.Array, k: jax.Array) -> None:
    if k.shape[-2] > x.shape[-2] or k.shape[-1] > x.shape[-1]:
        raise ValueError(
            f"{fn}: the kernel {tuple(k.shape[-2:])} is larger than the input "
            f"{tuple(x.shape[-2:])}"
        )


def _floats(fn: str, X: Any, K: Any) -> tuple[jax.Array, jax.Array]:
    X, K = checks.array(fn, "X", X), checks.array(fn, "K", K)
    dtype = checks.float_dtype(X, K)
    return checks.to_float(X, dtype), checks.to_float(K, dtype)


def _multi_channel(fn: str, X: Any, K: Any, k_shape: str) -> tuple[jax.Array, jax.Array]:
    """Checks ``X`` ``(C, H, W)`` against a kernel ``K`` of shape ``k_shape`` (its channel axis is
    ``-3``: ``(C, kh, kw)`` or ``(O, C, kh, kw)``); returns both as floats."""
    X, K = _floats(fn, X, K)
    _rank(fn, "X", X, 3, "(C, H, W)")
    _rank(fn, "K", K, k_shape.count(",") + 1, k_shape)
    if X.shape[0] != K.shape[-3]:
        has = f"has {K.shape[0]}" if K.ndim == 3 else f"expects {K.shape[1]} at axis 1"
        raise ValueError(
            f"{fn}: `X` has {X.shape[0]} channels but `K` {has} "
            f"(shapes {tuple(X.shape)} and {tuple(K.shape)})"
        )
    _fits(fn, X, K)
    return X, K


def _corr2d(X: jax.Array, K: jax.Array) -> jax.Array:
    y = lax.conv_general_dilated(X[None, None], K[None, None], (1, 1), "VALID")
    return y[0, 0]


def corr2d(X: jax.Array, K: jax.Array) -> jax.Array:
    """2-D cross-correlation of one channel: d2l's ``corr2d``.

    ``Y[i, j] = sum(X[i:i + kh, j:j + kw] * K)``, computed by one ``lax`` convolution.

    Args:
      X: ``(H, W)``.
      K: ``(kh, kw)``, no larger than ``X``.

    Returns:
      ``(H - kh + 1, W - kw + 1)``; integer inputs give float32.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> X = jnp.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
      >>> K = jnp.array([[0, 1], [2, 3]])
      >>> jc.corr2d(X, K)
      Array([[19., 25.],
             [37., 43.]], dtype=float32)
    """
    fn = "corr2d"
    X, K = _floats(fn, X, K)
    _rank(fn, "X", X, 2, "(H, W)")
    _rank(fn, "K", K, 2, "(kh, kw)")
    _fits(fn, X, K)
    return _corr2d(X, K)


def corr2d_multi_in(X: jax.Array, K: jax.Array) -> jax.Array:
    """Cross-correlation over several input channels, summed: d2l's ``corr2d_multi_in``.

    Args:
      X: ``(C, H, W)``.
      K: ``(C, kh, kw)``.

    Returns:
      ``(H - kh + 1, W - kw + 1)``: ``sum_c corr2d(X[c], K[c])`` (``vmap`` over channels).

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> X = jnp.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]],
      ...                [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
      >>> K = jnp.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]])
      >>> jc.corr2d_multi_in(X, K)
      Array([[ 56.,  72.],
             [104., 120.]], dtype=float32)
    """
    X, K = _multi_channel("corr2d_multi_in", X, K, "(C, kh, kw)")
    return _corr2d_multi_in(X, K)


def _corr2d_multi_in(X: jax.Array, K: jax.Array) -> jax.Array:
    return jax.vmap(_corr2d)(X, K).sum(axis=0)


def corr2d_multi_in_out(X: jax.Array, K: jax.Array) -> jax.Array:
    """Several output channels: d2l's ``corr2d_multi_in_out`` (``vmap`` over ``K``'s axis 0).

    Args:
      X: ``(C, H, W)``.
      K: ``(O, C, kh, kw)``.

    Returns:
      ``(O, H - kh + 1, W - kw + 1)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> X = jnp.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]],
      ...                [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
      >>> K = jnp.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]])
      >>> K = jnp.stack((K, K + 1, K + 2))
      >>> K.shape, jc.corr2d_multi_in_out(X, K).shape
      ((3, 2, 2, 2), (3, 2, 2))
    """
    X, K = _multi_channel("corr2d_multi_in_out", X, K, "(O, C, kh, kw)")
    return jax.vmap(_corr2d_multi_in, in_axes=(None, 0))(X, K)


def corr2d_multi_in_out_1x1(X: jax.Array, K: jax.Array) -> jax.Array:
    """A 1x1 convolution as one matrix product: d2l's ``corr2d_multi_in_out_1x1``.

    Args:
      X: ``(C, H, W)``.
      K: ``(O, C, 1, 1)``.

    Returns:
      ``(O, H, W)``: ``K.reshape(O, C) @ X.reshape(C, H * W)``, reshaped.

    Example:
      >>> import jax
      >>> import jconv as jc
      >>> kx, kk = jax.random.split(jax.random.key(0))
      >>> X = jax.random.uniform(kx, (3, 3, 3))
      >>> K = jax.random.uniform(kk, (2, 3, 1, 1))
      >>> Y1 = jc.corr2d_multi_in_out_1x1(X, K)
      >>> Y2 = jc.corr2d_multi_in_out(X, K)
      >>> bool(abs(Y1 - Y2).sum() < 1e-6)
      True
    """
    fn = "corr2d_multi_in_out_1x1"
    X, K = _floats(fn, X, K)
    _rank(fn, "X", X, 3, "(C, H, W)")
    _rank(fn, "K", K, 4, "(O, C, 1, 1)")
    if K.shape[2:] != (1, 1):
        raise ValueError(f"{fn}: `K` must be (O, C, 1, 1), got shape {tuple(K.shape)}")
    c, h, w = X.shape
    if K.shape[1] != c:
        raise ValueError(
            f"{fn}: `X` has {c} channels but `K` expects {K.shape[1]} at axis 1 "
            f"(shapes {tuple(X.shape)} and {tuple(K.shape)})"
        )
    Y = jnp.dot(K.reshape(K.shape[0], c), X.reshape(c, h * w))
    return Y.reshape(K.shape[0], h, w)


def pool2d(X: jax.Array, pool_size: int | checks.Pair, mode: str = "max") -> jax.Array:
    """d2l's ``pool2d``: stride-1, unpadded max or average pooling of one channel.

    Args:
      X: ``(H, W)``.
      pool_size: int or ``(ph, pw)``, no larger than ``X``.
      mode: ``"max"`` or ``"avg"``.

    Returns:
      ``(H - ph + 1, W - pw + 1)``; integer inputs give float32.

    Example:
      >>> import jax.numpy as jnp
      >>> import jconv as jc
      >>> X = jnp.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
      >>> jc.pool2d(X, (2, 2))
      Array([[4., 5.],
             [7., 8.]], dtype=float32)
      >>> jc.pool2d(X, (2, 2), "avg")
      Array([[2., 3.],
             [5., 6.]], dtype=float32)
    """
    fn = "pool2d"
    X = checks.array(fn, "X", X)
    X = checks.to_float(X, checks.float_dtype(X))
    _rank(fn, "X", X, 2, "(H, W)")
    pool = checks.pair(fn, "pool_size", pool_size)
    mode = checks.check_mode(fn, mode, ("max", "avg"))
    if pool[0] > X.shape[0] or pool[1] > X.shape[1]:
        raise ValueError(f"{fn}: `pool_size` {pool} is larger than the input {tuple(X.shape)}")
    if mode == "max":
        return lax.reduce_window(X, np.array(-np.inf, X.dtype), lax.max, pool, (1, 1), "VALID")
    sums = lax.reduce_window(X, np.array(0, X.dtype), lax.add, pool, (1, 1), "VALID")
    return sums / (pool[0] * pool[1])
