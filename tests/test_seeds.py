"""Every output printed in the seed notebooks (../shared/seeds), reproduced by jconv."""

import io
import contextlib

import jax.numpy as jnp
import numpy as np

import jconv as jc
from jconv import nn
from jconv._src import demo

SEED_LOSSES = [12.080, 4.949, 2.028, 0.831, 0.341, 0.140, 0.057, 0.024, 0.010, 0.004]
SEED_KERNEL = [0.9895, -0.9873705]
EDGE_X = np.where((np.arange(8) >= 2) & (np.arange(8) < 6), 0.0, 1.0)[None].repeat(6, 0)


def test_cross_correlation():
    X = jnp.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    np.testing.assert_array_equal(jc.corr2d(X, jnp.array([[0, 1], [2, 3]])), [[19.0, 25.0], [37.0, 43.0]])


def test_edge_detection():
    Y = jc.corr2d(EDGE_X, jnp.array([[1, -1]]))
    np.testing.assert_array_equal(Y, np.array([[0, 1, 0, 0, 0, -1, 0]] * 6, np.float32))
    np.testing.assert_array_equal(jc.corr2d(EDGE_X.T, jnp.array([[1, -1]])), np.zeros((8, 5)))


def _seed_initial_kernel():
    """Solve the seed's 10 SGD steps backwards from its printed kernel (float64 NumPy)."""
    A = np.stack([EDGE_X[:, :-1].ravel(), EDGE_X[:, 1:].ravel()], 1)  # corr2d as A @ [k0, k1]
    target = np.array([1.0, -1.0])
    M = np.eye(2) - 2 * 3e-2 * A.T @ A  # one step: w - target -> M (w - target)
    return target + np.linalg.matrix_power(np.linalg.inv(M), 10) @ (SEED_KERNEL - target)


def test_learning_a_kernel_reproduces_the_seed_run_exactly():
    w0 = _seed_initial_kernel()
    np.testing.assert_allclose(w0, demo.SEED_RUN_INIT, atol=1e-8)
    assert np.all(np.abs(w0) <= 0.07)  # a draw of Gluon's Uniform(-0.07, 0.07)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        w = demo.learn_kernel(init=lambda k, s, d: jnp.asarray(w0, d).reshape(s), every=1)
    printed = [l for l in out.getvalue().splitlines() if l.startswith("batch")]
    assert printed == ["batch %d, loss %.3f" % (i + 1, l) for i, l in enumerate(SEED_LOSSES)]
    np.testing.assert_allclose(np.asarray(w).ravel(), SEED_KERNEL, atol=2e-6)
    assert "Conv2D(1 -> 1, kernel_size=(1, 2), stride=(1, 1))" in out.getvalue()
    assert "Parameter weight (shape=(1, 1, 1, 2), dtype=float32)" in out.getvalue()


def test_learning_a_kernel_from_gluon_default_init_converges():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        w = demo.learn_kernel()
    losses = [float(l.split()[-1]) for l in out.getvalue().splitlines() if l.startswith("batch")]
    assert len(losses) == 5 and losses[-1] < 0.02 and losses == sorted(losses, reverse=True)
    np.testing.assert_allclose(np.asarray(w).ravel(), [1.0, -1.0], atol=0.03)


def test_padding_and_stride_shapes():
    X = jnp.ones((8, 8))
    assert demo.comp_conv2d(nn.Conv2D(1, kernel_size=3, padding=1), X).shape == (8, 8)
    assert demo.comp_conv2d(nn.Conv2D(1, kernel_size=(5, 3), padding=(2, 1)), X).shape == (8, 8)
    assert demo.comp_conv2d(nn.Conv2D(1, kernel_size=3, padding=1, strides=2), X).shape == (4, 4)
    conv = nn.Conv2D(1, kernel_size=(3, 5), padding=(0, 1), strides=(3, 4))
    assert demo.comp_conv2d(conv, X).shape == (2, 2)


def test_channels():
    X = jnp.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
    K = jnp.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]])
    np.testing.assert_array_equal(jc.corr2d_multi_in(X, K), [[56, 72], [104, 120]])
    K = jnp.stack((K, K + 1, K + 2))
    assert K.shape == (3, 2, 2, 2)
    np.testing.assert_array_equal(
        jc.corr2d_multi_in_out(X, K),
        [[[56, 72], [104, 120]], [[76, 100], [148, 172]], [[96, 128], [192, 224]]],
    )
    rng = np.random.default_rng(0)
    X, K = rng.uniform(size=(3, 3, 3)), rng.uniform(size=(2, 3, 1, 1))
    assert float(jnp.abs(jc.corr2d_multi_in_out_1x1(X, K) - jc.corr2d_multi_in_out(X, K)).sum()) < 1e-6


def test_pooling():
    X = jnp.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    np.testing.assert_array_equal(jc.pool2d(X, (2, 2)), [[4, 5], [7, 8]])
    np.testing.assert_array_equal(jc.pool2d(X, (2, 2), "avg"), [[2, 3], [5, 6]])
    X = jnp.arange(16).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(nn.MaxPool2D(3).apply({}, X), [[[[10]]]])
    np.testing.assert_array_equal(nn.MaxPool2D(3, padding=1, strides=2).apply({}, X), [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(
        nn.MaxPool2D((2, 3), padding=(1, 2), strides=(2, 3)).apply({}, X), [[[[0, 3], [8, 11], [12, 15]]]]
    )
    X2 = jnp.concatenate((X, X + 1), axis=1)
    y = nn.MaxPool2D(3, padding=1, strides=2).apply({}, X2)
    # The seed's printed output (one channel: its cells ran out of order) is channel 0.
    np.testing.assert_array_equal(y[:, :1], [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(y[:, 1:], [[[[6, 8], [14, 16]]]])
