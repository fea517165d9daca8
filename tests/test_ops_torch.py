"""Forward passes and gradients against PyTorch's ``torch.nn.functional`` (an independent oracle).

Skipped, with the reason, when torch is not installed (``pip install torch==2.13.0``).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jconv as jc


def _cases(seed, count):
    """Sampled products of shape x kernel x stride x padding x dilation x groups x layout."""
    rng = np.random.default_rng(seed)
    grid = list(itertools.product(
        [1, 2, 4],  # groups
        [(1, 1), (3, 3), (2, 4), (5, 2)],  # kernel
        [(1, 1), (2, 2), (3, 2)],  # strides
        [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((2, 0), (1, 3))],  # padding
        [(1, 1), (2, 1)],  # dilation
        ["NCHW", "NHWC"],
    ))
    for i in rng.choice(len(grid), size=count, replace=False):
        groups, k, s, p, d, layout = grid[i]
        h, w = int(rng.integers(7, 14)), int(rng.integers(7, 14))
        c, o = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        yield int(rng.integers(1, 3)), c, h, w, o, groups, k, s, p, d, layout


CONV_CASES = list(enumerate(_cases(0, 40)))


@pytest.mark.parametrize("index, case", CONV_CASES, ids=[str(i) for i, _ in CONV_CASES])
def test_conv2d_forward_and_gradients_match_torch(cpu_conv, torch, index, case):
    F = torch.nn.functional
    n, c, h, w, o, groups, k, s, p, d, layout = case
    rng = np.random.default_rng(index)
    x = rng.normal(size=(n, c, h, w)).astype(np.float32)
    wt = rng.normal(size=(o, c // groups) + k).astype(np.float32)
    b = rng.normal(size=(o,)).astype(np.float32)

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, wt, b))
    ty = F.conv2d(F.pad(tx, (p[1][0], p[1][1], p[0][0], p[0][1])), tw, tb, s, 0, d, groups)
    cot = rng.normal(size=tuple(ty.shape)).astype(np.float32)
    (ty * torch.tensor(cot)).sum().backward()

    to_l = (lambda a: a) if layout == "NCHW" else (lambda a: jnp.transpose(a, (0, 2, 3, 1)))

    def f(x, wt, b):
        y = jc.conv2d(to_l(x), wt, b, strides=s, padding=p, dilation=d, groups=groups,
                      layout=layout, precision="highest")
        return (y * to_l(cot)).sum(), y

    (_, y), grads = jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(x, wt, b)
    tol = dict(rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(y, to_l(ty.detach().numpy()), **tol)
    for g, t in zip(grads, (tx, tw, tb)):
        np.testing.assert_allclose(g, t.grad.numpy(), **tol)


POOL_CASES = list(itertools.product(
    [(2, 2), (3, 3), (3, 2)],  # pool
    [None, (1, 1), (2, 1)],  # strides
    [0, 1],  # symmetric padding (torch allows at most half the window)
    [False, True],  # ceil_mode
    [False, True],  # count_include_pad
))


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(c) for c in POOL_CASES])
def test_pooling_forward_and_gradients_match_torch(torch, case):
    F = torch.nn.functional
    pool, strides, pad, ceil_mode, cip = case
    if pad * 2 > min(pool):
        pytest.skip("torch needs padding <= half the window")
    rng = np.random.default_rng(1)
    # unique values, so max-pooling gradients are well defined
    x = rng.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8).astype(np.float32) / 10
    s = pool if strides is None else strides
    tx = torch.tensor(x, requires_grad=True)
    tmax = F.max_pool2d(tx, pool, s, pad, ceil_mode=ceil_mode)
    tavg = F.avg_pool2d(tx, pool, s, pad, ceil_mode=ceil_mode, count_include_pad=cip)
    cm = rng.normal(size=tuple(tmax.shape)).astype(np.float32)
    ca = rng.normal(size=tuple(tavg.shape)).astype(np.float32)
    ((tmax * torch.tensor(cm)).sum() + (tavg * torch.tensor(ca)).sum()).backward()

    def f(x):
        ym = jc.max_pool2d(x, pool, strides, pad, ceil_mode=ceil_mode)
        ya = jc.avg_pool2d(x, pool, strides, pad, ceil_mode=ceil_mode, count_include_pad=cip)
        return (ym * cm).sum() + (ya * ca).sum(), (ym, ya)

    (_, (ym, ya)), g = jax.value_and_grad(f, has_aux=True)(x)
    np.testing.assert_array_equal(ym, tmax.detach().numpy())
    np.testing.assert_allclose(ya, tavg.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_max_pool_gradient_ties_go_to_the_first_maximum(torch):
    """Documented tie-breaking: the first maximum in row-major window order, as PyTorch."""
    x = np.array([[[[1.0, 1.0, 0.0], [1.0, 1.0, 2.0], [2.0, 0.0, 2.0]]]], np.float32)
    g = jax.grad(lambda x: jc.max_pool2d(x, 2, 1).sum())(x)
    np.testing.assert_array_equal(
        g[0, 0], [[1.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.0, 0.0, 0.0]]
    )
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 2, 1).sum().backward()
    np.testing.assert_array_equal(g, tx.grad.numpy())


def test_max_pool_propagates_nan(torch):
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    y = np.asarray(jc.max_pool2d(x, 2))
    t = torch.nn.functional.max_pool2d(torch.tensor(x), 2).numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(t))
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1, 1])
