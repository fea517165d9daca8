"""Layers with state and randomness (BatchNorm, Dropout) and the containers (Residual, Concat,
Lambda): PyTorch's BatchNorm1d/2d as the oracle, Dropout's rule and keys, shape agreement,
jit / vmap / grad, errors."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jconv import nn


def _torch_bn(torch, x, train_steps, momentum=0.9, eps=1e-5):
    """PyTorch's BatchNorm over ``train_steps`` batches (train mode), then the eval output."""
    cls = torch.nn.BatchNorm1d if x[0].ndim == 2 else torch.nn.BatchNorm2d
    bn = cls(x[0].shape[1], eps=eps, momentum=1 - momentum).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(np.linspace(0.5, 1.5, x[0].shape[1])))
        bn.bias.copy_(torch.tensor(np.linspace(-1, 1, x[0].shape[1])))
    outs = []
    for xb in x[:train_steps]:
        outs.append(bn(torch.tensor(xb)).detach().numpy())
    bn.eval()
    return bn, outs, bn(torch.tensor(x[-1])).detach().numpy()


@pytest.mark.parametrize("shape", [(6, 4), (5, 3, 4, 4)])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_batchnorm_equals_torch_in_train_and_eval_mode(torch, shape, layout):
    rng = np.random.default_rng(0)
    xs = [rng.normal(2.0, 3.0, size=shape) for _ in range(4)]
    bn_t, train_t, eval_t = _torch_bn(torch, xs, 3)
    to_last = (lambda a: np.moveaxis(a, 1, -1)) if layout == "channels_last" else (lambda a: a)
    bn = nn.BatchNorm(axis=1 if layout == "channels_first" else -1)
    c = shape[1]
    with jax.enable_x64(True):
        params = {"gamma": jnp.asarray(np.linspace(0.5, 1.5, c)), "beta": jnp.asarray(np.linspace(-1, 1, c))}
        _, state = bn.init_with_state(jax.random.key(0), to_last(xs[0]).shape)
        state = jax.tree.map(lambda a: a.astype(jnp.float64), state)
        step = jax.jit(lambda p, s, x: bn.apply_with_state(p, s, x, train=True))
        for xb, yt in zip(xs[:3], train_t):
            y, state = step(params, state, jnp.asarray(to_last(xb)))
            np.testing.assert_allclose(y, to_last(yt), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(state["running_mean"], bn_t.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(state["running_var"], bn_t.running_var.numpy(), rtol=1e-12)
        y, same = bn.apply_with_state(params, state, jnp.asarray(to_last(xs[3])))
        np.testing.assert_allclose(y, to_last(eval_t), rtol=1e-10, atol=1e-10)
        assert same is state


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 5)])
def test_batchnorm_gradients_equal_torch(torch, shape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    c = shape[1]
    gamma, beta = rng.uniform(0.5, 1.5, c).astype(np.float32), rng.normal(size=c).astype(np.float32)
    cls = torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d
    bn_t = cls(c)
    with torch.no_grad():
        bn_t.weight.copy_(torch.tensor(gamma))
        bn_t.bias.copy_(torch.tensor(beta))
    tx = torch.tensor(x, requires_grad=True)
    bn_t(tx).backward(torch.tensor(g))
    bn = nn.BatchNorm()
    _, state = bn.init_with_state(jax.random.key(0), shape)
    f = lambda p, x: bn.apply_with_state(p, state, x, train=True)[0]  # noqa: E731
    _, vjp = jax.vjp(f, {"gamma": jnp.asarray(gamma), "beta": jnp.asarray(beta)}, jnp.asarray(x))
    dp, dx = vjp(jnp.asarray(g))
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dp["gamma"], bn_t.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dp["beta"], bn_t.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_batchnorm_defaults_state_and_apply_error():
    bn = nn.BatchNorm()
    assert (bn.axis, bn.momentum, bn.epsilon, bn.center, bn.scale) == (1, 0.9, 1e-5, True, True)
    params, state = bn.init_with_state(jax.random.key(0), (2, 3, 4, 4))
    np.testing.assert_array_equal(params["gamma"], np.ones(3))
    np.testing.assert_array_equal(params["beta"], np.zeros(3))
    np.testing.assert_array_equal(state["running_mean"], np.zeros(3))
    np.testing.assert_array_equal(state["running_var"], np.ones(3))
    assert bn.init(jax.random.key(0), (2, 3, 4, 4)).keys() == {"gamma", "beta"}
    assert nn.BatchNorm(center=False, scale=False).init(jax.random.key(0), (2, 3)) == {}
    net = nn.Sequential(nn.Conv2D(3, 3), nn.BatchNorm())
    assert net.has_state and not nn.Sequential(nn.Conv2D(3, 3)).has_state
    with pytest.raises(ValueError, match=r"BatchNorm: this layer has state .*call `apply_with_state"):
        net.apply(net.init(jax.random.key(0), (2, 1, 5, 5)), jnp.ones((2, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"BatchNorm: training needs more than one value per channel"):
        bn.apply_with_state(params, state, jnp.ones((1, 3)), train=True)


def test_batchnorm_bf16_stays_bf16_and_eval_is_pure():
    bn = nn.BatchNorm()
    params, state = bn.init_with_state(jax.random.key(0), (4, 2, 3, 3))
    x = jax.random.normal(jax.random.key(1), (4, 2, 3, 3)).astype(jnp.bfloat16)
    y, new = bn.apply_with_state(params, state, x, train=True)
    assert y.dtype == jnp.bfloat16 and new["running_mean"].dtype == jnp.float32
    a, _ = bn.apply_with_state(params, new, x)
    b, _ = bn.apply_with_state(params, new, x)
    np.testing.assert_array_equal(a, b)


def test_dropout_rule_keys_and_modes():
    d = nn.Dropout(0.25)
    x = jnp.ones((200, 50))
    y, _ = d.apply_with_state({}, {}, x, train=True, key=jax.random.key(0))
    vals = set(np.unique(np.asarray(y)).tolist())
    assert vals == {0.0, float(np.float32(1) / np.float32(0.75))}
    frac = float((y == 0).mean())
    assert abs(frac - 0.25) < 0.02  # 10,000 draws: 4 sigma
    expected = jax.random.bernoulli(jax.random.key(0), 0.75, x.shape) / 0.75
    np.testing.assert_array_equal(y, expected)
    y2, _ = d.apply_with_state({}, {}, x, train=True, key=jax.random.key(1))
    assert not np.array_equal(y, y2)
    np.testing.assert_array_equal(d.apply({}, x), x)
    np.testing.assert_array_equal(d.apply_with_state({}, {}, x)[0], x)
    with pytest.raises(ValueError, match=r"Dropout: train=True needs a `key`"):
        d.apply_with_state({}, {}, x, train=True)
    # Two Dropouts in a container draw different masks: fold_in(key, position).
    net = nn.Sequential(nn.Dropout(0.5), nn.Lambda(lambda x: x * 0 + 1), nn.Dropout(0.5))
    p, s = net.init_with_state(jax.random.key(0), (1, 64))
    out, _ = net.apply_with_state(p, s, jnp.ones((1, 64)), train=True, key=jax.random.key(3))
    expected = jax.random.bernoulli(jax.random.fold_in(jax.random.key(3), 2), 0.5, (1, 64)) / 0.5
    np.testing.assert_array_equal(out, expected)
    assert net.needs_key and not nn.Sequential(nn.Dropout(0.0)).needs_key
    for bad, exc in [(1.0, ValueError), (-0.1, ValueError), ("0.5", TypeError)]:
        with pytest.raises(exc, match="Dropout: `rate`"):
            nn.Dropout(bad)


def test_residual_and_concat_compute_what_they_say():
    body = nn.Sequential(nn.Conv2D(4, 3, padding=1), nn.BatchNorm())
    block = nn.Residual(body, nn.Conv2D(4, 1, strides=1), activation="relu")
    x = jax.random.normal(jax.random.key(1), (2, 3, 6, 6))
    p, s = block.init_with_state(jax.random.key(0), x.shape)
    y, s2 = block.apply_with_state(p, s, x, train=True)
    yb, sb = body.apply_with_state(p["body"], s["body"], x, train=True)
    ys = nn.Conv2D(4, 1).apply(p["shortcut"], x)
    np.testing.assert_allclose(y, jax.nn.relu(yb + ys), rtol=1e-6, atol=1e-6)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), s2["body"], sb))
    identity = nn.Residual(nn.Conv2D(3, 3, padding=1), activation=jnp.tanh)
    pi = identity.init(jax.random.key(0), x.shape)
    np.testing.assert_allclose(identity.apply(pi, x), jnp.tanh(nn.Conv2D(3, 3, padding=1).apply(pi["body"], x) + x),
                               rtol=1e-6, atol=1e-6)
    cat = nn.Concat(nn.Conv2D(2, 1), nn.Sequential(), nn.MaxPool2D(3, 1, padding=1))
    pc = cat.init(jax.random.key(0), x.shape)
    yc = cat.apply(pc, x)
    assert yc.shape == (2, 2 + 3 + 3, 6, 6)
    np.testing.assert_array_equal(yc[:, 2:5], x)
    with pytest.raises(ValueError, match=r"Residual: the body gives \(2, 4, 6, 6\) but the shortcut gives \(2, 3, 6, 6\)"):
        nn.Residual(nn.Conv2D(4, 3, padding=1)).init(jax.random.key(0), x.shape)
    with pytest.raises(ValueError, match=r"Concat: the branches' outputs .* differ on axes other than 1"):
        nn.Concat(nn.Conv2D(2, 1), nn.Conv2D(2, 3)).output_shape(x.shape)
    with pytest.raises(TypeError, match=r"Concat: argument 1 must be a layer"):
        nn.Concat(nn.Conv2D(2, 1), "relu")


