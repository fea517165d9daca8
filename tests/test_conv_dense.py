"""The dense form of a convolution on a small map (``jconv/_src/ops/conv_dense.py``).

* Which geometries take it: every (input, output) position pair linked by a kernel tap, the
  kernel larger than 1x1, the unfolded weight bounded; ResNet-18's and GoogLeNet's small-map
  layers do, a 3x3 convolution on 4x4 and windows that see only padding do not.
* Values and both gradients against PyTorch's ``conv1d/2d/3d`` (ranks 1-3, both layouts,
  strides, dilation, groups), second order by ``check_grads``, and ``vmap``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jconv as jc
from jconv._src import checks
from jconv._src.ops import conv_dense, geometry
from jconv._src.platform import traced_as

_CHANNELS_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


def _spec(x_shape, kernel, strides, padding, dilation, layout):
    rank = len(kernel)
    spatial = checks.spatial_dims(x_shape, layout)
    geo = geometry.conv_geometry("t", spatial, kernel, (strides,) * rank, padding, (dilation,) * rank)
    return geometry._ConvSpec((strides,) * rank, geo, (dilation,) * rank, layout, None)


def _dense(x_shape, w_shape, strides=1, padding=0, dilation=1, groups=1, layout="NCHW"):
    spec = _spec(x_shape, tuple(w_shape[2:]), strides, padding, dilation, layout)
    return conv_dense.dense_taps(tuple(x_shape), tuple(w_shape), spec, groups) is not None


def test_the_dense_form_takes_the_maps_every_window_covers():
    # ResNet-18 at 28x28: 3x3 pad 1 on 1x1 and 2x2 maps, the stride-2 one from 2x2 to 1x1
    assert _dense((128, 512, 1, 1), (512, 512, 3, 3), padding=1)
    assert _dense((128, 256, 2, 2), (256, 256, 3, 3), padding=1)
    assert _dense((128, 256, 2, 2), (512, 256, 3, 3), strides=2, padding=1)
    # GoogLeNet's 5x5 pad 2 branches on 2x2 and 1x1 maps; channels last; grouped; a dilated tap
    assert _dense((128, 32, 2, 2), (64, 32, 5, 5), padding=2)
    assert _dense((128, 1, 1, 48), (128, 48, 5, 5), padding=2, layout="NHWC")
    assert _dense((4, 8, 2, 2), (6, 4, 3, 3), padding=1, groups=2)
    assert _dense((4, 8, 1, 1), (6, 8, 3, 3), padding=2, dilation=2)
    # a 3x3 on 4x4 (corners do not reach across), ResNet-18's 4x4 -> 2x2 stride 2, 1x1 kernels
    assert not _dense((128, 128, 4, 4), (128, 128, 3, 3), padding=1)
    assert not _dense((128, 128, 4, 4), (256, 128, 3, 3), strides=2, padding=1)
    assert not _dense((128, 512, 1, 1), (512, 512, 1, 1))
    # windows that see only padding, a dilation that skips the input, an unfolded weight over the bound
    assert not _dense((2, 3, 2, 2), (4, 3, 3, 3), padding=2)
    assert not _dense((2, 3, 2, 2), (4, 3, 3, 3), padding=2, dilation=2)
    assert not _dense((1, 2048, 2, 2), (2048, 2048, 3, 3), padding=1)


def test_conv2d_runs_resnets_last_stage_as_one_matmul():
    x, w = jnp.zeros((2, 16, 1, 1)), jnp.zeros((16, 16, 3, 3))
    with traced_as("cpu"):
        jaxpr = str(jax.make_jaxpr(lambda x, w: jc.conv2d(x, w, padding=1))(x, w))
    assert "conv_general_dilated" not in jaxpr and "jconv_onednn" not in jaxpr
    assert jaxpr.count("dot_general") == 2  # the one-hot unfolding, the matmul


_CASES = [  # x shape (channels first), weight shape, strides, padding, dilation, groups
    ((3, 8, 1, 1), (6, 8, 3, 3), 1, 1, 1, 1),
    ((3, 8, 2, 2), (6, 8, 3, 3), 1, 1, 1, 1),
    ((3, 8, 2, 2), (6, 8, 3, 3), 2, 1, 1, 1),
    ((3, 6, 2, 3), (4, 3, 5, 5), 1, 2, 1, 2),
    ((2, 6, 2, 2), (6, 2, 3, 3), 1, 1, 1, 3),
    ((2, 4, 1, 1), (5, 4, 3, 3), 1, 2, 2, 1),
    ((3, 4, 3), (5, 4, 3), 1, 0, 1, 1),
    ((2, 4, 2, 1, 2), (3, 4, 3, 3, 3), 1, 1, 1, 1),
]


@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("x_shape, w_shape, strides, padding, dilation, groups", _CASES)
def test_the_dense_form_equals_torch(torch, x_shape, w_shape, strides, padding, dilation, groups, last):
    rank = len(w_shape) - 2
    layout = _CHANNELS_LAST[rank] if last else "NC" + "DHW"[3 - rank:]
    rng = np.random.default_rng(0)
    x = rng.normal(size=x_shape).astype(np.float32)
    w = rng.normal(size=w_shape).astype(np.float32)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    conv = getattr(torch.nn.functional, f"conv{rank}d")
    ty = conv(tx, tw, stride=strides, padding=padding, dilation=dilation, groups=groups)
    g = rng.normal(size=tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(g))
    to_layout = (lambda a: np.moveaxis(a, 1, -1)) if last else (lambda a: a)
    xin = to_layout(x)
    assert _dense(xin.shape, w_shape, strides, padding, dilation, groups, layout)

    def f(x, w):
        return jc.conv(x, w, strides=strides, padding=padding, dilation=dilation, groups=groups, layout=layout)

    y, vjp = jax.vjp(f, xin, w)
    dx, dw = vjp(to_layout(g))
    np.testing.assert_allclose(y, to_layout(ty.detach().numpy()), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, to_layout(tx.grad.numpy()), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_the_dense_form_second_order_and_vmap():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 2, 2)).astype(np.float32)
    w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    f = lambda x, w: jc.conv2d(x, w, padding=1, groups=2)  # noqa: E731
    check_grads(f, (x, w), order=2, modes=("fwd", "rev"), atol=5e-2, rtol=5e-2)
    ws = rng.normal(size=(5, 4, 2, 3, 3)).astype(np.float32)
    mapped = jax.vmap(lambda w: f(x, w))(ws)
    np.testing.assert_allclose(mapped, np.stack([f(x, w) for w in ws]), rtol=1e-5, atol=1e-5)


def test_taps_that_read_no_data_do_not_enter():
    """On a 1x1 map only the centre tap reads data (PyTorch ignores the rest, NaN or not); from a
    2x2 map at stride 2 only the lower-right 2x2 window of the 3x3 kernel."""
    spec = _spec((1, 2, 2, 2), (3, 3), 2, 1, 1, "NCHW")
    assert conv_dense.dense_taps((1, 2, 2, 2), (4, 2, 3, 3), spec, 1).box == ((1, 3), (1, 3))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 1, 1)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    w[:, :, 0, 0] = np.nan
    w[:, :, 2, 1] = np.inf
    y, vjp = jax.vjp(lambda w: jc.conv2d(x, w, padding=1), w)
    np.testing.assert_allclose(y[:, :, 0, 0], x[:, :, 0, 0] @ w[:, :, 1, 1].T, rtol=1e-5)
    dw = vjp(jnp.ones_like(y))[0]
    assert np.all(np.isfinite(dw)) and np.all(dw[:, :, 0, 0] == 0)
