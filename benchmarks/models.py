"""Model rows: one whole train step of every zoo network, jconv against PyTorch (and Flax).

A step is forward + backward + SGD with momentum 0.9 (lr 0.05), BatchNorm in train mode, dropout on,
at 1x28x28 and batch 128 by default. jconv runs ``jconv.models``' network through ``make_train_step``
(the step ``jconv train`` runs); PyTorch runs d2l's torch.nn network with the same 28x28 stems
(``tests/d2l_torch.py``, the parity tests' oracles) in eager mode; Flax runs linen's ResNet-18
(the only network written in Flax here). Rounds are interleaved (jconv, PyTorch, Flax, jconv, ...),
so that machine noise hits all alike; each round's timed steps follow one untimed step (``--settle``:
the first step after another library's finds the caches cold, and costs jconv's ~8 ms LeNet step 9-15 ms);
medians are reported, with jconv's compile time apart. ``--alone N`` times each library alone in
processes of its own instead (N per library, alternating): in one process jconv's ~10 ms LeNet steps run
slower for dozens of steps after PyTorch's, and PyTorch's large steps after jconv's, so that is the protocol
that measures what a user training one network sees (``--only jconv`` / ``--only pytorch``: one such
process; ``--warmup 3`` lets each process's first steps after the compile pass untimed).

  python benchmarks/models.py                          # every network, 5 rounds
  python benchmarks/models.py --models resnet18 --rounds 7 --results benchmarks/results/models.jsonl
  python benchmarks/models.py --alone 3 --warmup 3            # every network, each library alone
  python benchmarks/models.py --table benchmarks/results/models-session11.jsonl   # ranges over the runs there
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # tests/d2l_torch.py

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jconv as jc  # noqa: E402
from jconv._src import bench  # noqa: E402
from jconv._src.models.zoo import MODELS, build  # noqa: E402
from jconv._src.training.sharding import batch_putter, data_mesh  # noqa: E402
from jconv._src.training.steps import make_train_step  # noqa: E402

Step = Callable[[], None]
LR, MOMENTUM = 0.05, 0.9


def _data(batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(size=(batch, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, batch).astype(np.int32)


def jconv_step(name: str, batch: int) -> tuple[Step, float]:
    """``jconv train``'s step for ``name`` and its compile time (s)."""
    x, y = _data(batch)
    net, mesh = build(name, 10, (1, 28, 28)), data_mesh()
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    opt = optax.sgd(LR, momentum=MOMENTUM)
    params, state = jax.device_put(net.init_with_state(jax.random.key(0), (1, 1, 28, 28)), repl)
    s = {"p": params, "o": jax.device_put(opt.init(params), repl), "s": state, "k": jax.random.key(1)}
    data = batch_putter(mesh, batch)(x, y, np.ones(batch, np.float32))
    step = make_train_step(net, opt, mesh)
    start = time.perf_counter()
    compiled = step.lower(s["p"], s["o"], data, s["s"], s["k"]).compile()
    compile_s = time.perf_counter() - start

    def run() -> None:
        s["k"], key = jax.random.split(s["k"])
        s["p"], s["o"], m, s["s"] = step(s["p"], s["o"], data, s["s"], key)
        jax.block_until_ready(m)

    run()  # the traced call (the compile above was ahead of time)
    run.compiled_text = compiled.as_text  # type: ignore[attr-defined]  # the HLO, for profile_step.py
    return run, compile_s


def torch_step(torch: Any, name: str, batch: int) -> Step:
    from tests.d2l_torch import networks

    x, y = _data(batch)
    torch.manual_seed(0)
    net = networks(torch, small=True)[name][0]().train()
    sgd = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    tx, ty = torch.tensor(x), torch.tensor(y, dtype=torch.long)

    def run() -> None:
        sgd.zero_grad()
        torch.nn.functional.cross_entropy(net(tx), ty).backward()
        sgd.step()

    return run


