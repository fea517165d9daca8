"""N-d convolution, transposed convolution and pooling against PyTorch (values and gradients),
over property-based geometries; the adjoint identity; ``check_grads``; complex inputs refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jconv as jc
from jconv import nn
from tests.compiled import jit_value_and_vjp, value_and_vjp

LAYOUTS = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}
TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-9, atol=1e-9)}


def _last(a):
    """Channels-first (N, C, *spatial) to channels-last (N, *spatial, C); :func:`_first` undoes it."""
    return np.moveaxis(a, 1, -1)


def _first(a):
    return np.moveaxis(a, -1, 1)


@st.composite
def conv_cases(draw, transposed=False):
    rank = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.sampled_from([1, 2]))
    c, o = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    s = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    d = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    size = tuple(draw(st.integers(1 if transposed else 3, 6)) for _ in range(rank))
    if transposed:  # PyTorch takes symmetric padding; output_padding < max(stride, dilation)
        p = tuple(draw(st.integers(0, (ki - 1) * di)) for ki, di in zip(k, d))
        op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
        pad = p
    else:
        pad = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(rank))
        op = None
        if any(n + lo + hi < (ki - 1) * di + 1 for n, (lo, hi), ki, di in zip(size, pad, k, d)):
            size = tuple(n + (ki - 1) * di for n, ki, di in zip(size, k, d))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    channels_last = draw(st.booleans())
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return rank, groups, c, o, k, s, d, size, pad, op, dtype, channels_last, bias, seed


def _torch_pad(x_t, pad, F):
    """Per-side padding for torch (which pads conv inputs symmetrically): pad explicitly."""
    flat = [v for lohi in reversed(pad) for v in lohi]
    return F.pad(x_t, flat)


def _check(got, ref, dtype):
    np.testing.assert_allclose(np.asarray(got), ref, **TOL[dtype])


@settings(max_examples=20)
@given(conv_cases())
def test_conv_matches_torch_values_and_gradients(cpu_conv, torch, case):
    rank, groups, c, o, k, s, d, size, pad, _, dtype, channels_last, bias, seed = case
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, c) + size).astype(dtype)
    w = rng.normal(size=(o, c // groups) + k).astype(dtype)
    b = rng.normal(size=(o,)).astype(dtype) if bias else None
    tf = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    yt = tf(_torch_pad(xt, pad, F), wt, bt, stride=s, dilation=d, groups=groups)
    ct = rng.normal(size=tuple(yt.shape)).astype(dtype)
    (yt * torch.tensor(ct)).sum().backward()
    layout = LAYOUTS[rank][channels_last]
    to = _last if channels_last else (lambda a: a)
    back = _first if channels_last else (lambda a: a)
    op = {1: jc.conv1d, 2: jc.conv2d, 3: jc.conv3d}[rank]

    with jax.enable_x64(dtype == np.float64):
        def f(x, w, b):
            return op(x, w, b, strides=s, padding=pad, dilation=d, groups=groups, layout=layout,
                      precision="highest")
        y, (gx, gw, gb) = jit_value_and_vjp(f, (jnp.asarray(to(x)), jnp.asarray(w), None if b is None
                                                else jnp.asarray(b)), jnp.asarray(to(ct)))
        _check(back(np.asarray(y)), yt.detach().numpy(), dtype)
        assert y.dtype == dtype
        _check(back(np.asarray(gx)), xt.grad.numpy(), dtype)
        _check(gw, wt.grad.numpy(), dtype)
        if bias:
            _check(gb, bt.grad.numpy(), dtype)
        generic = jc.conv(jnp.asarray(to(x)), jnp.asarray(w), strides=s, padding=pad, dilation=d, groups=groups,
                          layout=layout, precision="highest")
        np.testing.assert_array_equal(generic, op(jnp.asarray(to(x)), jnp.asarray(w), strides=s, padding=pad,
                                                  dilation=d, groups=groups, layout=layout, precision="highest"))


@settings(max_examples=20)
@given(conv_cases(transposed=True))
def test_conv_transpose_matches_torch_values_and_gradients(cpu_conv, torch, case):
    rank, groups, c, o, k, s, d, size, pad, op, dtype, channels_last, bias, seed = case
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, c) + size).astype(dtype)
    w = rng.normal(size=(c, o // groups) + k).astype(dtype)
    b = rng.normal(size=(o,)).astype(dtype) if bias else None
    out = [(n - 1) * si - 2 * p + di * (ki - 1) + opi + 1 for n, si, p, di, ki, opi in zip(size, s, pad, d, k, op)]
    layout = LAYOUTS[rank][channels_last]
    fn = {1: jc.conv_transpose1d, 2: jc.conv_transpose2d, 3: jc.conv_transpose3d}[rank]
    if min(out) < 1:  # PyTorch refuses these too; jconv says why
        with pytest.raises(ValueError, match="the output would be empty"):
            fn(x, w, strides=s, padding=pad, output_padding=op, dilation=d, groups=groups)
        return
    tf = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[rank]
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    yt = tf(xt, wt, bt, stride=s, padding=pad, output_padding=op, groups=groups, dilation=d)
    ct = rng.normal(size=tuple(yt.shape)).astype(dtype)
    (yt * torch.tensor(ct)).sum().backward()
    to = _last if channels_last else (lambda a: a)
    back = _first if channels_last else (lambda a: a)

    with jax.enable_x64(dtype == np.float64):
        def f(x, w, b):
            return fn(x, w, b, strides=s, padding=pad, output_padding=op, dilation=d, groups=groups,
                      layout=layout, precision="highest")
        y, (gx, gw, gb) = jit_value_and_vjp(f, (jnp.asarray(to(x)), jnp.asarray(w), None if b is None
                                                else jnp.asarray(b)), jnp.asarray(to(ct)))
        _check(back(np.asarray(y)), yt.detach().numpy(), dtype)
        _check(back(np.asarray(gx)), xt.grad.numpy(), dtype)
        _check(gw, wt.grad.numpy(), dtype)
        if bias:
            _check(gb, bt.grad.numpy(), dtype)


@settings(max_examples=20)
@given(conv_cases(), st.booleans())
def test_conv_transpose_is_the_adjoint_of_conv(cpu_conv, case, same):
    """<conv(x, w), y> == <x, conv_transpose(y, w)> with the same arguments (per-side padding
    and 'same' included), in float64."""
    rank, groups, c, o, k, s, d, size, pad, _, _, channels_last, _, seed = case
    rng = np.random.default_rng(seed)
    layout = LAYOUTS[rank][channels_last]
    pad = "same" if same else pad
    kw = dict(strides=s, padding=pad, dilation=d, groups=groups, layout=layout)
    with jax.enable_x64(True):
        if same:  # conv_transpose's 'same' output is size * stride: the convolution's input
            size = tuple(max(n // si, 1) * si for n, si in zip(size, s))
        x = rng.normal(size=(2,) + ((c,) + size if not channels_last else size + (c,)))
        w = rng.normal(size=(o, c // groups) + k)
        y_shape = jax.eval_shape(lambda x, w: jc.conv(x, w, **kw), x, w).shape
        y = rng.normal(size=y_shape)
        # output_padding recovers x's size where the strided convolution drops rows
        out_size = [(n - 1) * si - lo - hi + di * (ki - 1) + 1 for n, si, (lo, hi), di, ki in
                    zip(y_shape[2:] if not channels_last else y_shape[1:-1], s,
                        pad if not same else [(0, 0)] * rank, d, k)]
        op = 0 if same else tuple(n - m for n, m in zip(size, out_size))

        @jax.jit  # one program per example
        def sides(x, w, y):
            xt = jc.conv_transpose(y, w, output_padding=op, **kw)
            assert xt.shape == x.shape
            return jnp.vdot(jc.conv(x, w, **kw), y), jnp.vdot(x, xt)

        lhs, rhs = map(float, sides(x, w, y))
        assert abs(lhs - rhs) <= 1e-9 * (1 + abs(lhs)), (lhs, rhs)


def test_conv_transpose_check_grads_and_errors(cpu_conv):
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        y, w = rng.normal(size=(2, 4, 3, 5)), rng.normal(size=(4, 3, 3, 2))
        f = lambda y, w: jc.conv_transpose2d(y, w, strides=(2, 1), padding=((1, 0), (0, 1)), output_padding=(1, 0))
        check_grads(f, (y, w), order=2, modes=["fwd", "rev"])
    x = jnp.ones((1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"conv_transpose2d: `output_padding` must be smaller than max\(stride, "
                                         r"dilation\).*got output_padding \(2, 2\) for strides \(2, 2\)"):
        jc.conv_transpose2d(x, jnp.ones((2, 3, 3, 3)), strides=2, output_padding=2)
    with pytest.raises(ValueError, match=r"conv_transpose2d: the output would be empty"):
        jc.conv_transpose2d(jnp.ones((1, 2, 1, 1)), jnp.ones((2, 3, 1, 1)), padding=1)
    with pytest.raises(ValueError, match=r"conv_transpose2d: channel mismatch: `x` has 2 channels .* in_channels = 2 "
                                         r"at axis 0, got weight shape \(3, 3, 3, 3\)"):
        jc.conv_transpose2d(x, jnp.ones((3, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"conv_transpose3d: `weight` must be 5-D \(in_channels, out_channels // "
                                         r"groups, kd, kh, kw\)"):
        jc.conv_transpose3d(jnp.ones((1, 2, 4, 4, 4)), jnp.ones((2, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"conv1d: `x` must be 3-D \(N, C, W\) / \(N, W, C\) or 2-D unbatched"):
        jc.conv1d(jnp.ones((1, 2, 4, 4)), jnp.ones((2, 2, 3)))
    with pytest.raises(ValueError, match=r"conv3d: `layout` must be one of \('NCDHW', 'NDHWC'\) for 3-D, got 'NCHW'"):
        jc.conv3d(jnp.ones((1, 2, 4, 4, 4)), jnp.ones((2, 2, 3, 3, 3)), layout="NCHW")
    with pytest.raises(ValueError, match=r"conv: `weight` must be 3-D, 4-D or 5-D"):
        jc.conv(jnp.ones((1, 2, 4)), jnp.ones((2, 2)))


# --- pooling


def _jit_value_and_vjp(f, x, ct):
    """``f(x)`` and its VJP of ``ct``, as NumPy arrays, from one compiled program."""
    return tuple(np.asarray(a) for a in jax.jit(lambda x, ct: value_and_vjp(f, x, ct))(x, ct))


@st.composite
def pool_cases(draw):
    rank = draw(st.sampled_from([1, 2, 3]))
    k = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    s = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)  # PyTorch's limit: at most half the window
    size = tuple(draw(st.integers(ki, 7)) for ki in k)
    return rank, k, s, p, size, draw(st.booleans()), draw(st.booleans()), draw(st.booleans()), draw(st.integers(0, 2**16))


@settings(max_examples=20)
@given(pool_cases())
def test_pooling_matches_torch_values_and_gradients(torch, case):
    rank, k, s, p, size, ceil_mode, count_include_pad, channels_last, seed = case
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.arange(2 * 3 * int(np.prod(size)))).reshape((2, 3) + size).astype(np.float64)  # no ties
    layout = LAYOUTS[rank][channels_last]
    to = _last if channels_last else (lambda a: a)
    back = _first if channels_last else (lambda a: a)
    for kind in ("max", "avg"):
        xt = torch.tensor(x, requires_grad=True)
        if kind == "max":
            yt = getattr(F, f"max_pool{rank}d")(xt, k, s, p, ceil_mode=ceil_mode)
            f = lambda x: getattr(jc, f"max_pool{rank}d")(x, k, s, p, ceil_mode=ceil_mode, layout=layout)
        else:
            yt = getattr(F, f"avg_pool{rank}d")(xt, k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
            f = lambda x: getattr(jc, f"avg_pool{rank}d")(x, k, s, p, ceil_mode=ceil_mode,
                                                         count_include_pad=count_include_pad, layout=layout)
        ct = rng.normal(size=tuple(yt.shape))
        (yt * torch.tensor(ct)).sum().backward()
        with jax.enable_x64(True):
            y, dx = _jit_value_and_vjp(f, to(x), to(ct))
            np.testing.assert_allclose(back(y), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(back(dx), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@settings(max_examples=20)
@given(st.sampled_from([1, 2, 3]), st.data())
def test_adaptive_pooling_matches_torch_values_and_gradients(torch, rank, data):
    F = torch.nn.functional
    size = tuple(data.draw(st.integers(1, 9)) for _ in range(rank))
    out = tuple(data.draw(st.integers(1, 11)) for _ in range(rank))  # larger than the input too
    channels_last = data.draw(st.booleans())
    layout = LAYOUTS[rank][channels_last]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.normal(size=(2, 3) + size)
    to = _last if channels_last else (lambda a: a)
    back = _first if channels_last else (lambda a: a)
    for kind in ("avg", "max"):
        xt = torch.tensor(x, requires_grad=True)
        yt = getattr(F, f"adaptive_{kind}_pool{rank}d")(xt, out)
        yt = yt[0] if isinstance(yt, tuple) else yt
        ct = rng.normal(size=tuple(yt.shape))
        (yt * torch.tensor(ct)).sum().backward()
        op = getattr(jc, f"adaptive_{kind}_pool{rank}d")
        with jax.enable_x64(True):
            y, dx = _jit_value_and_vjp(lambda x: op(x, out, layout=layout), to(x), to(ct))
            np.testing.assert_allclose(back(y), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(back(dx), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_adaptive_max_pool_ties_go_to_the_first_maximum(torch):
    x = np.zeros((1, 1, 5, 7))  # every bin is a tie (ReLU output)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.adaptive_max_pool2d(xt, (3, 4)).sum().backward()
    g = jax.grad(lambda x: jc.adaptive_max_pool2d(x, (3, 4)).sum())(jnp.asarray(x, jnp.float32))
    np.testing.assert_array_equal(g, xt.grad.numpy())


def test_adaptive_pool_check_grads_and_global_pools():
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        x = rng.normal(size=(2, 3, 5, 4, 6))
        check_grads(lambda x: jc.adaptive_avg_pool3d(x, (2, 3, 4)), (x,), order=2, modes=["fwd", "rev"])
        check_grads(lambda x: jc.adaptive_max_pool3d(x, (2, 3, 4)), (x,), order=1, modes=["fwd", "rev"])
    x = jnp.asarray(rng.normal(size=(2, 3, 5, 4, 6)), jnp.float32)
    np.testing.assert_allclose(jc.global_avg_pool3d(x), x.mean(axis=(2, 3, 4), keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(jc.global_max_pool3d(x, layout="NDHWC"), x.max(axis=(1, 2, 3), keepdims=True))
    np.testing.assert_array_equal(jc.global_max_pool1d(x[:, :, 0, 0]), x[:, :, 0, 0].max(axis=2, keepdims=True))
    np.testing.assert_allclose(jc.adaptive_avg_pool3d(x, 1), jc.global_avg_pool3d(x), rtol=1e-6)


# --- complex dtypes are refused by every op


def _real_and_complex():
    z = np.ones((1, 2, 6), np.complex64)
    return [
        lambda: jc.conv2d(jnp.ones((1, 2, 6, 6)), jnp.ones((1, 2, 3, 3)), np.ones(1, np.complex64)),
        lambda: jc.conv1d(z, jnp.ones((1, 2, 3))),
        lambda: jc.conv(jnp.ones((1, 2, 6)), jnp.ones((1, 2, 3), jnp.complex64)),
        lambda: jc.conv_transpose(z, jnp.ones((2, 1, 3))),
        lambda: jc.max_pool1d(z),
        lambda: jc.avg_pool2d(np.ones((1, 1, 4, 4), np.complex64)),
        lambda: jc.global_avg_pool1d(z),
        lambda: jc.adaptive_avg_pool1d(z, 2),
        lambda: jc.adaptive_max_pool1d(z, 2),
        lambda: jc.corr2d(np.ones((3, 3), np.complex64), np.ones((2, 2))),
        lambda: jc.pool2d(np.ones((3, 3), np.complex64), (2, 2)),
    ]


@pytest.mark.parametrize("index", range(len(_real_and_complex())))
def test_complex_inputs_are_refused(index):
    with pytest.raises(TypeError, match=r"must be real \(jconv's ops are real-valued\), got complex64"):
        _real_and_complex()[index]()


# --- layers


@pytest.mark.parametrize("layer, shape, out", [
    (nn.Conv1D(8, 5, padding=2), (2, 3, 20), (2, 8, 20)),
    (nn.Conv3D(4, 3, strides=2, layout="NDHWC"), (1, 9, 9, 9, 2), (1, 4, 4, 4, 4)),
    (nn.Conv1DTranspose(3, 3, strides=2, output_padding=1), (2, 5, 7), (2, 3, 16)),
    (nn.Conv2DTranspose(8, 4, strides=2, padding=1), (1, 16, 14, 14), (1, 8, 28, 28)),
    (nn.Conv3DTranspose(2, 2, strides=2), (1, 3, 2, 2, 2), (1, 2, 4, 4, 4)),
    (nn.MaxPool1D(3, 2, 1), (2, 3, 10), (2, 3, 5)),
    (nn.MaxPool3D(2), (1, 2, 4, 6, 8), (1, 2, 2, 3, 4)),
    (nn.AvgPool1D(2), (2, 3, 9), (2, 3, 4)),
    (nn.AvgPool3D(3, 1, 1), (1, 2, 4, 4, 4), (1, 2, 4, 4, 4)),
    (nn.GlobalMaxPool1D(), (2, 3, 9), (2, 3, 1)),
    (nn.GlobalAvgPool3D(), (2, 3, 4, 4, 4), (2, 3, 1, 1, 1)),
    (nn.AdaptiveAvgPool1D(4), (2, 3, 9), (2, 3, 4)),
    (nn.AdaptiveAvgPool2D((7, None)), (2, 3, 5, 6), (2, 3, 7, 6)),
    (nn.AdaptiveMaxPool3D(2, layout="NDHWC"), (1, 5, 5, 5, 3), (1, 2, 2, 2, 3)),
])
def test_nd_layers_shapes_match_apply(layer, shape, out):
    params = layer.init(jax.random.key(0), shape)
    y = layer.apply(params, jnp.ones(shape))
    assert y.shape == out == layer.output_shape(shape)
    hash(layer)


def test_nd_layer_reprs_are_gluons():
    assert repr(nn.Conv1D(8, 5, padding=2).with_inferred_sizes((2, 3, 20))) == \
        "Conv1D(3 -> 8, kernel_size=(5,), stride=(1,), padding=(2,))"
    assert repr(nn.Conv2DTranspose(8, 4, strides=2, padding=1, output_padding=1).with_inferred_sizes((1, 16, 7, 7))) \
        == "Conv2DTranspose(16 -> 8, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))"
    assert repr(nn.MaxPool3D(2)) == ("MaxPool3D(size=(2, 2, 2), stride=(2, 2, 2), padding=(0, 0, 0), "
                                     "ceil_mode=False, global_pool=False, pool_type=max, layout=NCDHW)")
    assert repr(nn.GlobalAvgPool1D()) == ("GlobalAvgPool1D(size=(1,), stride=(1,), padding=(0,), ceil_mode=True, "
                                          "global_pool=True, pool_type=avg, layout=NCW)")
    assert repr(nn.AdaptiveAvgPool2D(7)) == "AdaptiveAvgPool2D(output_size=(7, 7), layout=NCHW)"


def test_transposed_layer_matches_torch_module(torch):
    layer = nn.Conv2DTranspose(4, 3, strides=2, padding=1, output_padding=1)
    params = layer.init(jax.random.key(0), (2, 6, 5, 5))
    m = torch.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
    with torch.no_grad():
        m.weight.copy_(torch.tensor(np.asarray(params["weight"])))
        m.bias.copy_(torch.tensor(np.asarray(params["bias"])))
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(layer.apply(params, jnp.asarray(x)), m(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_nd_layer_input_errors_name_the_layer():
    layer = nn.Conv1D(4, 3)
    params = layer.init(jax.random.key(0), (1, 2, 8))
    with pytest.raises(nn.InputShapeError, match=r"^Conv1D\(2 -> 4, .*\): expected 2 channels on axis 1, got 3"):
        layer.apply(params, jnp.ones((1, 3, 8)))
    with pytest.raises(nn.InputShapeError, match=r"^Conv1D\(2 -> 4, .*\): expected a 3-D input, got shape \(1, 2, 8, 8\)"):
        layer.apply(params, jnp.ones((1, 2, 8, 8)))
    with pytest.raises(ValueError, match=r"Conv2DTranspose: `output_padding` must be smaller than max\(stride, dilation\) in each "
                                         r"dimension, got output_padding \(2, 2\)"):
        nn.Conv2DTranspose(4, 3, strides=2, output_padding=2)
