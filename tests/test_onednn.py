"""The oneDNN CPU convolution backend (``jconv/_src/onednn.py``, ``csrc/onednn_conv.cc``).

* Values and both gradients against ``lax.conv_general_dilated`` over hypothesis geometries
  (rank 1-3, strides, dilation, per-side padding, groups, both layouts), under ``jit``; a PyTorch
  spot check; conv_transpose (the input-gradient kernel) against the XLA backend.
* JAX's transformations: ``jvp``, ``hessian`` and ``check_grads`` to second order, ``vmap`` of
  the data, of the weights and of per-example gradients, and 8-device batch sharding (each device
  convolves its shard: no all-gather, per-shard custom calls).
* Where XLA's convolution is kept (other dtypes, ``JCONV_CPU_CONV=xla``, other platforms), and
  what happens without the extension or the wheel, or with a bad ``JCONV_CPU_CONV``.
"""

import json
import os
import platform
import subprocess
import sys

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from jax import lax
from jax.test_util import check_grads

import jconv as jc
from jconv._src import checks
from jconv._src.onednn import backend as onednn
from jconv._src.ops import conv_cpu, conv_dense, geometry
from jconv._src.platform import traced_as

needs_onednn = pytest.mark.skipif(jc.cpu_conv_backend() != "onednn", reason=onednn.describe())
_LAYOUTS = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def test_the_backend_is_built_where_the_wheels_exist():
    """On Linux x86-64 the install builds the extension (a silent fallback would hide a broken
    build); elsewhere jconv runs on XLA's convolutions."""
    if sys.platform == "linux" and platform.machine() == "x86_64" and "JCONV_CPU_CONV" not in os.environ:
        assert jc.cpu_conv_backend() == "onednn", onednn.describe()
    assert jc.cpu_conv_backend() in ("onednn", "xla")


@st.composite
def conv_cases(draw):
    rank = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c, o = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(rank))
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    size = tuple(draw(st.integers(max(1, e - lo - hi), e + 5)) for e, (lo, hi) in zip(extent, padding))
    layout = draw(st.sampled_from(_LAYOUTS[rank]))
    n = draw(st.integers(1, 3))
    return rank, n, c, o, size, kernel, strides, dilation, padding, groups, layout, draw(st.integers(0, 2**31 - 1))


def _inputs(case):
    rank, n, c, o, size, kernel, strides, dilation, padding, groups, layout, seed = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c) + size).astype(np.float32)
    if layout[-1] == "C":
        x = np.moveaxis(x, 1, -1)
    w = rng.normal(size=(o, c // groups) + kernel).astype(np.float32)
    kw = dict(strides=strides, padding=padding, dilation=dilation, groups=groups, layout=layout)
    return jnp.asarray(x), jnp.asarray(w), kw


def _lax_conv(x, w, strides, padding, dilation, groups, layout):
    spatial = "DHW"[3 - (w.ndim - 2):]
    return lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation, feature_group_count=groups,
                                    dimension_numbers=(layout, "OI" + spatial, layout), precision="highest")


def _prims(f, *args):
    """The jaxpr of the CPU formulation, traced afresh (a new function: jit's trace cache would
    return an earlier trace, made under another backend)."""
    with traced_as("cpu"):
        return str(jax.make_jaxpr(lambda *a: f(*a))(*args))


def _loss(conv):
    return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))  # a cotangent that is not all ones


def _value_and_grads(conv, vmap=False):
    """``(conv(x, w), d loss/dx, d loss/dw)``, compiled as one program (mapped over a leading axis)."""
    f = lambda x, w: (conv(x, w), *jax.grad(_loss(conv), (0, 1))(x, w))  # noqa: E731
    return jax.jit(jax.vmap(f) if vmap else f)


