"""The jit / vmap / dtype contract of every op."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jconv as jc

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4, 9, 8)).astype(np.float32)
W = RNG.normal(size=(6, 2, 3, 3)).astype(np.float32)
B = RNG.normal(size=(6,)).astype(np.float32)

OPS = {
    "conv2d": lambda x: jc.conv2d(x, W, B, strides=2, padding=1, groups=2),
    "conv2d_nhwc": lambda x: jc.conv2d(
        jnp.transpose(x, (0, 2, 3, 1)), W, B, padding="same", groups=2, layout="NHWC"
    ),
    "max_pool2d": lambda x: jc.max_pool2d(x, 3, 2, 1, ceil_mode=True),
    "avg_pool2d": lambda x: jc.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
    "global_max_pool2d": jc.global_max_pool2d,
    "global_avg_pool2d": jc.global_avg_pool2d,
}


@pytest.mark.parametrize("name", OPS)
def test_jit_equals_eager(name):
    op = OPS[name]
    np.testing.assert_allclose(jax.jit(op)(X), op(X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", OPS)
def test_second_call_with_same_shapes_does_not_retrace(name):
    traces = 0

    @jax.jit
    def f(x):
        nonlocal traces
        traces += 1
        return OPS[name](x)

    f(X)
    f(X + 1.0)
    assert traces == 1


@pytest.mark.parametrize(
    "name", ["conv2d", "max_pool2d", "avg_pool2d", "global_max_pool2d", "global_avg_pool2d"]
)
def test_vmap_over_unbatched_equals_batched(name):
    op = {
        "conv2d": functools.partial(jc.conv2d, weight=W, bias=B, strides=2, padding=1, groups=2),
        "max_pool2d": functools.partial(jc.max_pool2d, pool_size=3, strides=2, padding=1),
        "avg_pool2d": functools.partial(jc.avg_pool2d, pool_size=(2, 3), ceil_mode=True),
        "global_max_pool2d": jc.global_max_pool2d,
        "global_avg_pool2d": jc.global_avg_pool2d,
    }[name]
    batched = op(X)
    np.testing.assert_allclose(jax.vmap(op)(X), batched, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(op(X[1]), batched[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
@pytest.mark.parametrize("name", OPS)
def test_float_dtype_is_preserved(name, dtype):
    y = OPS[name](X.astype(dtype)) if name.startswith(("max", "avg", "global")) else None
    if y is None:
        w16 = W.astype(dtype)
        y = jc.conv2d(X.astype(dtype), w16, B.astype(dtype), padding=1, groups=2)
    assert y.dtype == dtype


def test_low_precision_conv_is_close_to_float32():
    y32 = jc.conv2d(X, W, B, padding=1, groups=2)
    y16 = jc.conv2d(X.astype(jnp.bfloat16), W.astype(jnp.bfloat16), B.astype(jnp.bfloat16),
                    padding=1, groups=2)
    np.testing.assert_allclose(y16.astype(np.float32), y32, rtol=0.1, atol=0.15)


def test_integer_inputs_are_promoted_to_float32():
    xi = np.arange(2 * 16).reshape(1, 2, 4, 4)
    wi = np.ones((1, 2, 2, 2), np.int32)
    for y in (
        jc.conv2d(xi, wi),
        jc.max_pool2d(xi, 2),
        jc.avg_pool2d(xi, 2),
        jc.global_avg_pool2d(xi),
        jc.corr2d(xi[0, 0], wi[0, 0]),
        jc.pool2d(xi[0, 0], 2, "avg"),
    ):
        assert y.dtype == jnp.float32
    np.testing.assert_array_equal(jc.avg_pool2d(xi, 2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_precision_is_accepted():
    for p in (None, "highest", jax.lax.Precision.HIGHEST, ("default", "highest")):
        np.testing.assert_allclose(
            jc.conv2d(X, W, groups=2, precision=p), jc.conv2d(X, W, groups=2), rtol=1e-4, atol=1e-4
        )


def test_grad_under_jit_and_vmap_compose():
    def loss(w, x):
        return (jc.max_pool2d(jc.conv2d(x, w, groups=2, padding=1), 2) ** 2).sum()

    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(W, X)
    assert per_example.shape == (3,) + W.shape
    np.testing.assert_allclose(
        per_example.sum(0), jax.grad(loss)(W, X), rtol=1e-4, atol=1e-3
    )
