"""Each fast path equals its reference formulation in values and gradients.

* Max pooling by strided slices (CPU) against ``reduce_window`` (whose
  gradient is ``select_and_scatter``) and against PyTorch, with many ties and NaN.
* Stride-1 convolution with the padding passed to XLA against explicit ``jnp.pad`` + VALID.
* The CPU convolution (per-offset weight gradient, one-channel broadcast products) against
  one ``conv_general_dilated``: values, reverse and forward mode, second order.
"""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from jax import lax
from jax.test_util import check_grads

import jconv as jc
from jconv._src import onednn
from jconv._src.ops import conv_cpu, conv_dense, geometry, pooling_cpu
from jconv._src.platform import traced_as
from jconv._src.checks import spatial_dims
from tests.compiled import value_and_vjp


@pytest.fixture(autouse=True)
def _xla_convs():
    """These are the XLA formulations' tests: oneDNN (where built) is switched off."""
    with onednn.use("xla"):
        yield


@st.composite
def pool_cases(draw, torch_ok=False):
    """Pooling geometries; ``torch_ok``: only those PyTorch accepts (NCHW, padding <= window / 2)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, kh + 2)), draw(st.integers(1, kw + 2))
    ph = draw(st.integers(0, kh // 2 if torch_ok else kh - 1))
    pw = draw(st.integers(0, kw // 2 if torch_ok else kw - 1))
    h, w = draw(st.integers(max(1, kh - 2 * ph), 11)), draw(st.integers(max(1, kw - 2 * pw), 11))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    layout = draw(st.sampled_from(["NCHW"] if torch_ok else ["NCHW", "NHWC"]))
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
    geo = geometry.pool_geometry("t", spatial_dims(x.shape, layout), pool, strides, padding, ceil)
    fast = lambda x: pooling_cpu._max_pool_slices(x, pool, strides, geo, layout)  # noqa: E731
    ref = lambda x: pooling_cpu._max_pool_reduce_window(x, pool, strides, geo, layout)  # noqa: E731
    return fast, ref


@settings(max_examples=30, deadline=None)  # test_max_pool_slices_equals_torch_with_nan sweeps the same cases
@given(pool_cases())
def test_max_pool_slices_equals_reduce_window(case):
    shape, pool, strides, padding, ceil, layout, seed, _ = case
    x, rng = _pool_inputs(shape, layout, seed, nans=0)
    fast, ref = _both(x, pool, strides, padding, ceil, layout)
    g = rng.normal(size=jax.eval_shape(fast, x).shape).astype(np.float32)
    y, dx, y_ref, dx_ref = jax.jit(lambda x, g: value_and_vjp(fast, x, g) + value_and_vjp(ref, x, g))(x, g)
    np.testing.assert_array_equal(y, y_ref)
    # Same positions (first maximum on ties); overlapping windows may sum in another order.
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(pool_cases(torch_ok=True))
def test_max_pool_slices_equals_torch_with_nan(torch, case):
    shape, pool, strides, padding, ceil, layout, seed, nans = case
    x, rng = _pool_inputs(shape, layout, seed, nans)
    fast, _ = _both(x, pool, strides, padding, ceil, layout)
    g = rng.normal(size=jax.eval_shape(fast, x).shape).astype(np.float32)
    y, dx = jax.jit(lambda x, g: value_and_vjp(fast, x, g))(x, g)  # one compile per example
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, pool, strides, [p for p, _ in padding], ceil_mode=ceil)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(y, ty.detach().numpy())  # NaN where torch has NaN
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pool,strides", [(2, 2), ((2, 3), (2, 4)), (3, 2)])
def test_max_pool2d_uses_the_slices_on_cpu(pool, strides):
    jaxpr = _jaxpr(lambda x: jc.max_pool2d(x, pool, strides), jnp.zeros((1, 1, 8, 8)))
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


@pytest.mark.parametrize("shape, kernel, padding", [
    ((2, 2, 4, 4), (2, 2), ((2, 0), (1, 1))),  # jaxlib 0.10.2's implicit padding: NaN input gradient
    ((2, 2, 1, 1), (2, 2), ((2, 0), (1, 1))),  # ... and a wrong one (found by test_cpu_convs_equal_xla_conv)
    ((3, 2, 8, 4), (2, 2), ((3, 2), (3, 0))),
    ((2, 3, 7, 5), (2, 3), ((3, 0), (2, 0))),
])
def test_conv_padded_past_the_kernel_has_numpy_gradients(cpu_conv, shape, kernel, padding):
    """Padding wider than the kernel reaches (output rows that see only zeros): value and input
    gradient equal a NumPy loop over the kernel offsets, under each CPU backend."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32)
    w = rng.normal(size=(2, shape[1], *kernel)).astype(np.float32)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), *padding))
    oh, ow = xp.shape[2] - kernel[0] + 1, xp.shape[3] - kernel[1] + 1
    want = sum(np.einsum("oc,nchw->nohw", w[:, :, a, b], xp[:, :, a:a + oh, b:b + ow])
               for a in range(kernel[0]) for b in range(kernel[1]))
    g = rng.normal(size=want.shape)
    dxp = np.zeros_like(xp)
    for a in range(kernel[0]):
        for b in range(kernel[1]):
            dxp[:, :, a:a + oh, b:b + ow] += np.einsum("oc,nohw->nchw", w[:, :, a, b], g)
    want_dx = dxp[:, :, padding[0][0]:padding[0][0] + shape[2], padding[1][0]:padding[1][0] + shape[3]]
    y, vjp = jax.vjp(lambda x: jc.conv2d(x, w, padding=padding), x)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(vjp(g.astype(np.float32))[0], want_dx, rtol=1e-5, atol=1e-4)


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.sampled_from([(1, 1), (1, 1), (1, 3), (2, 2), (3, 3), (4, 2)]))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    h = draw(st.integers(max(1, (kh - 1) * dh + 1 - sum(pad[0])), 10))
    w = draw(st.integers(max(1, (kw - 1) * dw + 1 - sum(pad[1])), 10))
    n, c, o = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 5])), draw(st.integers(1, 4))
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    return (n, c, h, w), (o, c, kh, kw), (sh, sw), (dh, dw), pad, layout, draw(st.integers(0, 2**31 - 1))