@needs_onednn
@settings(max_examples=30, deadline=None)
@given(conv_cases())
def test_onednn_equals_lax_conv(case):
    x, w, kw = _inputs(case)
    ours = lambda x, w: jc.conv(x, w, **kw)  # noqa: E731
    ref = lambda x, w: _lax_conv(x, w, **kw)  # noqa: E731
    # 1x1 on maps below 12x12 (all of this sweep's): the matmul path, measured faster; where every
    # output window reaches every input position, the dense form (then oneDNN is checked directly)
    spec = _spec(x, w, kw)
    dense = conv_dense.dense_taps(x.shape, w.shape, spec, kw["groups"]) is not None
    matmul = w.ndim == 4 and w.shape[2:] == (1, 1) and kw["groups"] == 1
    assert ("jconv_onednn_conv_fwd" in _prims(ours, x, w)) != (matmul or dense)
    forms = [ours] + [lambda x, w: conv_cpu._on_onednn(x, w, spec, kw["groups"])] * dense
    y_ref, *want = _value_and_grads(ref)(x, w)
    for form in forms:
        y, *got = _value_and_grads(form)(x, w)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
        for g, r in zip(got, want):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


def _spec(x, w, kw):
    """The static description of ``jc.conv(x, w, **kw)`` (batched ``x``)."""
    spatial = checks.spatial_dims(x.shape, kw["layout"])
    geo = geometry.conv_geometry("t", spatial, w.shape[2:], kw["strides"], kw["padding"], kw["dilation"])
    return geometry._ConvSpec(kw["strides"], geo, kw["dilation"], kw["layout"], None)


@needs_onednn
@pytest.mark.parametrize("size, strides, layout", [((12, 12), 1, "NCHW"), ((13, 15), 1, "NHWC"),
                                                   ((27, 26), 2, "NCHW"), ((30, 30), 1, "NHWC")])
def test_1x1_convolutions_on_mid_sized_maps_run_on_onednn(size, strides, layout):
    """12x12 to 27x27 output maps (NiN's 13x13, DenseNet's 14x14): oneDNN, measured faster there
    than the matmuls (``conv_cpu._formulation_1x1``); 28x28 and larger: per-example matmuls."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5) + size).astype(np.float32)
    x = jnp.asarray(np.moveaxis(x, 1, -1) if layout == "NHWC" else x)
    w = jnp.asarray(rng.normal(size=(4, 5, 1, 1)).astype(np.float32))
    kw = dict(strides=(strides, strides), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1, layout=layout)
    ours = lambda x, w: jc.conv(x, w, **kw)  # noqa: E731
    out = [-(-s // strides) for s in size]
    assert ("jconv_onednn_conv_fwd" in _prims(ours, x, w)) == (out[0] * out[1] < 28 * 28), out
    (y, *got), (y_ref, *want) = _value_and_grads(ours)(x, w), _value_and_grads(lambda x, w: _lax_conv(x, w, **kw))(x, w)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


@needs_onednn
@settings(max_examples=15, deadline=None)
@given(conv_cases())
def test_vmap_folds_into_groups(case):
    """Mapped weights and per-example gradients fold into the groups: every rank and layout."""
    x, w, kw = _inputs(case)
    xs, ws = jnp.stack([x, jnp.cos(x)]), jnp.stack([w, -0.5 * w])
    ours = lambda x, w: jc.conv(x, w, **kw)  # noqa: E731
    ref = lambda x, w: _lax_conv(x, w, **kw)  # noqa: E731
    (y, *got), (y_ref, *want) = _value_and_grads(ours, vmap=True)(xs, ws), _value_and_grads(ref, vmap=True)(xs, ws)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


@needs_onednn
def test_onednn_equals_torch(torch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 13, 11)).astype(np.float32)
    w = rng.normal(size=(8, 3, 3, 2)).astype(np.float32)
    kw = dict(strides=(2, 1), padding=((1, 1), (0, 0)), dilation=(1, 2), groups=2)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    (ty.sin().sum()).backward()
    y = jc.conv2d(x, w, **kw)
    gx, gw = jax.grad(_loss(lambda x, w: jc.conv2d(x, w, **kw)), (0, 1))(x, w)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-4, atol=1e-4)


@needs_onednn
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv_transpose_on_onednn_equals_xla(layout):
    """conv_transpose is the input-gradient kernel (strided: instead of the written-out taps)."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=(2, 6, 5, 7)).astype(np.float32)
    y = np.moveaxis(y, 1, -1) if layout == "NHWC" else y
    w = rng.normal(size=(6, 2, 4, 3)).astype(np.float32)
    kw = dict(strides=(2, 3), padding=1, output_padding=(1, 0), groups=2, layout=layout)
    f = _loss(lambda y, w: jc.conv_transpose2d(y, w, **kw))
    assert "jconv_onednn_conv_bwd_data" in _prims(f, y, w)
    got = jax.value_and_grad(f, (0, 1))(y, w)
    with onednn.use("xla"):
        want = jax.value_and_grad(f, (0, 1))(y, w)
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


