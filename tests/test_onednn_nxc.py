"""Channels-first convolutions on oneDNN's channels-last kernels (``onednn.conv_nxc``,
``Params.direct``): where the blocked layout would pad the channels (LeNet's 1 -> 6 and 6 -> 16),
jconv transposes the activations to ``(N, *s, C)`` and the kernels take them as they are. Checked:
which geometries take the path; values and both gradients against ``lax.conv_general_dilated`` and
against the plain-buffer path (the reordering one); ``jvp``, second order and ``vmap`` through it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

import jconv as jc
from jconv._src import onednn

needs_onednn = pytest.mark.skipif(jc.cpu_conv_backend() != "onednn", reason=onednn.describe())
_BLOCK = onednn.activation_block()
needs_blocks = pytest.mark.skipif(_BLOCK == 0, reason="no blocked oneDNN layout on this machine")

# (input, weight, padding): LeNet's two convolutions, an odd one with a pad and uneven maps.
_CASES = [((4, 1, 28, 28), (6, 1, 5, 5), 2), ((4, 6, 14, 14), (16, 6, 5, 5), 0), ((3, 3, 11, 9), (5, 3, 3, 3), 1)]


def _data(x_shape, w_shape, seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=x_shape), jnp.float32), jnp.asarray(rng.normal(size=w_shape), jnp.float32))


def _direct_in(f, *args) -> bool:
    return "direct = 1" in jax.jit(f).lower(*args).compile().as_text()


@needs_onednn
@needs_blocks
def test_padded_channel_counts_take_channels_last_kernels():
    x, w = _data(*_CASES[0][:2])
    conv = lambda x, w: jc.conv2d(x, w, padding=2)  # noqa: E731
    assert _direct_in(conv, x, w)
    assert _direct_in(jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), (0, 1)), x, w)
    # channels a multiple of the block: blocked, not channels-last
    x64, w64 = _data((2, _BLOCK, 8, 8), (_BLOCK, _BLOCK, 3, 3))
    assert not _direct_in(lambda x, w: jc.conv2d(x, w, padding=1), x64, w64)
    # grouped convolutions keep the plain path
    xg, wg = _data((2, 6, 8, 8), (6, 3, 3, 3))
    assert not _direct_in(lambda x, w: jc.conv2d(x, w, padding=1, groups=2), xg, wg)


@needs_onednn
@pytest.mark.parametrize("x_shape, w_shape, pad", _CASES)
def test_channels_last_kernels_match_lax_and_the_plain_path(x_shape, w_shape, pad):
    x, w = _data(x_shape, w_shape)
    loss = lambda conv: lambda x, w: jnp.sum(jnp.sin(conv(x, w)))  # noqa: E731
    ours = jax.jit(jax.value_and_grad(loss(lambda x, w: jc.conv2d(x, w, padding=pad)), (0, 1)))(x, w)
    ref = jax.value_and_grad(loss(lambda x, w: lax.conv_general_dilated(
        x, w, (1, 1), [(pad, pad)] * 2, precision=lax.Precision.HIGHEST)), (0, 1))(x, w)
    nxc = onednn.conv_nxc
    try:
        onednn.conv_nxc = lambda *a: False  # the reordering path, traced afresh
        plain = jax.jit(jax.value_and_grad(loss(lambda x, w: jc.conv2d(x, w, padding=pad)), (0, 1)))(x, w)
    finally:
        onednn.conv_nxc = nxc
    for a, b, c in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), jax.tree.leaves(plain)):
        scale = float(jnp.max(jnp.abs(b))) + 1.0
        np.testing.assert_allclose(a, b, atol=2e-5 * scale, rtol=1e-4)
        np.testing.assert_allclose(a, c, atol=2e-5 * scale, rtol=1e-4)


@needs_onednn
def test_transformations_through_channels_last_kernels():
    x, w = _data((2, 6, 9, 9), (16, 6, 3, 3), seed=1)
    conv = lambda x, w: jc.conv2d(x, w, padding=1)  # noqa: E731
    check_grads(conv, (x, w), order=2, modes=("fwd", "rev"), atol=5e-2, rtol=5e-2)
    xs = jnp.stack([x, 2 * x])
    ws = jnp.stack([w, -w])
    got = jax.jit(jax.vmap(conv))(xs, ws)
    want = jnp.stack([lax.conv_general_dilated(a, b, (1, 1), [(1, 1)] * 2, precision=lax.Precision.HIGHEST)
                      for a, b in zip(xs, ws)])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    per_example = jax.jit(jax.vmap(jax.grad(lambda w, x: jnp.sum(conv(x[None], w) ** 2)), (None, 0)))(w, x)
    want = jnp.stack([jax.grad(lambda w, x: jnp.sum(lax.conv_general_dilated(
        x[None], w, (1, 1), [(1, 1)] * 2, precision=lax.Precision.HIGHEST) ** 2))(w, e) for e in x])
    np.testing.assert_allclose(per_example, want, atol=1e-3, rtol=1e-4)