@st.composite
def stateful_cases(draw):
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    c = draw(st.integers(1, 4))
    h, w = draw(st.integers(4, 9)), draw(st.integers(4, 9))
    axis = 1 if layout == "NCHW" else -1
    conv = lambda k: nn.Conv2D(c, k, padding="same", layout=layout)  # noqa: E731
    layer = draw(st.sampled_from([
        nn.BatchNorm(axis=axis),
        nn.Dropout(0.3),
        nn.Residual(nn.Sequential(conv(3), nn.BatchNorm(axis=axis)), activation="relu"),
        nn.Residual(conv(1), nn.Sequential(conv(3), nn.Dropout(0.2))),
        nn.Concat(conv(1), nn.Sequential(nn.BatchNorm(axis=axis), conv(3)), axis=axis),
        nn.Lambda(lambda x: x[:, ::2]),
        nn.Sequential(conv(3), nn.BatchNorm(axis=axis), nn.Activation(jax.nn.gelu), nn.Dropout(0.5)),
    ]))
    shape = (3, c, h, w) if layout == "NCHW" else (3, h, w, c)
    return layer, shape, draw(st.booleans())


@given(stateful_cases())
def test_output_shape_equals_apply_with_state_shape(case):
    layer, shape, train = case
    params, state = layer.init_with_state(jax.random.key(0), shape)
    y, new = jax.jit(lambda p, s, x: layer.apply_with_state(p, s, x, train=train, key=jax.random.key(1)))(
        params, state, jnp.ones(shape))
    assert layer.output_shape(shape) == y.shape
    assert jax.tree.structure(new) == jax.tree.structure(state)
    abstract = jax.eval_shape(lambda p, s, x: layer.apply_with_state(p, s, x, train=train, key=jax.random.key(1)),
                              params, state, jax.ShapeDtypeStruct(shape, jnp.float32))
    assert abstract[0].shape == y.shape
    hash(layer)


