"""Max pooling forward + backward on CPU: oneDNN's (jconv's default since session 17, where built), the
XLA formulations (the reshaped slices of ``jconv._src.ops.pooling_cpu._slices_1d`` and the strided
slices jconv used before session 16), and PyTorch; interleaved rounds, medians.

    python benchmarks/pool_slices.py
"""

import statistics
import time

import jax
import numpy as np
import torch
from jax import lax

import jconv as jc
from jconv._src import onednn
from jconv._src.ops import pooling_cpu

RESHAPED = pooling_cpu._slices_1d
CASES = [((32, 64, 112, 112), 3, 2, 1), ((64, 32, 56, 56), 2, 2, 0), ((128, 192, 14, 14), 3, 2, 1),
         ((128, 480, 7, 7), 3, 1, 1), ((256, 6, 28, 28), 2, 2, 0)]


def strided(x, a, fill):
    """The previous ``_slices_1d``: strided slices of the padded axis."""
    cfg = [(0, 0, 0)] * x.ndim
    cfg[a.axis] = (a.lo, a.hi, 0)
    xp = lax.pad(x, np.array(fill, x.dtype), cfg)
    return [lax.slice_in_dim(xp, j, j + (a.n - 1) * a.s + 1, a.s, a.axis) for j in range(a.k)]


def main(rounds: int = 9) -> None:
    torch.set_num_threads(2)
    for shape, k, s, p in CASES:
        x = jax.random.normal(jax.random.key(0), shape)
        g = jax.random.normal(jax.random.key(1), jc.max_pool2d(x, k, s, p).shape)
        steps = {}
        for name, impl, backend in (("onednn", RESHAPED, onednn.cpu_conv_backend()), ("strided", strided, "xla"),
                                    ("reshaped", RESHAPED, "xla")):
            pooling_cpu._slices_1d = impl  # read when the custom_jvp traces
            f = jax.jit(jax.value_and_grad(lambda x: (jc.max_pool2d(x, k, s, p) * g).sum()))
            with onednn.use(backend):
                jax.block_until_ready(f(x))

            def step(f=f, backend=backend):
                with onednn.use(backend):
                    jax.block_until_ready(f(x))

            steps[name] = step
        pooling_cpu._slices_1d = RESHAPED
        xt, gt = torch.tensor(np.asarray(x), requires_grad=True), torch.tensor(np.asarray(g))

        def torch_step():
            xt.grad = None
            torch.nn.functional.max_pool2d(xt, k, s, p).backward(gt)

        steps["torch"] = torch_step
        times = {name: [] for name in steps}
        for _ in range(rounds):
            for name, step in steps.items():
                t = time.perf_counter()
                step()
                step()
                times[name].append((time.perf_counter() - t) / 2 * 1e3)
        m = {name: statistics.median(v) for name, v in times.items()}
        r = lambda a, b: f"{a}/{b} {m[a] / m[b]:.2f}"  # noqa: E731
        print(f"{shape} {k}x{k}/{s} pad {p}: " + ", ".join(f"{n} {t:.2f} ms" for n, t in m.items()) + "; "
              + ", ".join([r("onednn", "torch"), r("onednn", "reshaped"), r("reshaped", "strided"),
                           r("reshaped", "torch")]), flush=True)


if __name__ == "__main__":
    main()
