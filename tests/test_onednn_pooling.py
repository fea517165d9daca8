"""Max and average pooling on oneDNN (``jconv/_src/onednn/pooling.py``, ``csrc/onednn_pool.cc``), jconv's
CPU pooling where the extension is built.

* Values and gradients against PyTorch over hypothesis geometries with ties, NaN and -inf (the plain
  loop's inputs), rank 1-3 and both layouts; a window of -inf alone.
* JAX's transformations: ``check_grads`` to second order in both modes, ``vmap`` of the values and of
  per-example gradients, and 8-device batch sharding (per-shard calls, no all-gather).
* Average pooling against PyTorch (``count_include_pad`` both ways, ceil mode), to second order.
* Where the XLA formulations are kept: other dtypes, ``JCONV_CPU_CONV=xla``, max windows of 256
  elements or more, empty inputs, average pooling whose divisor would count ceil mode's extra
  padding, other platforms.
"""

import json
import os
import subprocess
import sys

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from jax.test_util import check_grads

import jconv as jc
from jconv._src.onednn import backend as onednn
from tests.compiled import value_and_vjp
from tests.test_fast_paths import _pool_inputs, pool_cases

pytestmark = pytest.mark.skipif(jc.cpu_conv_backend() != "onednn", reason=onednn.describe())


def _prims(f, *args):
    return str(jax.make_jaxpr(f)(*args))


@settings(max_examples=40, deadline=None)
@given(pool_cases(torch_ok=True))
def test_equals_torch_with_ties_and_nan(torch, case):
    shape, pool, strides, padding, ceil, layout, seed, nans = case
    x, rng = _pool_inputs(shape, layout, seed, nans)
    x[tuple(rng.integers(0, d) for d in shape)] = -np.inf
    pad = [p for p, _ in padding]
    f = lambda x: jc.max_pool2d(x, pool, strides, pad, ceil_mode=ceil)  # noqa: E731
    assert "jconv_onednn_max_pool" in _prims(f, x)
    g = rng.normal(size=jax.eval_shape(f, x).shape).astype(np.float32)
    y, dx = jax.jit(lambda x, g: value_and_vjp(f, x, g))(x, g)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, pool, strides, pad, ceil_mode=ceil)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(y, ty.detach().numpy())  # NaN where torch has NaN
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("k, s, p, ceil", [(3, 2, 1, False), (2, 2, 0, True), (3, 1, 1, False)])
def test_every_rank_and_layout_equals_torch(torch, rank, channels_last, k, s, p, ceil):
    rng = np.random.default_rng(rank)
    x = rng.integers(-3, 4, size=(3, 4) + (7, 6, 5)[:rank]).astype(np.float32)  # ties
    fn = getattr(jc, f"max_pool{rank}d")
    layout = {1: "NCW", 2: "NCHW", 3: "NCDHW"}[rank]
    if channels_last:
        layout = layout[0] + layout[2:] + "C"
    to_last = lambda v: np.moveaxis(v, 1, -1) if channels_last else v  # noqa: E731
    f = lambda x: fn(x, k, s, p, ceil_mode=ceil, layout=layout)  # noqa: E731
    xs = to_last(x)
    assert "jconv_onednn_max_pool" in _prims(f, xs)
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, f"max_pool{rank}d")(tx, k, s, p, ceil_mode=ceil)
    g = rng.normal(size=ty.shape).astype(np.float32)
    ty.backward(torch.tensor(g))
    y, dx = jax.jit(lambda x, g: value_and_vjp(f, x, g))(xs, to_last(g))
    np.testing.assert_array_equal(y, to_last(ty.detach().numpy()))
    np.testing.assert_allclose(dx, to_last(tx.grad.numpy()), rtol=1e-6, atol=1e-6)


def test_a_window_of_minus_infinity(torch):
    """oneDNN alone answers -FLT_MAX there; the plain loop answers -inf, the gradient at the window's
    first element (PyTorch's)."""
    x = np.full((1, 1, 4, 4), -np.inf, np.float32)
    x[0, 0, 3, 3] = 1.0
    y, dx = value_and_vjp(lambda x: jc.max_pool2d(x, 2), x, np.ones((1, 1, 2, 2), np.float32))
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 2).sum().backward()
    np.testing.assert_array_equal(y, [[[[-np.inf, -np.inf], [-np.inf, 1.0]]]])
    np.testing.assert_array_equal(dx, tx.grad.numpy())


def test_forward_mode_and_second_order():
    x = jnp.asarray(np.random.default_rng(0).permutation(2 * 3 * 9 * 9).reshape(2, 3, 9, 9) / 50.0, jnp.float32)
    f = lambda x: jnp.sin(jc.max_pool2d(x, 3, 2, 1))  # noqa: E731  (unique values: no ties)
    check_grads(f, (x,), order=2, modes=["fwd", "rev"], eps=1e-3, atol=2e-2, rtol=2e-2)
    assert "jconv_onednn_max_pool_pick" in _prims(lambda x, t: jax.jvp(f, (x,), (t,)), x, x)


def test_vmap_of_values_and_per_example_gradients():
    rng = np.random.default_rng(1)
    xs = jnp.asarray(rng.integers(-3, 4, size=(3, 2, 4, 9, 9)), jnp.float32)
    f = lambda x: jc.max_pool2d(x, 3, 2, 1)  # noqa: E731
    loss = lambda x: jnp.sum(f(x) ** 2)  # noqa: E731
    np.testing.assert_array_equal(jax.vmap(f)(xs), np.stack([f(x) for x in xs]))
    np.testing.assert_array_equal(jax.vmap(jax.grad(loss))(xs), np.stack([jax.grad(loss)(x) for x in xs]))
    ct = jnp.asarray(rng.normal(size=(5, 2, 4, 5, 5)), jnp.float32)  # one input, many cotangents
    _, vjp = jax.vjp(f, xs[0])
    np.testing.assert_allclose(jax.vmap(lambda c: vjp(c)[0])(ct), np.stack([vjp(c)[0] for c in ct]))
    assert "jconv_onednn_max_pool_bwd" in _prims(jax.vmap(jax.grad(loss)), xs)