def _conv_forms(case):
    """The CPU formulations (XLA's convolution with the per-offset weight gradient; all offsets as
    matmuls, which serves 1x1 kernels on large maps; for 1x1 kernels one matmul over the batch;
    where every window covers the map, the dense form)
    and the reference, for any geometry."""
    (n, c, h, w), wshape, strides, dilation, pad, layout, seed = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, h, w) if layout == "NCHW" else (n, h, w, c)).astype(np.float32)
    wt = rng.normal(size=wshape).astype(np.float32)
    geo = geometry.conv_geometry("t", (h, w), wshape[2:], strides, pad, dilation)
    spec = geometry._ConvSpec(strides, geo, dilation, layout, None)
    forms = {
        "xla conv, offsets weight gradient": lambda x, w: conv_cpu._conv_offsets_wgrad(x, w, spec),
        "offsets": lambda x, w: conv_cpu._conv_offsets(conv_cpu._taps(x, spec, w.shape[2:]), w, spec),
    }
    taps = conv_dense.dense_taps(x.shape, wshape, spec, 1)
    if taps is not None:
        forms["dense (small maps)"] = lambda x, w: conv_dense.conv_dense(x, w, spec, 1, taps)
    if wshape[2:] == (1, 1):
        forms["one matmul (1x1)"] = lambda x, w: conv_cpu._conv_1x1(conv_cpu._taps(x, spec, (1, 1))[0], w, spec)
    ref = lambda x, w: conv_cpu._conv_xla(x, w, spec)  # noqa: E731
    return forms, ref, x, wt, rng


