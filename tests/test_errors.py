"""Bad input gets a clear error naming the function, the argument and the value -- also under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jconv as jc

X = jnp.ones((2, 4, 8, 8))
W = jnp.ones((6, 4, 3, 3))

CASES = [
    # (call, exception, message pattern)
    (lambda: jc.conv2d(jnp.ones((8, 8)), W), ValueError, r"conv2d: `x` must be 4-D .*shape \(8, 8\)"),
    (lambda: jc.conv2d(jnp.ones((1, 2, 3, 8, 8)), W), ValueError, r"conv2d: `x` must be 4-D"),
    (lambda: jc.conv2d(X, jnp.ones((6, 3, 3, 3))), ValueError,
     r"conv2d: channel mismatch: `x` has 4 channels.*needs in_channels // groups = 4.*\(6, 3, 3, 3\)"),
    (lambda: jc.conv2d(X, jnp.ones((6, 4, 3))), ValueError, r"conv2d: `weight` must be 4-D.*\(6, 4, 3\)"),
    (lambda: jc.conv2d(X, jnp.ones((6, 1, 3, 3)), groups=3), ValueError,
     r"conv2d: `groups` \(=3\) must divide the input channels \(=4\)"),
    (lambda: jc.conv2d(X, jnp.ones((5, 2, 3, 3)), groups=2), ValueError,
     r"conv2d: `groups` \(=2\) must divide the output channels .*\(=5\)"),
    (lambda: jc.conv2d(X, W, groups=0), ValueError, r"conv2d: `groups` must be >= 1, got 0"),
    (lambda: jc.conv2d(X, W, groups=1.0), TypeError, r"conv2d: `groups` must be an int, got 1.0"),
    (lambda: jc.conv2d(X, W, strides=0), ValueError, r"conv2d: `strides` must be >= 1 .*got 0"),
    (lambda: jc.conv2d(X, W, strides=(1, -2)), ValueError, r"conv2d: `strides` must be >= 1.*\(1, -2\)"),
    (lambda: jc.conv2d(X, W, dilation=0), ValueError, r"conv2d: `dilation` must be >= 1.*got 0"),
    (lambda: jc.conv2d(X, W, strides=1.5), TypeError, r"conv2d: `strides` must be an int or a pair of ints.*1.5"),
    (lambda: jc.conv2d(X, W, strides=(1, 2, 3)), TypeError, r"conv2d: `strides` must be an int or a pair"),
    (lambda: jc.conv2d(X, W, padding=-1), ValueError, r"conv2d: `padding` must be non-negative, got -1"),
    (lambda: jc.conv2d(X, W, padding=((0, 1), (-1, 0))), ValueError, r"conv2d: `padding` must be non-negative"),
    (lambda: jc.conv2d(X, W, padding="full"), ValueError, r"conv2d: `padding` string must be 'valid' or 'same', got 'full'"),
    (lambda: jc.conv2d(X, W, padding=1.5), TypeError, r"conv2d: `padding` must be an int, a pair"),
    (lambda: jc.conv2d(X, W, layout="NCWH"), ValueError, r"conv2d: `layout` must be one of .*got 'NCWH'"),
    (lambda: jc.conv2d(X, jnp.ones((6, 4, 9, 3))), ValueError,
     r"conv2d: the kernel \(size \(9, 3\).*is larger than the padded input"),
    (lambda: jc.conv2d(X, W, dilation=4), ValueError, r"conv2d: the kernel .*extent \(9, 9\)"),
    (lambda: jc.conv2d(X, W, jnp.ones((5,))), ValueError, r"conv2d: `bias` must have shape \(out_channels,\) = \(6,\), got \(5,\)"),
    (lambda: jc.conv2d(X, W, jnp.ones((6, 1))), ValueError, r"conv2d: `bias` must have shape"),
    (lambda: jc.conv2d("image", W), TypeError, r"conv2d: `x` must be an array, got str 'image'"),
    (lambda: jc.conv2d(X, None), TypeError, r"conv2d: `weight` must be an array, got NoneType"),
    (lambda: jc.conv2d(X, W, "bias"), TypeError, r"conv2d: `bias` must be an array, got str"),
    (lambda: jc.conv2d(X, W, precision="fast"), ValueError, r"conv2d: `precision` must be .*got 'fast'"),
    (lambda: jc.max_pool2d(jnp.ones((8, 8))), ValueError, r"max_pool2d: `x` must be 4-D"),
    (lambda: jc.max_pool2d(X, 0), ValueError, r"max_pool2d: `pool_size` must be >= 1.*got 0"),
    (lambda: jc.max_pool2d(X, 2.0), TypeError, r"max_pool2d: `pool_size` must be an int or a pair of ints.*2.0"),
    (lambda: jc.max_pool2d(X, 2, 0), ValueError, r"max_pool2d: `strides` must be >= 1"),
    (lambda: jc.max_pool2d(X, 2, padding=2), ValueError,
     r"max_pool2d: pooling padding must be smaller than the window.*\(\(2, 2\), \(2, 2\)\) for pool_size \(2, 2\)"),
    (lambda: jc.max_pool2d(X, 2, padding=-1), ValueError, r"max_pool2d: `padding` must be non-negative"),
    (lambda: jc.max_pool2d(X, 9), ValueError, r"max_pool2d: the window \(pool_size \(9, 9\)\) is larger than the padded input"),
    (lambda: jc.max_pool2d(X, layout="HWC"), ValueError, r"max_pool2d: `layout` must be one of"),
    (lambda: jc.max_pool2d(X, padding="full"), ValueError, r"max_pool2d: `padding` string must be"),
    (lambda: jc.max_pool2d(X, ceil_mode="yes"), TypeError, r"max_pool2d: `ceil_mode` must be a bool, got 'yes'"),
    (lambda: jc.avg_pool2d(X, (3, 2), padding=(1, 2)), ValueError, r"avg_pool2d: pooling padding must be smaller"),
    (lambda: jc.avg_pool2d(X, count_include_pad=None), TypeError, r"avg_pool2d: `count_include_pad` must be a bool"),
    (lambda: jc.avg_pool2d([["a"]]), TypeError, r"avg_pool2d: `x` must be a numeric array"),
    (lambda: jc.global_avg_pool2d(jnp.ones((3,))), ValueError, r"global_avg_pool2d: `x` must be 4-D"),
    (lambda: jc.global_max_pool2d(X, layout="nchw"), ValueError, r"global_max_pool2d: `layout` must be one of"),
    (lambda: jc.corr2d(jnp.ones((3, 3, 1)), jnp.ones((2, 2))), ValueError, r"corr2d: `X` must be 2-D \(H, W\), got shape \(3, 3, 1\)"),
    (lambda: jc.corr2d(jnp.ones((3, 3)), jnp.ones((4, 2))), ValueError, r"corr2d: the kernel \(4, 2\) is larger than the input \(3, 3\)"),
    (lambda: jc.corr2d("X", jnp.ones((2, 2))), TypeError, r"corr2d: `X` must be an array, got str"),
    (lambda: jc.corr2d_multi_in(jnp.ones((2, 3, 3)), jnp.ones((3, 2, 2))), ValueError,
     r"corr2d_multi_in: `X` has 2 channels but `K` has 3"),
    (lambda: jc.corr2d_multi_in_out(jnp.ones((2, 3, 3)), jnp.ones((2, 2, 2))), ValueError,
     r"corr2d_multi_in_out: `K` must be 4-D \(O, C, kh, kw\)"),
    (lambda: jc.corr2d_multi_in_out(jnp.ones((2, 3, 3)), jnp.ones((4, 3, 2, 2))), ValueError,
     r"corr2d_multi_in_out: `X` has 2 channels but `K` expects 3"),
    (lambda: jc.corr2d_multi_in_out_1x1(jnp.ones((2, 3, 3)), jnp.ones((4, 2, 2, 2))), ValueError,
     r"corr2d_multi_in_out_1x1: `K` must be \(O, C, 1, 1\), got shape \(4, 2, 2, 2\)"),
    (lambda: jc.pool2d(jnp.ones((3, 3)), (2, 2), mode="min"), ValueError, r"pool2d: `mode` must be one of \('max', 'avg'\), got 'min'"),
    (lambda: jc.pool2d(jnp.ones((3, 3)), (4, 2)), ValueError, r"pool2d: `pool_size` \(4, 2\) is larger than the input"),
    (lambda: jc.pool2d(jnp.ones((3, 3)), "2"), TypeError, r"pool2d: `pool_size` must be an int or a pair"),
]


@pytest.mark.parametrize("call, exc, pattern", CASES, ids=[c[2][:40] for c in CASES])
def test_bad_input_raises_a_clear_error(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_errors_are_raised_at_trace_time_under_jit():
    with pytest.raises(ValueError, match=r"conv2d: channel mismatch"):
        jax.jit(lambda x, w: jc.conv2d(x, w))(X, jnp.ones((6, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"max_pool2d: pooling padding must be smaller"):
        jax.jit(lambda x: jc.max_pool2d(x, 2, padding=2))(X)
    with pytest.raises(ValueError, match=r"avg_pool2d: the window"):
        jax.jit(lambda x: jc.avg_pool2d(x, 9))(X)


def test_numpy_and_list_inputs_are_accepted():
    y = jc.conv2d(np.ones((1, 1, 3, 3)), [[[[1.0]]]])
    np.testing.assert_array_equal(y, np.ones((1, 1, 3, 3)))


# --- layers: an input that does not fit the parameters names the layer, where it sits, what it
# expected, what it got, and the input shape the model was built for.

from jconv import nn  # noqa: E402


def _lenet():
    net = jc.models.lenet(variant="modern")
    return net, net.init(jax.random.key(0), (1, 1, 28, 28))


@pytest.mark.parametrize("shape, pattern", [
    ((2, 1, 32, 32), r"^Sequential layer 4, Dense\(400 -> 120, Activation\(relu\)\): expected 400 input features "
                     r"\(all axes but the first\), got 576 \(input shape \(2, 16, 6, 6\)\) "
                     r"\(the model was built for examples of shape \(1, 28, 28\)\)"),
    ((2, 3, 28, 28), r"^Sequential layer 0, Conv2D\(1 -> 6, kernel_size=\(5, 5\).*\): expected 1 channel on axis 1, "
                     r"got 3 \(input shape \(2, 3, 28, 28\)\) \(the model was built for examples of shape \(1, 28, 28\)\)"),
    ((2, 28, 28), r"^Sequential layer 0, Conv2D\(1 -> 6.*expected a 4-D input, got shape \(2, 28, 28\)"),
    ((2, 1, 6, 6), r"^Sequential layer 2, Conv2D\(6 -> 16, .*\): expected an input of a shape it accepts, got shape "
                   r"\(2, 6, 3, 3\): Conv2D: the kernel .* is larger than the padded input"),
])
def test_model_input_errors_name_the_layer(shape, pattern):
    net, params = _lenet()
    with pytest.raises(nn.InputShapeError, match=pattern):
        net.apply(params, jnp.ones(shape))
    with pytest.raises(ValueError, match=pattern):  # the same before XLA sees it, under jit
        jax.jit(net.apply)(params, jnp.ones(shape))


def test_nested_and_stateful_layers_locate_the_error():
    net = jc.models.resnet18(10, input_shape=(1, 28, 28))
    params, state = net.init_with_state(jax.random.key(0), (1, 1, 28, 28))
    with pytest.raises(nn.InputShapeError, match=r"^Sequential layer 0 > Sequential layer 0, Conv2D\(1 -> 64, .*"
                                                 r"expected 1 channel on axis 1, got 3 .*built for examples of shape"):
        net.apply_with_state(params, state, jnp.ones((2, 3, 28, 28)))
    bn = nn.Sequential(nn.Conv2D(4, 3, padding=1), nn.BatchNorm())
    p, s = bn.init_with_state(jax.random.key(0), (1, 2, 8, 8))
    with pytest.raises(nn.InputShapeError, match=r"^Sequential layer 1, BatchNorm\(.*in_channels=4\): expected 4 "
                                                 r"channels on axis 1, got 5"):
        nn.Sequential(nn.Conv2D(5, 3, padding=1), nn.BatchNorm()).apply_with_state(
            (nn.Conv2D(5, 3, padding=1).init(jax.random.key(0), (1, 2, 8, 8)), p[1]), s, jnp.ones((1, 2, 8, 8)))
    res = nn.Residual(nn.Conv2D(4, 3, padding=1), nn.Conv2D(4, 1))
    rp = res.init(jax.random.key(0), (1, 2, 8, 8))
    with pytest.raises(nn.InputShapeError, match=r"^Residual body, Conv2D\(2 -> 4.*got 3"):
        res.apply(rp, jnp.ones((1, 3, 8, 8)))
    cat = nn.Concat(nn.Conv2D(2, 1), nn.Conv2D(3, 1))
    cp = cat.init(jax.random.key(0), (1, 4, 3, 3))
    with pytest.raises(nn.InputShapeError, match=r"^Concat branch 0, Conv2D\(4 -> 2.*got 5"):
        cat.apply(cp, jnp.ones((1, 5, 3, 3)))


def test_a_layer_alone_names_itself_and_dense_without_flatten():
    dense = nn.Dense(3, flatten=False)
    p = dense.init(jax.random.key(0), (2, 5))
    with pytest.raises(nn.InputShapeError, match=r"^Dense\(5 -> 3, linear\): expected 5 input features \(the last "
                                                 r"axis\), got 4 \(input shape \(2, 4\)\)$"):
        dense.apply(p, jnp.ones((2, 4)))
    assert issubclass(nn.InputShapeError, ValueError)