def test_jit_vmap_grad_through_state():
    net = nn.Sequential(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.Dropout(0.5),
                        nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(3))
    x = jax.random.normal(jax.random.key(1), (8, 2, 5, 5))
    params, state = net.init_with_state(jax.random.key(0), x.shape)

    def loss(p, s, x, key):
        y, s = net.apply_with_state(p, s, x, train=True, key=key)
        return jnp.mean(y ** 2), s

    eager = loss(params, state, x, jax.random.key(2))
    jitted = jax.jit(loss)(params, state, x, jax.random.key(2))
    np.testing.assert_allclose(eager[0], jitted[0], rtol=1e-5)
    grads, new_state = jax.grad(loss, has_aux=True)(params, state, x, jax.random.key(2))
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))
    assert not np.array_equal(new_state[1]["running_mean"], state[1]["running_mean"])
    # vmap over independent models (e.g. an ensemble): batch statistics per member
    xs = jnp.stack([x, 2 * x])
    ys, _ = jax.vmap(lambda x: net.apply_with_state(params, state, x))(xs)
    np.testing.assert_allclose(ys[0], net.apply_with_state(params, state, x)[0], rtol=1e-5, atol=1e-6)


def test_hashable_layers_and_dtypes():
    for layer in [nn.Conv2D(2, 3, padding=[1, 1]), nn.Conv2D(2, 3, padding=[[1, 0], [0, 1]]),
                  nn.MaxPool2D(2, padding=[1, 1]), nn.Dense(3, precision=["highest", "highest"]),
                  nn.BatchNorm(), nn.Dropout(0.1), nn.Residual(nn.Sequential()), nn.Concat(nn.Flatten()),
                  nn.Lambda(jnp.tanh), nn.Activation(jax.nn.gelu)]:
        hash(layer)
    assert nn.Conv2D(2, 3, padding=[1, 1]) == nn.Conv2D(2, 3, padding=1)
    x = jnp.ones((2, 1, 6, 6), jnp.bfloat16)
    for layer in (nn.Conv2D(2, 3), nn.Dense(4)):
        p = layer.init(jax.random.key(0), x.shape)
        assert jax.tree.leaves(p)[0].dtype == jnp.float32
        assert layer.apply(p, x).dtype == jnp.bfloat16
    layer = nn.Dense(4, dtype=jnp.float32, param_dtype=jnp.bfloat16)
    p = layer.init(jax.random.key(0), x.shape)
    assert p["weight"].dtype == jnp.bfloat16 and layer.apply(p, x).dtype == jnp.float32


