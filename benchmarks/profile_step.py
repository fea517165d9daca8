"""Where one train step's time goes: jconv's compiled step under ``jax.profiler``, and the same network's
PyTorch step under ``torch.profiler``, split into convolutions, BatchNorm/reductions, pooling, layout
changes, elementwise work and the rest.

jconv's split: every XLA thunk the profiler records on the CPU threads, classified by its HLO
instruction in the compiled program (oneDNN custom calls, XLA convolutions, dots, fusions by what they
contain). The times are summed over both threads, so the percentages are shares of the CPU time.

  python benchmarks/profile_step.py --model resnet18 --steps 5
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402

from models import jconv_step, torch_step  # noqa: E402
from jconv._src import bench  # noqa: E402

_INSTR = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*? ([a-z][\w\-]*)\((.*)$")
_COMP = re.compile(r"^(?:ENTRY )?%([\w.\-]+) ")


def _computations(hlo: str) -> tuple[dict[str, tuple[str, str]], dict[str, set[str]]]:
    """``{instruction: (opcode, rest of line)}`` and ``{computation: opcodes in it}``."""
    instrs, comps, current = {}, collections.defaultdict(set), None
    for line in hlo.splitlines():
        if (m := _COMP.match(line)) and line.rstrip().endswith("{"):
            current = m.group(1)
        elif (m := _INSTR.match(line)):
            instrs[m.group(1)] = (m.group(2), m.group(3))
            comps[current].add(m.group(2))
    return instrs, comps


def _kind(opcode: str, rest: str, comps: dict[str, set[str]]) -> str:
    if opcode == "custom-call":
        target = re.search(r'custom_call_target="([\w.]+)"', rest)
        name = target.group(1) if target else "?"
        return {"jconv_onednn_fwd": "conv forward (oneDNN)", "jconv_onednn_bwd_data": "conv input grad (oneDNN)",
                "jconv_onednn_bwd_weights": "conv weight grad (oneDNN)",
                "jconv_onednn_max_pool_fwd": "max pooling forward (oneDNN)",
                "jconv_onednn_max_pool_bwd": "max pooling backward (oneDNN)"}.get(name, f"custom call {name}")
    ops = {opcode}
    if opcode == "fusion" and (m := re.search(r"calls=%([\w.\-]+)", rest)):
        ops = comps.get(m.group(1), set())
    if "convolution" in ops:
        return "conv (XLA)"
    if "dot" in ops:
        return "matmul (dense layers, 1x1 convs)"
    if ops & {"reduce-window", "select-and-scatter"}:
        return "pooling (reduce-window)"
    if "reduce" in ops:
        return "reductions (BatchNorm statistics, bias grads, loss)"
    if "concatenate" in ops:
        return "concatenate"
    if ops & {"slice", "pad", "dynamic-slice", "dynamic-update-slice"}:
        return "slices and pads (max pooling passes, padding)"
    if ops <= {"copy", "transpose", "bitcast", "reshape", "parameter", "tuple", "get-tuple-element"}:
        return "layout (copy, transpose)"
    return "elementwise (activations, BatchNorm apply, optimizer)"


def _wall(run: Any, steps: int) -> float:
    """Median wall time of one step, ms (no profiler running)."""
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def jconv_split(name: str, batch: int, steps: int) -> tuple[dict[str, float], float]:
    run, _ = jconv_step(name, batch)
    for _ in range(2):
        run()
    wall = _wall(run, steps)
    hlo = run.compiled_text()  # type: ignore[attr-defined]
    instrs, comps = _computations(hlo)
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        for _ in range(steps):
            run()
        jax.profiler.stop_trace()
        data = jax.profiler.ProfileData.from_file(sorted(glob.glob(f"{d}/**/*.xplane.pb", recursive=True))[-1])
        split: dict[str, float] = collections.defaultdict(float)
        for plane in data.planes:
            for line in plane.lines:
                for e in line.events:
                    if e.name in instrs:
                        split[_kind(*instrs[e.name], comps)] += e.duration_ns / 1e6 / steps
    return dict(split), wall


def torch_split(name: str, batch: int, steps: int) -> tuple[dict[str, float], float]:
    torch = bench._torch()
    run = torch_step(torch, name, batch)
    for _ in range(2):
        run()
    wall = _wall(run, steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            run()
    split: dict[str, float] = collections.defaultdict(float)
    for ev in prof.key_averages():
        # self time of each aten op (children excluded), so nothing counts twice
        n = ev.key
        kind = ("conv" if "conv" in n else "BatchNorm" if "batch_norm" in n else "pooling" if "pool" in n
                else "concatenate" if n in ("aten::cat",) else "matmul" if n in ("aten::addmm", "aten::mm") else
                "optimizer" if "foreach" in n or "sgd" in n.lower() else "other")
        split[kind] += ev.self_cpu_time_total / 1e3 / steps
    return dict(split), wall


def _print(title: str, result: tuple[dict[str, float], float]) -> None:
    split, wall = result
    total = sum(split.values())
    print(f"\n{title}: {total:.1f} ms of CPU time per step, {wall:.1f} ms of wall time (median, no profiler; "
          f"CPU time / (2 x wall) = {total / (2 * wall):.0%})\n\n| part | ms | share |\n|---|---|---|")
    for k, v in sorted(split.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.1f} | {v / total:.0%} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    _print(f"jconv {args.model}, batch {args.batch}", jconv_split(args.model, args.batch, args.steps))
    if bench._torch() is not None:
        _print(f"PyTorch {args.model}, batch {args.batch}", torch_split(args.model, args.batch, args.steps))


if __name__ == "__main__":
    main()