def flax_resnet18_step(linen: Any, batch: int) -> Step:
    """d2l's ResNet-18 (28x28, the same layout as jconv's) in flax.linen, NHWC, BatchNorm in train mode."""

    class Residual(linen.Module):
        channels: int
        strides: int = 1
        proj: bool = False

        @linen.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            bn = lambda: linen.BatchNorm(use_running_average=False, momentum=0.9)  # noqa: E731
            y = linen.relu(bn()(linen.Conv(self.channels, (3, 3), self.strides, padding=1)(x)))
            y = bn()(linen.Conv(self.channels, (3, 3), padding=1)(y))
            if self.proj:
                x = linen.Conv(self.channels, (1, 1), self.strides)(x)
            return linen.relu(y + x)

    class ResNet18(linen.Module):
        @linen.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            x = linen.Conv(64, (7, 7), 2, padding=3)(x)
            x = linen.relu(linen.BatchNorm(use_running_average=False, momentum=0.9)(x))
            x = linen.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
            for i, c in enumerate((64, 128, 256, 512)):
                x = Residual(c, 1 if i == 0 else 2, i > 0)(x)
                x = Residual(c)(x)
            return linen.Dense(10)(x.mean(axis=(1, 2)))

    x, y = _data(batch)
    xh, net, opt = np.transpose(x, (0, 2, 3, 1)), ResNet18(), optax.sgd(LR, momentum=MOMENTUM)
    variables = net.init(jax.random.key(0), xh[:1])
    s = {"p": variables["params"], "b": variables["batch_stats"]}
    s["o"] = opt.init(s["p"])

    @jax.jit
    def step(p: Any, b: Any, o: Any, xb: Any, yb: Any) -> tuple:
        def loss(p: Any) -> tuple:
            logits, new = net.apply({"params": p, "batch_stats": b}, xb, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), new["batch_stats"]

        (l, b), g = jax.value_and_grad(loss, has_aux=True)(p)
        u, o = opt.update(g, o, p)
        return optax.apply_updates(p, u), b, o, l

    xh, y = jax.device_put((xh, y))

    def run() -> None:
        s["p"], s["b"], s["o"], l = step(s["p"], s["b"], s["o"], xh, y)
        jax.block_until_ready(l)

    return run


