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
