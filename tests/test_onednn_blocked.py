"""oneDNN convolutions on blocked activations (``onednn.to_blocked``, ``JconvConvBlock``).

Where oneDNN would run a convolution on its blocked ``(N, C // b, *s, b)`` layout anyway, jconv hands
it that layout (XLA transposes around the call, cancelled between consecutive convolutions) instead of
having each call reorder its activations in and out. Checked: the layout itself against NumPy; values
and both gradients against ``lax.conv_general_dilated`` and against the plain-buffer path (the same
kernels: equal to rounding); JAX's transformations through the blocked primitives (``jvp``,
second order, ``vmap`` of data, weights and per-example gradients); a batch-sharded program.
"""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

import jconv as jc
from jconv._src import onednn
from jconv._src.ops import conv_cpu
from jconv._src.platform import traced_as

needs_onednn = pytest.mark.skipif(jc.cpu_conv_backend() != "onednn", reason=onednn.describe())

# A 3x3, 64-channel convolution: blocked wherever oneDNN has a blocked kernel (AVX2: 8, AVX-512: 16).
_BLOCK = onednn.conv_block((2, 64, 14, 14), (64, 64, 3, 3), (2, 64, 14, 14), (1, 1), (1, 1), (1, 1), (1, 1))
needs_blocks = pytest.mark.skipif(_BLOCK == 0, reason="no blocked oneDNN layout on this machine")


@pytest.mark.parametrize("shape, b", [((2, 16, 5), 8), ((2, 32, 3, 4), 16), ((1, 16, 2, 3, 2), 8)])
def test_blocked_layout_is_onednns(shape, b):
    """Channel ``c`` of ``(N, C, *s)`` sits at ``[:, c // b, ..., c % b]``; ``from_blocked`` inverts."""
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    got = np.asarray(onednn.to_blocked(jnp.asarray(x), b))
    n, c, *s = shape
    assert got.shape == (n, c // b, *s, b)
    for ch in (0, 1, b - 1, b, c - 1):
        np.testing.assert_array_equal(got[:, ch // b, ..., ch % b], x[:, ch])
    np.testing.assert_array_equal(onednn.from_blocked(jnp.asarray(got)), x)


# (n, c, o, size, kernel, strides, dilation, padding, groups)
_CASES = [
    (2, 64, 64, (14, 14), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), 1),  # ResNet-18's
    (3, 32, 16, (10, 7), (3, 3), (2, 2), (1, 1), ((1, 0), (1, 1)), 1),
    (2, 32, 32, (9, 8), (3, 3), (1, 1), (2, 2), ((2, 2), (2, 2)), 2),
    (2, 32, 32, (6, 6), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), 32),  # depthwise
    (2, 32, 32, (28, 28), (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)), 1),  # NiN's 1x1 on 28x28
    (2, 16, 32, (20,), (5,), (1,), (1,), ((2, 2),), 1),
    (1, 16, 16, (5, 6, 5), (3, 3, 3), (1, 2, 1), (1, 1, 1), ((1, 1),) * 3, 1),
]


def _case(case, seed=0):
    n, c, o, size, kernel, strides, dilation, padding, groups = case
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(n, c) + size), jnp.float32)
    w = jnp.asarray(rng.normal(size=(o, c // groups) + kernel) / np.sqrt(c // groups * np.prod(kernel)), jnp.float32)
    kw = dict(strides=strides, padding=padding, dilation=dilation, groups=groups)
    spatial = "DHW"[3 - len(size):]
    lay = ("NC" + spatial, "OI" + spatial, "NC" + spatial)

    def ref(x, w):
        return lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation, feature_group_count=groups,
                                        dimension_numbers=lay, precision="highest")

    return x, w, (lambda x, w: jc.conv(x, w, **kw)), ref


def _jaxpr(f, *args):
    with traced_as("cpu"):
        return str(jax.make_jaxpr(lambda *a: f(*a))(*args))


def _loss(conv):
    return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))