def _case():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(3, 4, 7, 6)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(6, 2, 3, 3)) / 4, jnp.float32)
    kw = dict(strides=(2, 1), padding=((1, 0), (1, 1)), groups=2)
    return x, w, (lambda x, w: jc.conv2d(x, w, **kw)), (lambda x, w: _lax_conv(x, w, (2, 1), ((1, 0), (1, 1)), (1, 1), 2,
                                                                            "NCHW"))


@needs_onednn
def test_forward_mode_and_second_order():
    x, w, ours, ref = _case()
    check_grads(ours, (x, w), order=2, modes=("fwd", "rev"), atol=2e-2, rtol=2e-2, eps=1e-2)
    t = (jnp.cos(x), jnp.sin(w))
    np.testing.assert_allclose(jax.jvp(_loss(ours), (x, w), t)[1], jax.jvp(_loss(ref), (x, w), t)[1], rtol=1e-4)
    h = jax.hessian(lambda w: _loss(ours)(x, w))(w)
    np.testing.assert_allclose(h, jax.hessian(lambda w: _loss(ref)(x, w))(w), rtol=1e-3, atol=1e-4)
    jaxpr = _prims(jax.hessian(lambda w: _loss(ours)(x, w)), w)
    assert "conv_general_dilated" not in jaxpr  # every term of the second derivative on oneDNN


