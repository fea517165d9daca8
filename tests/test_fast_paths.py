"""Each fast path equals its reference formulation in values and gradients.

* Max pooling by strided slices (CPU) against ``reduce_window`` (whose
  gradient is ``select_and_scatter``) and against PyTorch, with many ties and NaN.
* Stride-1 convolution with the padding passed to XLA against explicit ``jnp.pad`` + VALID.
"""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from jax import lax

import jconv as jc
from jconv._src import pooling
from jconv._src.checks import spatial_dims


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, kh + 2)), draw(st.integers(1, kw + 2))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    h, w = draw(st.integers(max(1, kh - 2 * ph), 11)), draw(st.integers(max(1, kw - 2 * pw), 11))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    ceil = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    nans = draw(st.integers(0, 3))
    return (n, c, h, w), (kh, kw), (sh, sw), ((ph, ph), (pw, pw)), ceil, layout, seed, nans


def _pool_inputs(shape, layout, seed, nans):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=shape).astype(np.float32)  # few values: many ties
    for _ in range(nans):
        x[tuple(rng.integers(0, d) for d in shape)] = np.nan
    if layout == "NHWC":
        x = np.transpose(x, (0, 2, 3, 1))
    return x, rng


def _both(x, pool, strides, padding, ceil, layout):
    geo = pooling.pool_geometry("t", spatial_dims(x.shape, layout), pool, strides, padding, ceil)
    fast = lambda x: pooling._max_pool_slices(x, pool, strides, geo, layout)  # noqa: E731
    ref = lambda x: pooling._max_pool_reduce_window(x, pool, strides, geo, layout)  # noqa: E731
    return fast, ref


@settings(max_examples=60, deadline=None)
@given(pool_cases())
def test_max_pool_slices_equals_reduce_window(case):
    shape, pool, strides, padding, ceil, layout, seed, _ = case
    x, rng = _pool_inputs(shape, layout, seed, nans=0)
    fast, ref = _both(x, pool, strides, padding, ceil, layout)
    y = jax.jit(fast)(x)
    np.testing.assert_array_equal(y, ref(x))
    g = rng.normal(size=y.shape).astype(np.float32)
    vjp = lambda f: jax.jit(lambda x, g: jax.vjp(f, x)[1](g)[0])(x, g)  # noqa: E731
    # Same positions (first maximum on ties); overlapping windows may sum in another order.
    np.testing.assert_allclose(vjp(fast), vjp(ref), rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(pool_cases())
def test_max_pool_slices_equals_torch_with_nan(torch, case):
    shape, pool, strides, padding, ceil, layout, seed, nans = case
    if layout == "NHWC" or any(p > k // 2 for (p, _), k in zip(padding, pool)):
        return  # torch: NCHW only, padding at most half the window
    x, rng = _pool_inputs(shape, layout, seed, nans)
    fast, _ = _both(x, pool, strides, padding, ceil, layout)
    y, vjp = jax.vjp(fast, x)
    g = rng.normal(size=y.shape).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, pool, strides, [p for p, _ in padding], ceil_mode=ceil)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(y, ty.detach().numpy())  # NaN where torch has NaN
    np.testing.assert_allclose(vjp(g)[0], tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pool,strides", [(2, 2), ((2, 3), (2, 4)), (3, 2)])
def test_max_pool2d_uses_the_slices_on_cpu(pool, strides):
    jaxpr = str(jax.make_jaxpr(lambda x: jc.max_pool2d(x, pool, strides))(jnp.zeros((1, 1, 8, 8))))
    assert "reduce_window_max" not in jaxpr and "custom_jvp_call" in jaxpr


@pytest.mark.parametrize("padding", [0, 1, ((2, 0), (1, 3))])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_stride_one_conv_equals_explicit_padding(padding, layout):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 7, 6) if layout == "NCHW" else (2, 7, 6, 3)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    per_side = padding if isinstance(padding, tuple) else ((padding, padding),) * 2
    axes = (2, 3) if layout == "NCHW" else (1, 2)

    def ref(x, w):
        widths = [(0, 0)] * 4
        widths[axes[0]], widths[axes[1]] = per_side
        return lax.conv_general_dilated(jnp.pad(x, widths), w, (1, 1), "VALID",
                                        dimension_numbers=(layout, "OIHW", layout))

    fast = lambda x, w: jc.conv2d(x, w, padding=padding, layout=layout)  # noqa: E731
    np.testing.assert_allclose(fast(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
    g = rng.normal(size=ref(x, w).shape).astype(np.float32)
    for a, b in zip(jax.vjp(fast, x, w)[1](g), jax.vjp(ref, x, w)[1](g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