def _value_and_grads(conv):
    return jax.jit(lambda x, w: (conv(x, w), *jax.grad(_loss(conv), (0, 1))(x, w)))


def _blocks_of(jaxpr):
    return {int(b) for b in re.findall(r"\bblocked=(\d+)", jaxpr)}


@needs_onednn
@needs_blocks
def test_resnet_and_nin_convolutions_run_blocked():
    x, w, ours, _ = _case(_CASES[0])
    jaxpr = _jaxpr(jax.grad(_loss(ours), (0, 1)), x, w)
    assert _blocks_of(jaxpr) == {_BLOCK}, jaxpr  # forward, input and weight gradient
    x, w, ours, _ = _case(_CASES[4])  # a 1x1 on 28x28: oneDNN blocked, not per-example matmuls
    assert _blocks_of(_jaxpr(ours, x, w)) == {_BLOCK}


@needs_onednn
@pytest.mark.parametrize("case", _CASES)
def test_blocked_equals_lax_and_the_plain_path(case, monkeypatch):
    x, w, ours, ref = _case(case)
    got = _value_and_grads(ours)(x, w)
    for g, r in zip(got, _value_and_grads(ref)(x, w)):
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-4)
    monkeypatch.setattr(onednn, "conv_block", lambda *a: 0)
    jaxpr = _jaxpr(ours, x, w)
    assert not _blocks_of(jaxpr) - {0}
    plain = _value_and_grads(lambda x, w: ours(x, w))(x, w)  # a new function: traced again, unblocked
    # the same oneDNN kernels, with or without the reorders, agree to rounding (a 1x1 on 28x28 maps
    # turns into per-example matmuls when unblocked: another summation order)
    same_kernels = "jconv_onednn_conv_fwd" in jaxpr
    for g, p in zip(got, plain):
        np.testing.assert_allclose(g, p, rtol=1e-5 if same_kernels else 2e-4, atol=1e-6 if same_kernels else 2e-4)