@settings(max_examples=30, deadline=None)
@given(pool_cases(torch_ok=True), st.booleans())
def test_average_pooling_equals_torch(torch, case, include_pad):
    shape, pool, strides, padding, ceil, layout, seed, _ = case
    x, rng = _pool_inputs(shape, layout, seed, nans=0)
    pad = [p for p, _ in padding]
    f = lambda x: jc.avg_pool2d(x, pool, strides, pad, ceil_mode=ceil, count_include_pad=include_pad)  # noqa: E731
    g = rng.normal(size=jax.eval_shape(f, x).shape).astype(np.float32)
    y, dx = jax.jit(lambda x, g: value_and_vjp(f, x, g))(x, g)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, pool, strides, pad, ceil_mode=ceil, count_include_pad=include_pad)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_average_pooling_on_onednn_to_second_order_and_under_vmap():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 3, 9, 9)), jnp.float32)
    f = lambda x: jnp.sin(jc.avg_pool2d(x, 3, 2, 1))  # noqa: E731
    assert "jconv_onednn_avg_pool" in _prims(f, x)
    check_grads(f, (x,), order=2, modes=["fwd", "rev"], eps=1e-3, atol=2e-2, rtol=2e-2)
    xs = jnp.asarray(rng.normal(size=(3, 2, 3, 9, 9)), jnp.float32)
    loss = lambda x: jnp.sum(f(x) ** 2)  # noqa: E731
    np.testing.assert_allclose(jax.vmap(f)(xs), np.stack([f(v) for v in xs]), rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(loss))(xs), np.stack([jax.grad(loss)(v) for v in xs]), rtol=1e-6)


SHARDED = r"""
import json, re
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jconv as jc
rows = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P("data"))
x = np.random.default_rng(0).normal(size=(16, 4, 9, 9)).astype(np.float32)
pool = lambda x: jc.avg_pool2d(jnp.sin(jc.max_pool2d(x, 3, 2, 1)), 2)
step = jax.jit(jax.value_and_grad(lambda x: jnp.mean(pool(x))),
               in_shardings=rows, out_shardings=(NamedSharding(rows.mesh, P()), rows))
l, gx = step(jax.device_put(x, rows))
hlo = step.lower(jax.device_put(x, rows)).compile().as_text()
calls = [l for l in hlo.splitlines() if "custom_call_target=\"jconv_onednn" in l]
print(json.dumps({"devices": jax.device_count(), "loss": float(l), "gx": np.asarray(gx).tolist(),
                  "all_gather": "all-gather" in hlo,
                  "calls": [re.search(r'custom_call_target="(\w+)"', c).group(1) for c in calls],
                  "shapes": [c.split("custom-call(")[0].split("=")[1].strip() for c in calls]}))
"""


def test_sharded_batch_runs_per_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["devices"] == 8 and not r["all_gather"]
    assert sorted(r["calls"]) == ["jconv_onednn_avg_pool_bwd", "jconv_onednn_avg_pool_fwd",
                                  "jconv_onednn_max_pool_bwd", "jconv_onednn_max_pool_fwd"]
    assert all(s.startswith(("f32[2,", "(f32[2,")) for s in r["shapes"]), r["shapes"]  # 16 examples / 8
    x = np.random.default_rng(0).normal(size=(16, 4, 9, 9)).astype(np.float32)
    with onednn.use("xla"):
        loss, gx = jax.value_and_grad(lambda x: jnp.mean(jc.avg_pool2d(jnp.sin(jc.max_pool2d(x, 3, 2, 1)), 2)))(x)
    np.testing.assert_allclose(r["loss"], loss, rtol=1e-5)  # the mean sums in another order
    np.testing.assert_allclose(r["gx"], gx, rtol=1e-6, atol=1e-8)


def test_xla_is_kept_where_it_should_be():
    x = jnp.ones((2, 3, 20, 20))
    pool = lambda x, k=3: jc.max_pool2d(x, k, 2, 1)  # noqa: E731
    assert "jconv_onednn_max_pool" in _prims(pool, x)
    with onednn.use("xla"):
        assert "jconv_onednn" not in _prims(pool, x)
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float64):
        if dtype != jnp.float64 or jax.config.jax_enable_x64:
            assert "jconv_onednn" not in _prims(pool, x.astype(dtype))
    assert "jconv_onednn" not in _prims(lambda x: jc.max_pool2d(x, 16), x)  # 256 elements: uint8 offsets
    assert "jconv_onednn" not in _prims(pool, jnp.ones((0, 3, 20, 20)))
    avg = lambda x, include_pad: jc.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=include_pad)  # noqa: E731
    x20 = jnp.ones((2, 3, 20, 20))  # ceil mode adds a column of padding, which PyTorch's divisor ignores
    assert "jconv_onednn_avg_pool" not in _prims(lambda x: avg(x, True), x20)
    assert "jconv_onednn_avg_pool" in _prims(lambda x: avg(x, False), x20)
    lowered = jax.jit(pool).trace(x).lower(lowering_platforms=("cuda",)).as_text()
    assert "jconv_onednn" not in lowered and "reduce_window" in lowered  # accelerators: XLA's