def test_nested_summary():
    net = nn.Sequential(nn.Conv2D(4, 3, padding=1), nn.Residual(nn.Sequential(nn.Conv2D(4, 3, padding=1),
                                                                                nn.BatchNorm()), activation="relu"),
                        nn.Concat(nn.Conv2D(2, 1), nn.Sequential()), nn.Flatten(), nn.Dense(10))
    table = nn.summary(net, (1, 3, 8, 8))
    lines = table.splitlines()
    assert lines[1].startswith("Conv2D(3 -> 4")
    assert lines[2].startswith("Residual(activation=relu)") and "(1, 4, 8, 8)" in lines[2]
    assert lines[3].startswith("  Sequential") and lines[4].startswith("    Conv2D(4 -> 4")
    assert lines[5].startswith("    BatchNorm(axis=1") and lines[5].rstrip().endswith(" 8")
    assert any(l.startswith("Concat(axis=1)") and "(1, 6, 8, 8)" in l for l in lines)
    params = net.init(jax.random.key(0), (1, 3, 8, 8))
    total = sum(a.size for a in jax.tree.leaves(params))
    assert lines[-1].split()[-1] == f"{total:,}"


def test_batchnorm_uses_the_global_batch_on_eight_devices():
    script = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from jconv import nn, train
net = nn.Sequential(nn.Conv2D(3, 3, padding=1), nn.BatchNorm(), nn.Dense(2))
x = np.random.default_rng(0).normal(size=(16, 2, 4, 4)).astype(np.float32)
params, state = net.init_with_state(jax.random.key(0), x.shape)
mesh = train.data_mesh()
f = jax.jit(lambda p, s, x: net.apply_with_state(p, s, x, train=True),
            in_shardings=(NamedSharding(mesh, P()), NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))))
y, s = f(params, state, x)
np.savez(__import__("sys").argv[1], y=np.asarray(y), mean=np.asarray(s[1]["running_mean"]), var=np.asarray(s[1]["running_var"]),
         devices=jax.device_count())
"""
    out = {}
    for devices in (1, 8):
        path = f"{os.environ.get('TMPDIR', '/tmp')}/bn{devices}_{os.getpid()}.npz"
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        proc = subprocess.run([sys.executable, "-c", script, path], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[devices] = dict(np.load(path))
        os.remove(path)
    assert out[8]["devices"] == 8
    for k in ("y", "mean", "var"):  # 2 examples per device: per-device statistics would differ a lot
        np.testing.assert_allclose(out[8][k], out[1][k], rtol=1e-5, atol=1e-6)