@needs_onednn
@needs_blocks
def test_transformations_through_blocked_calls():
    x, w, ours, ref = _case((2, 16, 32, (6, 5), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), 1), seed=1)
    assert _blocks_of(_jaxpr(ours, x, w)) == {_BLOCK}
    check_grads(ours, (x, w), order=2, modes=("fwd", "rev"), atol=2e-2, rtol=2e-2, eps=1e-2)
    t = (jnp.cos(x), jnp.sin(w))
    np.testing.assert_allclose(jax.jvp(_loss(ours), (x, w), t)[1], jax.jvp(_loss(ref), (x, w), t)[1], rtol=1e-4)
    hvp = lambda f: jax.jvp(jax.grad(lambda w: _loss(f)(x, w)), (w,), (t[1],))[1]  # noqa: E731
    np.testing.assert_allclose(hvp(ours), hvp(ref), rtol=1e-3, atol=1e-4)
    xs, ws = jnp.stack([x, -2 * x]), jnp.stack([w, w[::-1]])
    for axes, args in (((0, None), (xs, w)), ((None, 0), (x, ws)), ((0, 0), (xs, ws))):
        np.testing.assert_allclose(jax.vmap(ours, axes)(*args), jax.vmap(ref, axes)(*args), rtol=1e-5, atol=1e-5)
        jaxpr = _jaxpr(jax.vmap(ours, axes), *args)
        assert jaxpr.count("jconv_onednn_conv_fwd") == 1 and "while" not in jaxpr, axes
    pe = lambda f: jax.vmap(jax.grad(_loss(f), (0, 1)), (0, None))(xs, w)  # noqa: E731  per-example gradients
    for g, r in zip(pe(ours), pe(ref)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


SHARDED = r"""
import json, re
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jconv as jc
mesh = Mesh(np.array(jax.devices()), ("data",))
rows, repl = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
rng = np.random.default_rng(0)
x = rng.normal(size=(8, 16, 6, 6)).astype(np.float32)
w = (rng.normal(size=(32, 16, 3, 3)) / 12).astype(np.float32)
w2 = (rng.normal(size=(16, 32, 3, 3)) / 17).astype(np.float32)
loss = lambda w, w2, x: jnp.mean(jnp.sin(jc.conv2d(jc.max_pool2d(jax.nn.relu(jc.conv2d(x, w, padding=1)), 2), w2,
                                                   padding=1)))
step = jax.jit(jax.value_and_grad(loss, (0, 1, 2)), in_shardings=(repl, repl, rows),
               out_shardings=(repl, (repl, repl, rows)))
l, grads = step(w, w2, jax.device_put(x, rows))
hlo = step.lower(w, w2, jax.device_put(x, rows)).compile().as_text()
calls = [l for l in hlo.splitlines() if "custom_call_target=\"jconv_onednn" in l]
print(json.dumps({"devices": jax.device_count(), "loss": float(l), "grads": [np.asarray(g).tolist() for g in grads],
                  "all_gather": "all-gather" in hlo,
                  "shapes": [c.split("custom-call(")[0].split("=")[1].strip() for c in calls]}))
"""


@needs_onednn
@needs_blocks
def test_sharded_batch_runs_blocked_per_device():
    """4 simulated devices, the batch sharded: each convolves and pools its 2 examples on blocked
    activations."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["devices"] == 4 and not r["all_gather"]
    assert any(s.startswith("f32[2,") and s.split("{")[0].count(",") == 4 for s in r["shapes"]), r["shapes"]  # (2, C/b, H, W, b)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 16, 6, 6)).astype(np.float32)
    w = (rng.normal(size=(32, 16, 3, 3)) / 12).astype(np.float32)
    w2 = (rng.normal(size=(16, 32, 3, 3)) / 17).astype(np.float32)
    c = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), precision="highest")  # noqa: E731
    pool = lambda x: lax.reduce_window(x, -np.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")  # noqa: E731
    l, grads = jax.value_and_grad(lambda w, w2, x: jnp.mean(jnp.sin(c(pool(jax.nn.relu(c(x, w))), w2))), (0, 1, 2))(
        w, w2, x)
    np.testing.assert_allclose(r["loss"], l, rtol=1e-5)
    for g, want in zip(r["grads"], grads):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-6)


def test_no_block_without_the_extension(monkeypatch):
    monkeypatch.setattr(onednn.backend, "_library", lambda: onednn.backend._Library(None, "not built"))
    onednn.backend.conv_block.cache_clear()
    try:
        assert onednn.conv_block((2, 64, 8, 8), (64, 64, 3, 3), (2, 64, 8, 8), (1, 1), (1, 1), (1, 1), (1, 1)) == 0
    finally:
        onednn.backend.conv_block.cache_clear()
    assert conv_cpu._block(jnp.ones((2, 64, 8, 8)), jnp.ones((64, 64, 3, 3)),
                           onednn.Params((1, 1), (1, 1), (1, 1), (1, 1), 1, True)) == 0  # channels last: plain


# --- pooling on blocked activations --------------------------------------------------------------

_POOLS = [
    (lambda x: jc.max_pool2d(x, 3, strides=2, padding=1), "max 3x3/2 pad 1"),
    (lambda x: jc.max_pool2d(x, 2, strides=2, ceil_mode=True), "max 2x2/2 ceil"),
    (lambda x: jc.avg_pool2d(x, 3, strides=2, padding=1), "avg 3x3/2 pad 1"),
    (lambda x: jc.avg_pool2d(x, 3, strides=1, padding=1, count_include_pad=False), "avg 3x3/1 exclude pad"),
]


@needs_onednn
@needs_blocks
@pytest.mark.parametrize("pool", [p for p, _ in _POOLS], ids=[i for _, i in _POOLS])
def test_blocked_pooling_equals_the_plain_path_and_xla(pool, monkeypatch):
    """Channels a multiple of the block: pooled blocked, with the values and gradients of the plain
    path exactly (the same picks and sums), and of XLA's formulation; forward mode too."""
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.permutation(2 * 32 * 9 * 11).reshape(2, 32, 9, 11) / 100, jnp.float32)  # no ties
    t = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
    f = lambda x: jnp.sum(jnp.sin(pool(x)))  # noqa: E731
    assert _blocks_of(_jaxpr(pool, x)) == {_BLOCK}
    xs = jnp.stack([x, -x])
    np.testing.assert_array_equal(jax.vmap(pool)(xs), jnp.stack([pool(x), pool(-x)]))  # folds into N
    got = (pool(x), jax.grad(f)(x), jax.jvp(pool, (x,), (t,))[1])
    with onednn.use("xla"):
        want = (pool(x), jax.grad(f)(x), jax.jvp(pool, (x,), (t,))[1])
    monkeypatch.setattr(onednn, "activation_block", lambda: 0)
    assert not _blocks_of(_jaxpr(pool, x)) - {0}
    plain = (pool(x), jax.grad(lambda x: f(x))(x), jax.jvp(lambda x: pool(x), (x,), (t,))[1])
    for g, p, w in zip(got, plain, want):
        np.testing.assert_allclose(g, p, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@needs_onednn
@needs_blocks
@pytest.mark.parametrize("pool, shape", [(lambda x: jc.max_pool1d(x, 3, strides=2, padding=1), (2, 16, 11)),
                                         (lambda x: jc.avg_pool1d(x, 2), (2, 32, 9)),
                                         (lambda x: jc.max_pool3d(x, 2, ceil_mode=True), (1, 16, 5, 4, 5)),
                                         (lambda x: jc.avg_pool3d(x, 3, strides=2, padding=1), (1, 16, 5, 6, 5))],
                         ids=["max1d", "avg1d", "max3d", "avg3d"])
def test_blocked_pooling_of_other_ranks(pool, shape):
    rng = np.random.default_rng(6)
    x = jnp.asarray(rng.permutation(np.prod(shape)).reshape(shape) / 100, jnp.float32)
    f = lambda x: jnp.sum(jnp.sin(pool(x)))  # noqa: E731
    assert _blocks_of(_jaxpr(pool, x)) == {_BLOCK}
    got = (pool(x), jax.grad(f)(x))
    with onednn.use("xla"):
        want = (pool(x), jax.grad(f)(x))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@needs_onednn
@needs_blocks
def test_blocked_max_pooling_propagates_nan_as_pytorch():
    """An input with NaN and infinities takes the plain loop, in the blocked layout: NaN wins its
    windows, -inf windows give -inf, and the gradient goes where the plain path sends it."""
    x = np.random.default_rng(5).normal(size=(1, 32, 6, 6)).astype(np.float32)
    x[0, 3, 1, 1], x[0, 17, 4, 4], x[0, 31] = np.nan, np.inf, -np.inf
    pool = lambda x: jc.max_pool2d(x, 2)  # noqa: E731
    assert _blocks_of(_jaxpr(pool, jnp.asarray(x))) == {_BLOCK}
    y = np.asarray(pool(jnp.asarray(x)))
    assert np.isnan(y[0, 3, 0, 0]) and y[0, 17, 2, 2] == np.inf and np.all(y[0, 31] == -np.inf)
    with onednn.use("xla"):
        ref = np.asarray(pool(jnp.asarray(x)))
    np.testing.assert_array_equal(y, ref)
    g = jax.grad(lambda x: jnp.sum(jnp.where(jnp.isfinite(pool(x)), pool(x), 0.0)))(jnp.asarray(x))
    with onednn.use("xla"):
        g_ref = jax.grad(lambda x: jnp.sum(jnp.where(jnp.isfinite(pool(x)), pool(x), 0.0)))(jnp.asarray(x))
    np.testing.assert_array_equal(g, g_ref)
