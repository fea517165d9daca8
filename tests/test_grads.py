"""Numerical gradient checks, and a gradient sweep that must never abort the process."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from jax.test_util import check_grads

import jconv as jc


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(strides=2, padding=1),
        dict(strides=(3, 2), padding=((0, 0), (1, 1))),
        dict(dilation=2, padding="same"),
        dict(groups=2, strides=(1, 2)),
    ],
)
def test_conv2d_check_grads(kwargs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 7, 6))
    w = rng.normal(size=(3 * 2 if kwargs.get("groups") else 3, 4 // kwargs.get("groups", 1), 3, 2))
    b = rng.normal(size=(w.shape[0],))
    with jax.enable_x64(True):
        f = lambda x, w, b: jc.conv2d(x, w, b, **kwargs)
        check_grads(f, (x, w, b), order=2, modes=["fwd", "rev"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(pool_size=2),
        dict(pool_size=3, strides=2, padding=1, ceil_mode=True),
        dict(pool_size=(3, 2), strides=1, padding=(1, 1), count_include_pad=False),
        dict(pool_size=(2, 3), strides=(2, 3), padding=(1, 2), ceil_mode=True),
    ],
)
def test_avg_pool_check_grads(kwargs):
    x = np.random.default_rng(1).normal(size=(2, 3, 7, 8))
    with jax.enable_x64(True):
        check_grads(lambda x: jc.avg_pool2d(x, **kwargs), (x,), order=2, modes=["fwd", "rev"])


def test_max_pool_check_grads_with_unique_values():
    x = np.random.default_rng(2).permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) / 7.0
    with jax.enable_x64(True):
        check_grads(
            lambda x: jc.max_pool2d(x, 3, 2, 1), (x,), order=2, modes=["fwd", "rev"], eps=1e-3
        )


SWEEP = textwrap.dedent(
    """
    import numpy as np, jax, jconv as jc
    rng = np.random.default_rng(int(__import__("sys").argv[1]))
    # The case reported from this machine first: x (2, 2, 12, 12), weight (3, 2, 4, 2).
    x, wt = np.ones((2, 2, 12, 12), np.float32), np.ones((3, 2, 4, 2), np.float32)
    f = lambda x, wt: jc.conv2d(x, wt, strides=(3, 2), padding=((0, 0), (1, 1))).sum()
    gx, gw = jax.grad(f, (0, 1))(x, wt)
    assert gx.shape == x.shape and gw.shape == wt.shape
    done = 0
    while done < 50:
        g = int(rng.choice([1, 2])); c = g * int(rng.integers(1, 3)); o = g * int(rng.integers(1, 3))
        h, w = (int(v) for v in rng.integers(3, 13, 2)); k = tuple(int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2)); d = tuple(int(v) for v in rng.integers(1, 3, 2))
        p = tuple(tuple(int(v) for v in r) for r in rng.integers(0, 3, (2, 2)))
        if h + sum(p[0]) < (k[0] - 1) * d[0] + 1 or w + sum(p[1]) < (k[1] - 1) * d[1] + 1:
            continue
        layout = str(rng.choice(["NCHW", "NHWC"]))
        x = rng.normal(size=(2, c, h, w) if layout == "NCHW" else (2, h, w, c)).astype(np.float32)
        wt = rng.normal(size=(o, c // g) + k).astype(np.float32)
        f = lambda x, wt: (jc.conv2d(x, wt, strides=s, padding=p, dilation=d, groups=g,
                                     layout=layout) ** 2).sum()
        gx, gw = jax.jit(jax.grad(f, (0, 1)))(x, wt)  # one compiled program per case
        assert np.isfinite(gx).all() and np.isfinite(gw).all()
        done += 1
    print("swept", done)
    """
)


@pytest.mark.parametrize("seed, backend", [(1, "xla"), (3, "")])
def test_conv2d_gradient_sweep_never_aborts(seed, backend):
    """jaxlib 0.10.2's CPU compiler aborts the process on some strided conv gradients (a raw
    ``lax.conv_general_dilated`` with implicit padding hit it within 80 random cases of this
    kind of sweep); run in a subprocess so that an abort fails this test instead of pytest.
    One sweep on XLA's convolutions, one on the default backend (oneDNN where built)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", JCONV_CPU_CONV=backend)
    proc = subprocess.run(
        [sys.executable, "-c", SWEEP, str(seed)], capture_output=True, text=True, timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "swept 50" in proc.stdout


SWEEP_ND = textwrap.dedent(
    """
    import numpy as np, jax, jconv as jc
    rng = np.random.default_rng(int(__import__("sys").argv[1]))
    done = 0
    while done < 30:
        n = int(rng.choice([1, 2, 3])); g = int(rng.choice([1, 2]))
        c = g * int(rng.integers(1, 3)); o = g * int(rng.integers(1, 3))
        size = tuple(int(v) for v in rng.integers(2, 8 if n < 3 else 6, n))
        k = tuple(int(v) for v in rng.integers(1, 4, n)); s = tuple(int(v) for v in rng.integers(1, 4, n))
        d = tuple(int(v) for v in rng.integers(1, 3, n))
        p = tuple(tuple(int(v) for v in r) for r in rng.integers(0, 3, (n, 2)))
        last = bool(rng.integers(2))
        layout = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}[n][last]
        shape = (2,) + (size + (c,) if last else (c,) + size)
        x = rng.normal(size=shape).astype(np.float32)
        if rng.integers(2):  # conv
            if any(m + lo + hi < (kk - 1) * dd + 1 for m, (lo, hi), kk, dd in zip(size, p, k, d)):
                continue
            wt = rng.normal(size=(o, c // g) + k).astype(np.float32)
            f = lambda x, wt: (jc.conv(x, wt, strides=s, padding=p, dilation=d, groups=g, layout=layout) ** 2).sum()
        else:  # conv_transpose
            op = tuple(int(rng.integers(0, max(ss, dd))) for ss, dd in zip(s, d))
            out = [(m - 1) * ss - lo - hi + dd * (kk - 1) + oo + 1 for m, ss, (lo, hi), dd, kk, oo in zip(size, s, p, d, k, op)]
            if min(out) < 1:
                continue
            wt = rng.normal(size=(c, o // g) + k).astype(np.float32)
            f = lambda x, wt: (jc.conv_transpose(x, wt, strides=s, padding=p, output_padding=op, dilation=d,
                                                 groups=g, layout=layout) ** 2).sum()
        gx, gw = jax.jit(jax.grad(f, (0, 1)))(x, wt)  # one compiled program per case
        assert np.isfinite(gx).all() and np.isfinite(gw).all()
        done += 1
    print("swept", done)
    """
)


def test_nd_conv_and_conv_transpose_gradient_sweep_never_aborts():
    """The same guarantee through every rank and the transposed convolution (whose gradients
    are second derivatives of the convolution), in a subprocess."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SWEEP_ND, "5"], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "swept 30" in proc.stdout
