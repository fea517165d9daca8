"""jconv's train step with and without blocked oneDNN activations, beside PyTorch's, in one process.

The same network's step is built once per mode and timed in interleaved rounds with the PyTorch step
of ``benchmarks/models.py``; medians and ratios to PyTorch. Modes: ``plain`` (``onednn.conv_block``
and ``onednn.activation_block`` answering 0: every oneDNN convolution and pooling on NCHW buffers,
reordered in each call), ``plain-pools`` (blocked convolutions, plain pooling), ``blocked`` (as
jconv runs), ``no-per-example`` (blocked, and 1x1 convolutions on 28x28+ maps on oneDNN even where
they would not run blocked), ``no-nxc`` (as jconv runs, but convolutions that cannot run blocked on
plain channels-first buffers reordered in the call, not on oneDNN's channels-last kernels).

  python benchmarks/blocked_ab.py --models resnet18 nin --rounds 10
  JCONV_MALLOC=system python benchmarks/blocked_ab.py --models resnet18   # glibc's malloc defaults
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from models import jconv_step, torch_step  # noqa: E402
from jconv._src import bench, onednn  # noqa: E402
from jconv._src.models.zoo import MODELS  # noqa: E402
from jconv._src.ops import conv_cpu  # noqa: E402


def build(name: str, mode: str, batch: int):
    block, pool_block, per_example = onednn.conv_block, onednn.activation_block, conv_cpu._PER_EXAMPLE_1X1_POSITIONS
    nxc = onednn.conv_nxc
    try:
        if mode == "no-nxc":
            onednn.conv_nxc = lambda *a: False
        if mode == "plain":
            onednn.conv_block = lambda *a: 0
        if mode in ("plain", "plain-pools"):
            onednn.activation_block = lambda: 0
        if mode == "no-per-example":
            conv_cpu._PER_EXAMPLE_1X1_POSITIONS = 10**9
        return jconv_step(name, batch)[0]  # traced and compiled here, under the mode
    finally:
        onednn.conv_block, onednn.activation_block, onednn.conv_nxc = block, pool_block, nxc
        conv_cpu._PER_EXAMPLE_1X1_POSITIONS = per_example


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet18"], choices=sorted(MODELS))
    p.add_argument("--modes", nargs="+", default=["plain", "blocked"], choices=["plain", "plain-pools", "blocked", "no-per-example", "no-nxc"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=8)
    args = p.parse_args()
    torch = bench._torch()
    for name in args.models:
        steps = {m: build(name, m, args.batch) for m in args.modes}
        if torch is not None:
            steps["pytorch"] = torch_step(torch, name, args.batch)
        for f in steps.values():
            f()
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(args.rounds):
            for k, f in steps.items():  # interleaved: one of each per round
                t = time.perf_counter()
                f()
                f()
                times[k].append((time.perf_counter() - t) / 2 * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratios = ", ".join(f"{m} / PyTorch {med[m] / med['pytorch']:.3f}" for m in args.modes if "pytorch" in med)
        print(f"{name}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in med.items()) + (f" | {ratios}" if ratios else ""),
              flush=True)


if __name__ == "__main__":
    main()