def measure(name: str, batch: int, rounds: int, reps: int, torch: Any, linen: Any, settle: int = 1,
            only: str | None = None, warmup: int = 1) -> dict:
    """Median seconds per step of each library over ``rounds`` interleaved rounds of ``reps`` timed steps,
    each round's timed steps after ``settle`` untimed ones (the first step after another library's runs
    finds caches and thread pools cold), the rounds after ``warmup`` untimed steps of each; ``only``
    times one library alone (``"jconv"``, ``"pytorch"``)."""
    impls: dict[str, Step] = {}
    compile_s = None
    if only in (None, "jconv"):
        impls["jconv"], compile_s = jconv_step(name, batch)
    if torch is not None and only in (None, "pytorch"):
        impls["pytorch"] = torch_step(torch, name, batch)
    if linen is not None and name == "resnet18" and only is None:
        impls["flax"] = flax_resnet18_step(linen, batch)
    for fn in impls.values():  # warm-up: caches, allocators, thread pools
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(rounds):
        for k, fn in impls.items():  # interleaved: one of each per round
            for _ in range(settle):
                fn()
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            times[k].append((time.perf_counter() - start) / reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": name, "batch": batch, "rounds": rounds, "reps": reps, "settle": settle, "warmup": warmup,
            "only": only, "ms": {k: round(v * 1e3, 2) for k, v in med.items()},
            "jconv_compile_s": compile_s and round(compile_s, 2), "backend": jc.cpu_conv_backend(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "time": time.time()}


def alone(name: str, args: argparse.Namespace, torch: Any) -> dict:
    """Each library timed alone in its own process (``--only``), ``args.alone`` processes per library,
    alternating (jconv, PyTorch, jconv, ...); the row's times are the medians of the processes' medians.
    In one process, a library's steps right after another's run slower for a while (jconv's LeNet step
    10.2-14.6 ms for 50 steps after PyTorch's, 7.9-9.4 ms alone), which no user training one network
    sees."""
    libs = ["jconv"] + (["pytorch"] if torch is not None else [])
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "rows.jsonl")
        for _ in range(args.alone):
            for lib in libs:
                subprocess.run([sys.executable, os.path.abspath(__file__), "--models", name, "--only", lib,
                                "--batch", str(args.batch), "--rounds", str(args.rounds), "--reps", str(args.reps),
                                "--settle", str(args.settle), "--warmup", str(args.warmup), "--results", out],
                               check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            runs = [json.loads(line) for line in f]
    row = dict(runs[0], only=None, protocol="alone", processes=args.alone)
    row["ms"] = {lib: round(statistics.median(r["ms"][lib] for r in runs if lib in r["ms"]), 2) for lib in libs}
    row["jconv_compile_s"] = statistics.median(r["jconv_compile_s"] for r in runs if r["only"] == "jconv")
    return row


def _row(r: dict) -> str:
    ms, batch = r["ms"], r["batch"]
    ratio = lambda k: f"{ms['jconv'] / ms[k]:.2f}" if k in ms and "jconv" in ms else "-"  # noqa: E731
    fmt = lambda k: f"{ms[k]:.1f}" if k in ms else "-"  # noqa: E731
    rate = f"{batch / ms['jconv'] * 1e3:,.0f}" if "jconv" in ms else "-"
    compile_s = f"{r['jconv_compile_s']:.1f}" if r["jconv_compile_s"] is not None else "-"
    return (f"| {r['model']} | {fmt('jconv')} | {fmt('pytorch')} | {fmt('flax')} | {ratio('pytorch')} | "
            f"{ratio('flax')} | {rate} | {compile_s} |")


HEADER = ("| model | jconv ms/step | PyTorch ms/step | Flax ms/step | jconv / PyTorch | jconv / Flax "
          "| jconv examples/s | jconv compile s |\n|---|---|---|---|---|---|---|---|")


def ranges(path: str) -> str:
    """Markdown: one row per model of the runs in ``path`` (one JSON row per model and run): the
    range (min-max) of each time and ratio over the runs, and the median ratio."""
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    span = lambda v, f="{:.1f}": f"{f.format(min(v))}-{f.format(max(v))}" if v else "-"  # noqa: E731
    lines = ["| model | runs | jconv ms/step | PyTorch ms/step | jconv / PyTorch (median) | jconv / Flax | "
             "jconv examples/s | jconv compile s |", "|---|---|---|---|---|---|---|---|"]
    for name in sorted({r["model"] for r in rows}):
        rs = [r["ms"] | {"compile": r["jconv_compile_s"], "batch": r["batch"]} for r in rows if r["model"] == name]
        ratio = lambda k: [r["jconv"] / r[k] for r in rs if k in r and "jconv" in r]  # noqa: E731
        torch_ratio = ratio("pytorch")
        lines.append(f"| {name} | {len(rs)} | {span([r['jconv'] for r in rs if 'jconv' in r])} | "
                     f"{span([r['pytorch'] for r in rs if 'pytorch' in r])} | {span(torch_ratio, '{:.2f}')}"
                     f"{f' ({statistics.median(torch_ratio):.2f})' if torch_ratio else ''} | "
                     f"{span(ratio('flax'), '{:.2f}')} | "
                     f"{span([r['batch'] / r['jconv'] * 1e3 for r in rs if 'jconv' in r], '{:,.0f}')} | "
                     f"{span([r['compile'] for r in rs if r['compile'] is not None])} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=sorted(MODELS), choices=sorted(MODELS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=2, help="steps per timed round")
    p.add_argument("--settle", type=int, default=1, help="untimed steps before each round's timed ones")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps of each library before the first round")
    p.add_argument("--only", choices=("jconv", "pytorch"), help="time one library alone (no interleaving)")
    p.add_argument("--alone", type=int, metavar="N", help="time each library alone in N processes of its own, "
                   "alternating, instead of interleaving them in this one")
    p.add_argument("--results", help="append each row as JSON to this file")
    p.add_argument("--table", metavar="RESULTS", help="print the ranges over the runs in RESULTS and exit")
    args = p.parse_args()
    if args.table:
        print(ranges(args.table))
        return
    torch = bench._torch() if args.only != "jconv" else None
    linen = bench._flax() if args.only is None and not args.alone else None
    how = (f"each library alone in {args.alone} processes, each {args.rounds} rounds" if args.alone
           else f"{args.rounds} interleaved rounds")
    print(f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, jax {jax.__version__}, "
          f"{jc.cpu_conv_backend()} convolutions, torch {getattr(torch, '__version__', '-')} "
          f"({torch.get_num_threads() if torch else '-'} threads); {how} x {args.reps} steps "
          f"(after {args.settle} untimed), medians, batch {args.batch}, 1x28x28\n\n{HEADER}", flush=True)
    for name in args.models:
        if args.alone:
            r = alone(name, args, torch)
        else:
            r = measure(name, args.batch, args.rounds, args.reps, torch, linen, args.settle, args.only, args.warmup)
        print(_row(r), flush=True)
        if args.results:
            with open(args.results, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
