"""Forward passes against the slow NumPy reference, over random configurations (hypothesis)."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import jconv as jc
from tests import reference as ref


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    c = groups * draw(st.integers(1, 2))
    o = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    eh, ew = (kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1
    h = draw(st.integers(max(1, eh - sum(pad[0])), 12))
    w = draw(st.integers(max(1, ew - sum(pad[1])), 12))
    n = draw(st.integers(1, 2))
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    use_bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return n, c, h, w, o, groups, (kh, kw), strides, pad, dil, layout, use_bias, seed


def _to_layout(x, layout):
    return x if layout == "NCHW" else np.transpose(x, (0, 2, 3, 1))


@given(conv_cases())
def test_conv2d_matches_reference(case):
    n, c, h, w, o, groups, k, strides, pad, dil, layout, use_bias, seed = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, h, w)).astype(np.float32)
    weight = rng.normal(size=(o, c // groups) + k).astype(np.float32)
    bias = rng.normal(size=(o,)).astype(np.float32) if use_bias else None
    expected = ref.conv2d(x, weight, bias, strides, pad, dil, groups)
    got = jc.conv2d(
        _to_layout(x, layout), weight, bias, strides=strides, padding=pad, dilation=dil,
        groups=groups, layout=layout, precision="highest",
    )
    np.testing.assert_allclose(_to_layout(expected, layout), got, rtol=1e-4, atol=1e-4)


@st.composite
def pool_cases(draw):
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    pad = ((draw(st.integers(0, ph - 1)), draw(st.integers(0, ph - 1))),
           (draw(st.integers(0, pw - 1)), draw(st.integers(0, pw - 1))))
    h = draw(st.integers(max(1, ph - sum(pad[0])), 11))
    w = draw(st.integers(max(1, pw - sum(pad[1])), 11))
    return (
        draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w, (ph, pw), strides, pad,
        draw(st.booleans()), draw(st.booleans()), draw(st.sampled_from(["NCHW", "NHWC"])),
        draw(st.integers(0, 2**16)),
    )


@given(pool_cases())
def test_pooling_matches_reference(case):
    n, c, h, w, pool, strides, pad, ceil_mode, cip, layout, seed = case
    x = np.random.default_rng(seed).normal(size=(n, c, h, w)).astype(np.float32)
    s = pool if strides is None else strides
    xl = _to_layout(x, layout)
    got_max, got_avg = jax.jit(lambda x: (  # one compiled program per example
        jc.max_pool2d(x, pool, strides, pad, ceil_mode=ceil_mode, layout=layout),
        jc.avg_pool2d(x, pool, strides, pad, ceil_mode=ceil_mode, count_include_pad=cip, layout=layout)))(xl)
    exp_max = ref.pool2d(x, pool, s, pad, "max", ceil_mode)
    exp_avg = ref.pool2d(x, pool, s, pad, "avg", ceil_mode, cip)
    np.testing.assert_array_equal(_to_layout(exp_max.astype(np.float32), layout), got_max)
    np.testing.assert_allclose(_to_layout(exp_avg, layout), got_avg, rtol=1e-5, atol=1e-6)


def test_reference_corr2d_is_the_seed_loop():
    X = np.arange(9.0).reshape(3, 3)
    K = np.array([[0.0, 1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(ref.corr2d(X, K), [[19, 25], [37, 43]])
    np.testing.assert_array_equal(
        ref.conv2d(X[None, None], K[None, None])[0, 0], ref.corr2d(X, K)
    )


def test_same_padding_keeps_size_at_stride_one_and_ceil_divides_with_strides():
    x = jnp.ones((1, 2, 7, 10))
    w = jnp.ones((3, 2, 4, 3))
    assert jc.conv2d(x, w, padding="same").shape == (1, 3, 7, 10)
    assert jc.conv2d(x, w, padding="SAME", strides=3).shape == (1, 3, 3, 4)
    assert jc.conv2d(x, w, padding="valid").shape == (1, 3, 4, 8)
    assert jc.max_pool2d(x, 3, 2, padding="same").shape == (1, 2, 4, 5)
    # 'same' puts the odd row at the bottom: a 2-row kernel of ones sums rows i and i+1.
    y = jc.conv2d(jnp.arange(3.0).reshape(1, 1, 3, 1), jnp.ones((1, 1, 2, 1)), padding="same")
    np.testing.assert_array_equal(y.ravel(), [1.0, 3.0, 2.0])


def test_global_pools():
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(jc.global_max_pool2d(x), x.max(axis=(2, 3), keepdims=True))
    np.testing.assert_allclose(
        jc.global_avg_pool2d(x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-6
    )
    xh = np.transpose(x, (0, 2, 3, 1))
    assert jc.global_avg_pool2d(xh, layout="NHWC").shape == (2, 1, 1, 3)
    assert jc.global_max_pool2d(x[0]).shape == (3, 1, 1)
    np.testing.assert_allclose(
        jc.global_max_pool2d(xh, layout="NHWC")[:, 0, 0], x.max(axis=(2, 3))
    )