@settings(max_examples=25, deadline=None)  # test_ops_torch and test_grads sweep convolutions too
@given(conv_cases())
def test_cpu_convs_equal_xla_conv(case):
    forms, ref, x, w, rng = _conv_forms(case)
    g = rng.normal(size=jax.eval_shape(ref, x, w).shape).astype(np.float32)
    tx, tw = rng.normal(size=x.shape).astype(np.float32), rng.normal(size=w.shape).astype(np.float32)

    def derivatives(f, x, w, g, tx, tw):
        """Forward, VJP, JVP and each argument's gradient alone (inside _conv_offsets_wgrad's rule
        the other tangent is a symbolic zero)."""
        y, vjp = jax.vjp(f, x, w)
        return (y, *vjp(g), jax.jvp(f, (x, w), (tx, tw))[1],
                jax.grad(lambda w: jnp.sum(f(x, w) * g))(w), jax.grad(lambda x: jnp.sum(f(x, w) * g))(x))

    # every form and the reference in one compiled program per example
    want, *got = jax.jit(lambda *a: [derivatives(f, *a) for f in (ref, *forms.values())])(x, w, g, tx, tw)
    for name, got in zip(forms, got):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5, err_msg=name)
        for what, a, b in zip(["dx", "dw", "jvp", "dw alone", "dx alone"], got[1:],
                              [want[1], want[2], want[3], want[2], want[1]]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=f"{name}: {what}")


@pytest.mark.parametrize("size,kernel,strides,layout", [
    ((6, 5), (3, 2), 1, "NCHW"), ((6, 5), (3, 3), 1, "NHWC"), ((6, 5), (1, 1), 2, "NCHW"),
    ((2, 1), (3, 2), 1, "NHWC"),  # the dense form
])
def test_cpu_convs_second_order(size, kernel, strides, layout):
    case = ((2, 3, *size), (3, 3) + kernel, (strides, strides), (1, 1), ((1, 1), (0, 1)), layout, 0)
    forms, _, x, w, _ = _conv_forms(case)
    for fast in forms.values():
        check_grads(fast, (x, w), order=2, modes=("fwd", "rev"), atol=5e-2, rtol=5e-2)


def _jaxpr(f, *args):
    """The jaxpr of the CPU formulation (``platform_dependent`` would show every platform's)."""
    with traced_as("cpu"):
        return str(jax.make_jaxpr(f)(*args))


def _lowered(f, platform, *args):
    return jax.jit(f).trace(*args).lower(lowering_platforms=(platform,)).as_text()


def test_a_1x1_convolution_is_formulated_by_its_output_map():
    """Per-example matmuls on 28x28 and larger maps (while their weight products stay bounded) unless
    oneDNN takes them blocked, oneDNN from 12x12 where it applies, one matmul over the batch below
    (conv_cpu's table)."""
    form = conv_cpu._formulation_1x1
    assert form((28, 28), True, True) == form((56, 56), True, False) == "per-example"
    assert form((28, 28), False, True) == form((13, 13), True, True) == form((12, 12), True, True) == "onednn"
    assert form((28, 28), False, False) == form((13, 13), True, False) == "matmul"
    assert form((11, 13), True, True) == form((7, 7), True, True) == form((1, 1), True, True) == "matmul"
    # on blocked activations oneDNN takes the large maps too; small ones stay one matmul
    assert form((28, 28), True, True, True) == form((56, 56), True, True, True) == "onednn"
    assert form((7, 7), True, True, True) == "matmul"