@needs_onednn
def test_vmap():
    x, w, ours, ref = _case()
    xs, ws = jnp.stack([x, -2 * x]), jnp.stack([w, w[::-1]])
    np.testing.assert_allclose(jax.vmap(ours, (0, None))(xs, w), jax.vmap(ref, (0, None))(xs, w), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.vmap(ours, (None, 0))(x, ws), jax.vmap(ref, (None, 0))(x, ws), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.vmap(ours)(xs, ws), jax.vmap(ref)(xs, ws), rtol=1e-5, atol=1e-5)
    # per-example gradients: vmap of grad
    pe = lambda f: jax.vmap(jax.grad(_loss(f), 1), (0, None))(xs, w)  # noqa: E731
    np.testing.assert_allclose(pe(ours), pe(ref), rtol=1e-4, atol=1e-4)
    # a mapped batch folds into N, mapped weights into the groups: one custom call, not a loop
    for axes, args in (((0, None), (xs, w)), ((None, 0), (x, ws)), ((0, 0), (xs, ws))):
        jaxpr = _prims(jax.vmap(ours, axes), *args)
        assert jaxpr.count("jconv_onednn_conv_fwd") == 1 and "while" not in jaxpr, axes
    jaxpr = _prims(lambda xs, w: jax.vmap(jax.grad(_loss(ours), 1), (0, None))(xs, w), xs, w)
    assert "jconv_onednn_conv_bwd_weights" in jaxpr and "while" not in jaxpr
    # channels last, per-example gradients of both operands
    last = lambda x, w: jc.conv2d(x, w, strides=(2, 1), padding=((1, 0), (1, 1)), groups=2, layout="NHWC")  # noqa: E731
    ref_last = lambda x, w: _lax_conv(x, w, (2, 1), ((1, 0), (1, 1)), (1, 1), 2, "NHWC")  # noqa: E731
    xl = jnp.moveaxis(xs, 2, -1)
    pe = lambda f: jax.vmap(jax.grad(_loss(f), (0, 1)))(xl, ws)  # noqa: E731
    for g, r in zip(pe(last), pe(ref_last)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


@needs_onednn
def test_concurrent_calls_in_one_program():
    """XLA:CPU runs independent custom calls of one program concurrently on its threads: twelve
    geometries, forward and both gradients, several calls (each thread builds and caches its own
    primitives; a shared cache or stream would race)."""
    rng = np.random.default_rng(3)
    geos = [(c, o, k, s) for c in (1, 3, 8) for o, k, s in ((4, 3, 1), (6, 2, 2))] + \
           [(c, o, k, 1) for c in (2, 5) for o, k in ((3, 5), (7, 1))]
    xs = [jnp.asarray(rng.normal(size=(3, c, 12, 10)), jnp.float32) for c, _, _, _ in geos]
    ws = [jnp.asarray(rng.normal(size=(o, c, k, k)), jnp.float32) for c, o, k, _ in geos]

    def total(conv):
        return lambda xs, ws: sum(jnp.sum(jnp.sin(conv(x, w, s))) for x, w, (_, _, _, s) in zip(xs, ws, geos))

    ours = jax.jit(jax.value_and_grad(total(lambda x, w, s: jc.conv2d(x, w, strides=s, padding=1)), (0, 1)))
    want = jax.value_and_grad(total(lambda x, w, s: _lax_conv(x, w, (s, s), ((1, 1), (1, 1)), (1, 1), 1, "NCHW")),
                              (0, 1))(xs, ws)
    for _ in range(3):
        got = ours(xs, ws)
        for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


SHARDED = r"""
import json, re
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jconv as jc
mesh = Mesh(np.array(jax.devices()), ("data",))
rows, repl = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
rng = np.random.default_rng(0)
x = rng.normal(size=(16, 4, 9, 9)).astype(np.float32)
w = (rng.normal(size=(8, 4, 3, 3)) / 6).astype(np.float32)
loss = lambda w, x: jnp.mean(jnp.sin(jc.conv2d(x, w, padding=1, strides=(2, 1))))
step = jax.jit(jax.value_and_grad(loss, (0, 1)), in_shardings=(repl, rows), out_shardings=(repl, (repl, rows)))
l, (gw, gx) = step(w, jax.device_put(x, rows))
hlo = step.lower(w, jax.device_put(x, rows)).compile().as_text()
calls = [l for l in hlo.splitlines() if "custom_call_target=\"jconv_onednn" in l]
print(json.dumps({"devices": jax.device_count(), "loss": float(l), "gw": np.asarray(gw).tolist(),
                  "gx": np.asarray(gx).tolist(), "all_gather": "all-gather" in hlo,
                  "calls": [re.search(r'custom_call_target="(\w+)"', c).group(1) for c in calls],
                  "shapes": [c.split("custom-call(")[0].split("=")[1].strip() for c in calls]}))
"""


@needs_onednn
def test_sharded_batch_runs_per_device():
    """8 simulated devices, the batch sharded: every device convolves its 2 examples (no
    all-gather of the batch); gradients equal the single-device ones."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["devices"] == 8 and not r["all_gather"]
    assert sorted(r["calls"]) == ["jconv_onednn_bwd_data", "jconv_onednn_bwd_weights", "jconv_onednn_fwd"]
    assert any(s.startswith("f32[2,") for s in r["shapes"])  # 16 examples / 8 devices
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4, 9, 9)).astype(np.float32)
    w = (rng.normal(size=(8, 4, 3, 3)) / 6).astype(np.float32)
    ref = lambda w, x: jnp.mean(jnp.sin(_lax_conv(x, w, (2, 1), ((1, 1), (1, 1)), (1, 1), 1, "NCHW")))  # noqa: E731
    l, (gw, gx) = jax.value_and_grad(ref, (0, 1))(w, x)
    np.testing.assert_allclose(r["loss"], l, rtol=1e-5)
    np.testing.assert_allclose(r["gw"], gw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r["gx"], gx, rtol=1e-4, atol=1e-7)


def test_xla_is_kept_where_it_should_be():
    x, w = jnp.ones((2, 3, 8, 8)), jnp.ones((4, 3, 3, 3))
    conv = lambda x, w: jc.conv2d(x, w, padding=1)  # noqa: E731
    with onednn.use("xla"):
        assert "jconv_onednn" not in _prims(conv, x, w)
    for dtype in (jnp.bfloat16, jnp.float16):  # float32 only
        assert "jconv_onednn" not in _prims(conv, x.astype(dtype), w.astype(dtype))
    assert "jconv_onednn" not in _prims(conv, jnp.ones((0, 3, 8, 8)), w)  # empty
    lowered = jax.jit(conv).trace(x, w).lower(lowering_platforms=("cuda",)).as_text()
    assert "jconv_onednn" not in lowered and "convolution" in lowered  # accelerators: XLA's
    if jc.cpu_conv_backend() == "onednn":
        assert "jconv_onednn_conv_fwd" in _prims(conv, x, w)
        assert "jconv_onednn" in jax.jit(conv).trace(x, w).lower(lowering_platforms=("cpu",)).as_text()


def test_backend_choice_and_errors(monkeypatch):
    monkeypatch.setattr(onednn, "_requested", lambda: "xla")
    assert jc.cpu_conv_backend() == "xla" and "JCONV_CPU_CONV=xla" in onednn.describe()
    missing = onednn._Library(None, "the onednn-cpu-gomp wheel is not installed")
    monkeypatch.setattr(onednn, "_library", lambda: missing)
    monkeypatch.setattr(onednn, "_requested", lambda: None)
    assert jc.cpu_conv_backend() == "xla" and "wheel is not installed" in onednn.describe()
    monkeypatch.setattr(onednn, "_requested", lambda: "onednn")
    with pytest.raises(RuntimeError, match="JCONV_CPU_CONV=onednn, but oneDNN is unavailable: the onednn-cpu-gomp"):
        jc.cpu_conv_backend()
    with pytest.raises(ValueError, match="use: `backend` must be one of"):
        onednn.use("mkl")


_RUN = "import jconv as jc, jax.numpy as jnp; print(jc.cpu_conv_backend(), float(jc.conv2d(jnp.ones((1, 2, 5, 5)), jnp.ones((3, 2, 3, 3))).sum()))"  # noqa: E501


@pytest.mark.parametrize("value, expect", [("xla", "xla 486.0"), ("XLA ", "xla 486.0"), ("", None),
                                           ("mkl", "JCONV_CPU_CONV must be one of ('onednn', 'xla') or unset")])
def test_the_environment_variable(value, expect):
    env = dict(os.environ, JCONV_CPU_CONV=value)
    out = subprocess.run([sys.executable, "-c", _RUN], env=env, capture_output=True, text=True, timeout=120)
    if expect is None:  # unset: whatever is available
        available = "onednn" if onednn._library().lib is not None else "xla"
        assert out.returncode == 0 and out.stdout.split() == [available, "486.0"]
    elif "must be" in expect:
        assert out.returncode != 0 and expect in out.stderr
    else:
        assert out.returncode == 0 and out.stdout.strip() == expect


_HIDE_WHEEL = r"""
import importlib.metadata as md
real = md.distribution
def distribution(name):
    if name == "onednn-cpu-gomp":
        raise md.PackageNotFoundError(name)
    return real(name)
md.distribution = distribution
import jax, jax.numpy as jnp, numpy as np
import jconv as jc
from jconv._src import checks
from jconv._src.onednn import backend as onednn
from jconv._src.ops import conv_cpu, conv_dense, geometry
from jconv._src.platform import traced_as
x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 8, 8)), jnp.float32)
g = jax.grad(lambda w: jnp.sum(jc.conv2d(x, w, padding=1) ** 2))(jnp.ones((4, 3, 3, 3)))
print(jc.cpu_conv_backend(), onednn.describe(), float(g.sum()))
"""


def test_runs_on_xla_without_the_wheel():
    """The extension built but the runtime wheel gone (or never installable): jconv says so in one
    line and convolves on XLA."""
    out = subprocess.run([sys.executable, "-c", _HIDE_WHEEL], env=dict(os.environ, JCONV_CPU_CONV=""),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("xla CPU convolutions: XLA (the onednn-cpu-gomp wheel is not installed")


@pytest.mark.skipif(onednn.cpu_conv_backend() != "onednn", reason="needs the oneDNN backend")
def test_a_function_jitted_under_one_backend_is_traced_again_under_the_other():
    traces = []

    @jax.jit
    def f(x, w):
        traces.append(onednn.cpu_conv_backend())
        return jc.conv2d(x, w, padding=1)

    x, w = jnp.ones((2, 3, 8, 8)), jnp.ones((4, 3, 3, 3))
    with onednn.use("onednn"):
        y1 = f(x, w)
        f(x, w)
        on_onednn = f.lower(x, w).as_text()
    with onednn.use("xla"):
        y2 = f(x, w)
        on_xla = f.lower(x, w).as_text()
    with onednn.use("onednn"):
        f(x, w)  # back to the first trace: a cache hit
    assert traces == ["onednn", "xla"], traces  # one trace per backend, each reused by its own calls
    assert "jconv_onednn_fwd" in on_onednn and "jconv_onednn_fwd" not in on_xla
    np.testing.assert_allclose(y1, y2, rtol=1e-5)
