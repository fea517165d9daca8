"""Layers: shape agreement (as stax's tests), LeNet, gradients, immutability, reprs, errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jconv as jc
from jconv import nn


@st.composite
def layer_cases(draw):
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    c = draw(st.integers(1, 4))
    h, w = draw(st.integers(6, 12)), draw(st.integers(6, 12))
    kind = draw(st.sampled_from(["conv", "max", "avg", "gmax", "gavg"]))
    if kind == "conv":
        groups = draw(st.sampled_from([g for g in (1, 2) if c % g == 0]))
        layer = nn.Conv2D(
            groups * draw(st.integers(1, 3)), draw(st.integers(1, 3)),
            strides=draw(st.integers(1, 3)), padding=draw(st.sampled_from([0, 1, (1, 2), "same", "valid"])),
            dilation=draw(st.integers(1, 2)), groups=groups, layout=layout,
            activation=draw(st.sampled_from([None, "relu", "tanh"])),
        )
    elif kind in ("max", "avg"):
        k = draw(st.integers(1, 3))
        cls = nn.MaxPool2D if kind == "max" else nn.AvgPool2D
        layer = cls(k, draw(st.sampled_from([None, 1, 2])), draw(st.integers(0, k - 1)),
                    ceil_mode=draw(st.booleans()), layout=layout)
    else:
        layer = (nn.GlobalMaxPool2D if kind == "gmax" else nn.GlobalAvgPool2D)(layout=layout)
    shape = (2, c, h, w) if layout == "NCHW" else (2, h, w, c)
    return layer, shape


@given(layer_cases())
def test_output_shape_equals_apply_shape(case):
    layer, shape = case
    params = layer.init(jax.random.key(0), shape)
    y = layer.apply(params, jnp.ones(shape))
    assert layer.output_shape(shape) == y.shape
    assert jax.eval_shape(layer.apply, params, jax.ShapeDtypeStruct(shape, jnp.float32)).shape == y.shape


def test_dense_flatten_activation_shapes():
    for layer, shape, out in [
        (nn.Dense(7), (3, 2, 4, 4), (3, 7)),
        (nn.Dense(7, flatten=False), (3, 5, 4), (3, 5, 7)),
        (nn.Flatten(), (3, 2, 4, 4), (3, 32)),
        (nn.Activation("softrelu"), (3, 5), (3, 5)),
    ]:
        params = layer.init(jax.random.key(0), shape)
        assert layer.output_shape(shape) == out == layer.apply(params, jnp.ones(shape)).shape


def test_lenet_parameter_count_and_d2l_shapes():
    net = jc.models.lenet()
    params = net.init(jax.random.key(0), (1, 1, 28, 28))
    assert sum(a.size for a in jax.tree_util.tree_leaves(params)) == 61_706
    shapes, shape = [], (1, 1, 28, 28)
    for layer in net.layers:
        shape = layer.output_shape(shape)
        shapes.append(shape)
    assert shapes == [(1, 6, 28, 28), (1, 6, 14, 14), (1, 16, 10, 10), (1, 16, 5, 5),
                      (1, 120), (1, 84), (1, 10)]
    table = nn.summary(net, (1, 1, 28, 28))
    assert "(1, 16, 5, 5)" in table and "61,706" in table and "Dense(400 -> 120" in table
    x = jax.random.normal(jax.random.key(1), (2, 1, 28, 28))
    for variant in ("classic", "modern"):
        m = jc.models.lenet(variant=variant)
        assert m.apply(m.init(jax.random.key(0), (1, 1, 28, 28)), x).shape == (2, 10)


@pytest.mark.parametrize("variant", ["classic", "modern"])
def test_gradients_flow_to_every_parameter(variant):
    net = jc.models.lenet(variant=variant)
    params = net.init(jax.random.key(0), (1, 1, 28, 28))
    x = jax.random.uniform(jax.random.key(1), (4, 1, 28, 28))
    grads = jax.grad(lambda p: jax.nn.log_softmax(net.apply(p, x))[:, 3].sum())(params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert float(jnp.abs(g).sum()) > 0, path


def test_nhwc_lenet_equals_nchw():
    a, b = jc.models.lenet(variant="modern"), jc.models.lenet(variant="modern", layout="NHWC")
    params = a.init(jax.random.key(0), (1, 1, 28, 28))
    x = jax.random.uniform(jax.random.key(1), (3, 1, 28, 28))
    # NHWC flattens in (h, w, c) order, so compare the convolutional part only
    ya = nn.Sequential(*a.layers[:4]).apply(params[:4], x)
    yb = nn.Sequential(*b.layers[:4]).apply(params[:4], jnp.transpose(x, (0, 2, 3, 1)))
    np.testing.assert_allclose(jnp.transpose(yb, (0, 3, 1, 2)), ya, rtol=1e-5, atol=1e-5)


def test_layers_are_immutable_and_hashable():
    conv = nn.Conv2D(4, 3)
    assert hash(conv) == hash(nn.Conv2D(4, (3, 3))) and conv == nn.Conv2D(4, (3, 3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        conv.channels = 5
    net = jc.models.lenet()
    assert hash(net) == hash(jc.models.lenet())
    f = jax.jit(lambda layer, p, x: layer.apply(p, x), static_argnums=0)
    p = conv.init(jax.random.key(0), (1, 2, 5, 5))
    assert f(conv, p, jnp.ones((1, 2, 5, 5))).shape == (1, 4, 3, 3)


def test_initializers():
    conv = nn.Conv2D(3, 2, weight_init=nn.gluon_uniform(0.07), bias_init=jax.nn.initializers.ones)
    p = conv.init(jax.random.key(0), (1, 2, 4, 4))
    assert float(jnp.abs(p["weight"]).max()) <= 0.07 and jnp.all(p["bias"] == 1)
    d = nn.Dense(50).init(jax.random.key(0), (1, 200))["weight"]
    limit = np.sqrt(6.0 / (200 + 50))  # Xavier uniform
    assert float(jnp.abs(d).max()) <= limit and float(jnp.abs(d).max()) > 0.9 * limit
    assert "bias" not in nn.Conv2D(3, 2, use_bias=False).init(jax.random.key(0), (1, 2, 4, 4))


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (6, 3, 3, 3), (10, 1, 5, 5), (3, 2, 1025)])
def test_initializers_equal_an_exact_size_draw(shape):
    # The initializers draw over the next power of two and slice (shared compiles): the values
    # must be those of a draw of exactly the weight's size, eagerly and under jit.
    key, size = jax.random.key(3), int(np.prod(shape))
    fan_in = shape[1] * int(np.prod(shape[2:]))
    fan_out = shape[0] * int(np.prod(shape[2:]))
    expected = {
        nn.gluon_uniform(0.07): jax.random.uniform(key, (size,), minval=-0.07, maxval=0.07),
        nn.he_normal: jax.random.normal(key, (size,)) * jnp.sqrt(2.0 / fan_in),
        nn.xavier_uniform: jax.random.uniform(key, (size,), minval=-1) * jnp.sqrt(6.0 / (fan_in + fan_out)),
    }
    for init, flat in expected.items():
        np.testing.assert_allclose(init(key, shape), flat.reshape(shape), rtol=1e-6, atol=0)
        np.testing.assert_allclose(jax.jit(init, static_argnums=1)(key, shape), flat.reshape(shape),
                                   rtol=1e-6, atol=0)


@pytest.mark.parametrize("shape", [(6, 3, 3, 3), (10, 20), (4, 2, 5)])
def test_centered_initializer_removes_each_units_mean(shape):
    key = jax.random.key(2)
    w, plain = nn.centered(nn.he_normal)(key, shape), np.asarray(nn.he_normal(key, shape), np.float64)
    axes = tuple(range(1, len(shape)))
    np.testing.assert_allclose(w, plain - plain.mean(axis=axes, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(w).sum(axis=axes), 0.0, atol=1e-5)
    assert float(jnp.std(w)) > 0.8 * float(np.std(plain))  # the spread stays
    np.testing.assert_allclose(jax.jit(nn.centered(nn.he_normal), static_argnums=1)(key, shape), w, rtol=1e-5, atol=1e-7)
    conv = nn.Conv2D(4, 3, weight_init=nn.centered(nn.xavier_uniform)).init(key, (1, 2, 5, 5))["weight"]
    np.testing.assert_allclose(np.asarray(conv).sum(axis=(1, 2, 3)), 0.0, atol=1e-5)


def test_reprs_gluon_style():
    assert repr(nn.Conv2D(1, kernel_size=(1, 2), in_channels=1)) == \
        "Conv2D(1 -> 1, kernel_size=(1, 2), stride=(1, 1))"
    assert repr(nn.Conv2D(6, 5, padding=2, activation="sigmoid").with_inferred_sizes((1, 1, 28, 28))) == \
        "Conv2D(1 -> 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2), Activation(sigmoid))"
    assert repr(nn.MaxPool2D(3, padding=1, strides=2)) == (
        "MaxPool2D(size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=False, "
        "global_pool=False, pool_type=max, layout=NCHW)")
    assert repr(nn.Dense(10).with_inferred_sizes((1, 84))) == "Dense(84 -> 10, linear)"
    assert repr(nn.Sequential(nn.Flatten(), nn.Activation("relu"))) == \
        "Sequential(\n  (0): Flatten\n  (1): Activation(relu)\n)"


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: nn.Conv2D(0, 3), ValueError, r"Conv2D: `channels` must be >= 1, got 0"),
    (lambda: nn.Conv2D(4, 0), ValueError, r"Conv2D: `kernel_size` must be >= 1"),
    (lambda: nn.Conv2D(4, 3, activation="gelu"), ValueError, r"Conv2D: `activation` must be None, a function or one of"),
    (lambda: nn.Conv2D(5, 3, groups=2), ValueError, r"Conv2D: `groups` \(=2\) must divide `channels` \(=5\)"),
    (lambda: nn.Conv2D(4, 3, in_channels=3).init(jax.random.key(0), (1, 1, 8, 8)), ValueError,
     r"Conv2D: `in_channels` \(=3\) does not match the 1 channels of input_shape \(1, 1, 8, 8\)"),
    (lambda: nn.Conv2D(4, 3).init(jax.random.key(0), (8, 8)), ValueError, r"Conv2D: `input_shape` must have 3 or 4"),
    (lambda: nn.Conv2D(4, 3).init(jax.random.key(0), "x"), TypeError, r"Conv2D: `input_shape` must be a tuple of ints"),
    (lambda: nn.Conv2D(4, 9).output_shape((1, 1, 8, 8)), ValueError, r"Conv2D: the kernel"),
    (lambda: nn.Dense(10, in_units=5).init(jax.random.key(0), (1, 4)), ValueError,
     r"Dense: `in_units` \(=5\) does not match input_shape \(1, 4\)"),
    (lambda: nn.Dense(0), ValueError, r"Dense: `units` must be >= 1"),
    (lambda: nn.MaxPool2D(2, padding=2).output_shape((1, 1, 8, 8)), ValueError, r"MaxPool2D: pooling padding must be smaller"),
    (lambda: nn.AvgPool2D(2, layout="CHW"), ValueError, r"AvgPool2D: `layout` must be one of"),
    (lambda: nn.Activation("swish"), ValueError, r"Activation: `name` must be a function or one of"),
    (lambda: nn.Sequential(nn.Flatten(), "relu"), TypeError, r"Sequential: argument 1 must be a layer"),
    (lambda: nn.Sequential(nn.Flatten()).apply((), jnp.ones((1, 2))), ValueError, r"Sequential: `params` has 0 entries for 1 layers"),
    (lambda: jc.models.lenet(variant="resnet"), ValueError, r"lenet: `variant` must be one of"),
])
def test_layer_errors(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()