@pytest.mark.parametrize("platform", ["cuda", "rocm", "tpu"])
def test_the_formulation_is_chosen_per_platform_at_lowering(platform):
    """The same program lowered for CPU and for an accelerator (no accelerator needed to lower):
    CPU gets the matmul convolution, the slice max pooling, the 2-D 3-D convolution and the
    written-out transposed convolution; the accelerator XLA's convolution and reduce_window."""
    x, w1, w3 = jnp.ones((2, 8, 9, 9)), jnp.ones((4, 8, 1, 1)), jnp.ones((4, 8, 3, 3, 3))
    conv1x1 = lambda x, w: jc.conv2d(x, w)  # noqa: E731
    pool = lambda x: jc.max_pool2d(x, 2)  # noqa: E731
    conv3 = lambda x, w: jc.conv3d(x, w)  # noqa: E731
    convt = lambda x, w: jc.conv_transpose2d(x, w, strides=2)  # noqa: E731
    cpu, acc = _lowered(conv1x1, "cpu", x, w1), _lowered(conv1x1, platform, x, w1)
    assert "dot_general" in cpu and "convolution" not in cpu
    assert "convolution" in acc and "dot_general" not in acc
    assert "reduce_window" not in _lowered(pool, "cpu", x) and "reduce_window" in _lowered(pool, platform, x)
    x3 = jnp.ones((1, 8, 4, 6, 6))
    assert _lowered(conv3, "cpu", x3, w3).count("convolution") == 3  # one 2-D convolution per depth offset
    assert _lowered(conv3, platform, x3, w3).count("convolution") == 1
    wt = jnp.ones((8, 4, 3, 3))
    assert "convolution" not in _lowered(convt, "cpu", x, wt) and "convolution" in _lowered(convt, platform, x, wt)


def test_conv2d_picks_the_formulation_by_shape():  # the tests run on CPU
    conv2d = lambda x, w, **kw: jc.conv2d(x, w, padding="same", **kw)  # noqa: E731
    big = _jaxpr(conv2d, jnp.zeros((1, 64, 28, 28)), jnp.zeros((64, 64, 3, 3)))
    assert "custom_jvp_call" in big  # per-offset weight gradient
    small = _jaxpr(conv2d, jnp.zeros((1, 3, 28, 28)), jnp.zeros((4, 3, 3, 3)))
    assert "custom_jvp_call" not in small and "conv_general_dilated" in small
    one = _jaxpr(conv2d, jnp.zeros((1, 8, 28, 28)), jnp.zeros((4, 8, 1, 1)))
    assert "conv_general_dilated" not in one and "dot_general" in one and "transpose" not in one  # per example
    small_map = _jaxpr(conv2d, jnp.zeros((1, 8, 9, 9)), jnp.zeros((4, 8, 1, 1)))
    assert "conv_general_dilated" not in small_map and small_map.count("dot_general") == 1  # one matmul
    wide = _jaxpr(conv2d, jax.ShapeDtypeStruct((256, 512, 4, 4), jnp.float32), jnp.zeros((512, 512, 1, 1)))
    assert "conv_general_dilated" not in wide and wide.count("dot_general") == 1  # one matmul, no (N, O, C)
    assert "broadcast_in_dim" not in wide and "transpose" in wide
    grouped = _jaxpr(lambda x, w: conv2d(x, w, groups=2), jnp.zeros((1, 64, 28, 28)), jnp.zeros((64, 32, 3, 3)))
    assert "custom_jvp_call" not in grouped and "dot_general" not in grouped


def test_cpu_conv_gradients_skip_the_unneeded_term():
    # Only the weight gradient (a first layer's data input): the primal convolution and the
    # per-offset matmuls, no input-gradient convolution; only the input gradient: no matmuls.
    case = ((2, 3, 8, 8), (4, 3, 3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), "NCHW", 0)
    forms, _, x, w, _ = _conv_forms(case)
    fast = forms["xla conv, offsets weight gradient"]
    gw = _jaxpr(jax.grad(lambda w: fast(x, w).sum()), w)
    assert gw.count("conv_general_dilated") == 1 and "dot_general" in gw
    gx = _jaxpr(jax.grad(lambda x: fast(x, w).sum()), x)
    assert gx.count("conv_general_dilated") == 2 and "dot_general" not in gx
