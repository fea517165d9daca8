"""``jconv bench``: jconv against PyTorch and Flax, side by side in one process.

Each row times the same workload in every installed implementation, interleaving the rounds
(jconv, torch, flax, jconv, ...) so that machine noise hits all alike; it reports medians, the
ratio jconv / PyTorch, GFLOP/s beside this machine's sgemm GFLOP/s, and jconv's compile time
measured apart (``jit(f).lower(...).compile()``). A missing peer is skipped with a note.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import jconv as jc
from jconv._src import onednn
from jconv._src.models import lenet as models

Timed = Callable[[], Any]


def _torch() -> Any:
    # PyTorch's OpenMP workers otherwise spin after each call and starve XLA's threads on a
    # small machine, which made interleaved jconv rounds look many times slower than they are.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        return None
    return torch


def _flax() -> Any:
    try:
        from flax import linen
    except ImportError:
        return None
    return linen


_TORCH_DEVICE = ["cpu"]  # "cuda" when jconv runs on a GPU and PyTorch sees one


def _tt(torch: Any, a: Any, grad: bool = False, **kw: Any) -> Any:
    """A PyTorch tensor of ``a`` on the device the comparison runs on."""
    return torch.tensor(a, device=_TORCH_DEVICE[0], requires_grad=grad, **kw)


def _sync() -> None:
    if _TORCH_DEVICE[0] != "cpu":
        import torch

        torch.cuda.synchronize()


def _time(fn: Timed, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    _sync()  # PyTorch's CUDA calls are asynchronous (jconv's timed calls block themselves)
    return (time.perf_counter() - start) / reps


def _jax_timed(f: Callable, *args: Any) -> tuple[Timed, float]:
    """A blocking call of compiled ``f`` and its compile time, measured apart (``main`` warms
    every implementation up before timing)."""
    args = jax.device_put(args)  # placed once: the rounds time the computation, not the copies
    start = time.perf_counter()
    compiled = jax.jit(f).lower(*args).compile()
    compile_s = time.perf_counter() - start
    return lambda: jax.block_until_ready(compiled(*args)), compile_s


def _both_backends() -> bool:
    """Whether jconv's convolutions run on oneDNN here, so XLA's are timed beside them."""
    return jax.default_backend() == "cpu" and jc.cpu_conv_backend() == "onednn"


def _jconv_timed(impls: dict[str, Timed], f: Callable, *args: Any) -> float:
    """Adds jconv's timed ``f`` to ``impls`` and, where CPU convolutions run on oneDNN, the same
    ``f`` on XLA's convolutions as ``"jconv-xla"`` (both backends side by side); returns the
    compile time of the first."""
    impls["jconv"], cs = _jax_timed(f, *args)
    if _both_backends():
        with onednn.use("xla"):  # a new function object: jit would reuse f's oneDNN trace
            impls["jconv-xla"], _ = _jax_timed(lambda *a: f(*a), *args)
    return cs


def _conv_case(n: int, c: int, o: int, hw: int, k: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, c, hw, hw)).astype(np.float32)
    w = (rng.normal(size=(o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    flops = 3 * 2 * n * o * hw * hw * c * k * k  # forward + two gradients, 'same' padding
    return dict(x=x, w=w, flops=flops)


def _rows(quick: bool) -> list[tuple[str, dict[str, Timed], float, float | None]]:
    torch, linen = _torch(), _flax()
    if torch is not None:
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
        if jax.default_backend() == "gpu" and torch.cuda.is_available():
            _TORCH_DEVICE[0] = "cuda"
    rows = []

    # sgemm
    n = 512 if quick else 2048
    a = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    impls: dict[str, Timed] = {}
    impls["jconv"], cs = _jax_timed(jnp.dot, a, a)
    if torch is not None:
        ta = _tt(torch, a)
        impls["pytorch"] = lambda: torch.mm(ta, ta)
    rows.append((f"sgemm {n}x{n}", impls, 2 * n**3, cs))

    # conv 3x3 and 1x1 ('same' padding; 1x1: NiN, GoogLeNet, ResNet bottlenecks), fwd + bwd; 3x3 on
    # 2x2 maps (ResNet-18's stage 4 at 28x28 input: the dense form), its FLOPs the 4 taps each output reads
    for k, small in ((3, False), (1, False), (3, True)):
        if small:
            case = _conv_case(16 if quick else 128, 32 if quick else 256, 32 if quick else 256, 2, k)
            case["flops"] = case["flops"] * 4 // 9
        else:
            case = _conv_case(2 if quick else 16, 16 if quick else 64, 16 if quick else 64, 28 if quick else 56, k)
        x, w, pad = case["x"], case["w"], k // 2
        impls = {}
        loss = lambda x, w, pad=pad: (jc.conv2d(x, w, padding=pad) ** 2).sum()
        cs = _jconv_timed(impls, jax.grad(loss, (0, 1)), x, w)
        if torch is not None:
            tx, tw = _tt(torch, x, True), _tt(torch, w, True)

            def torch_conv(tx: Any = tx, tw: Any = tw, pad: int = pad) -> None:  # bound now
                (torch.nn.functional.conv2d(tx, tw, padding=pad) ** 2).sum().backward()

            impls["pytorch"] = torch_conv
        if linen is not None:
            xh, wh = np.transpose(x, (0, 2, 3, 1)), np.transpose(w, (2, 3, 1, 0))
            conv = linen.Conv(w.shape[0], (k, k), padding=pad, use_bias=False)
            fl = lambda xh, wh, conv=conv: (conv.apply({"params": {"kernel": wh}}, xh) ** 2).sum()
            impls["flax"], _ = _jax_timed(jax.grad(fl, (0, 1)), xh, wh)
        on = " on 2x2 maps" if small else ""
        rows.append((f"conv {k}x{k}{on} {x.shape[1]}->{w.shape[0]}, {x.shape}, fwd+bwd", impls, case["flops"], cs))

    rows += _nd_rows(quick, torch, linen)

    # pooling rows, forward + backward
    rng = np.random.default_rng(1)
    pool_cases = [
        ("max pool 2x2/2", (8, 8, 28, 28) if quick else (64, 32, 56, 56), "max", 2, 2, 0),
        ("max pool 3x3/2 pad 1 (ResNet stem)", (4, 8, 56, 56) if quick else (32, 64, 112, 112), "max", 3, 2, 1),
        ("avg pool 2x2/2", (8, 8, 28, 28) if quick else (64, 32, 56, 56), "avg", 2, 2, 0),
    ]
    for name, shape, kind, k, s, p in pool_cases:
        x = rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float32)
        op = jc.max_pool2d if kind == "max" else jc.avg_pool2d
        impls = {}
        impls["jconv"], cs = _jax_timed(jax.grad(lambda x: (op(x, k, s, p) ** 2).sum()), x)
        if torch is not None:
            tx = _tt(torch, x, True)
            top = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
            impls["pytorch"] = lambda tx=tx, top=top: (top(tx, k, s, p) ** 2).sum().backward()
        if linen is not None:
            xh = np.transpose(x, (0, 2, 3, 1))
            lop = linen.max_pool if kind == "max" else linen.avg_pool
            fl = lambda xh, lop=lop: (lop(xh, (k, k), (s, s), ((p, p), (p, p))) ** 2).sum()
            impls["flax"], _ = _jax_timed(jax.grad(fl), xh)
        rows.append((f"{name}, {shape}, fwd+bwd", impls, None, cs))

    # LeNet's two convolutions, batch 256 (fwd + bwd)
    nb = 32 if quick else 256
    for name, (c, o, hw, pad) in (("LeNet conv1 5x5 1->6", (1, 6, 28, 2)), ("LeNet conv2 5x5 6->16", (6, 16, 14, 0))):
        x = rng.normal(size=(nb, c, hw, hw)).astype(np.float32)
        w = rng.normal(size=(o, c, 5, 5)).astype(np.float32)
        out = hw + 2 * pad - 4
        impls = {}
        cs = _jconv_timed(impls, jax.grad(lambda x, w, pad=pad: (jc.conv2d(x, w, padding=pad) ** 2).sum(), (0, 1)),
                          x, w)
        if torch is not None:
            tx, tw = _tt(torch, x, True), _tt(torch, w, True)
            impls["pytorch"] = lambda tx=tx, tw=tw, pad=pad: (torch.nn.functional.conv2d(tx, tw, padding=pad) ** 2).sum().backward()
        rows.append((f"{name}, batch {nb}, fwd+bwd", impls, 3 * 2 * nb * o * out * out * c * 25, cs))

    # LeNet (modern) train step
    rows.append(_lenet_step_row(nb, torch, linen))
    return rows


def _nd_rows(quick: bool, torch: Any, linen: Any) -> list[tuple]:
    """1-D and 3-D convolutions and a transposed (up-sampling) convolution, forward + backward."""
    rng = np.random.default_rng(3)
    cases = [  # name, x shape (channels first), out channels, kernel, stride, padding, transposed
        ("conv1d k5 64->64 'same'", (4, 16, 256) if quick else (32, 64, 1024), 16 if quick else 64, 5, 1, 2, False),
        ("conv3d k3 16->16 'same'", (1, 4, 8, 16, 16) if quick else (4, 16, 16, 32, 32), 4 if quick else 16, 3, 1, 1,
         False),
        ("conv_transpose2d k4/2 pad 1 128->64 (DCGAN/U-Net up-sampling)",
         (2, 16, 8, 8) if quick else (16, 128, 16, 16), 8 if quick else 64, 4, 2, 1, True),
    ]
    rows = []
    for name, shape, o, k, s, p, transposed in cases:
        n = len(shape) - 2
        c = shape[1]
        x = rng.normal(size=shape).astype(np.float32)
        w = (rng.normal(size=((c, o) if transposed else (o, c)) + (k,) * n) / np.sqrt(c * k**n)).astype(np.float32)
        op = (lambda x, w, s=s, p=p: jc.conv_transpose(x, w, strides=s, padding=p)) if transposed else \
            (lambda x, w, s=s, p=p: jc.conv(x, w, strides=s, padding=p))
        impls: dict[str, Timed] = {}
        cs = _jconv_timed(impls, jax.grad(lambda x, w, op=op: (op(x, w) ** 2).sum(), (0, 1)), x, w)
        out_size = np.prod(jax.eval_shape(op, x, w).shape[2:])
        in_size = np.prod(shape[2:])
        flops = 3 * 2 * shape[0] * o * c * k**n * (in_size if transposed else out_size)
        if torch is not None:
            F = torch.nn.functional
            tf = F.conv_transpose2d if transposed else {1: F.conv1d, 3: F.conv3d}[n]
            tx, tw = _tt(torch, x, True), _tt(torch, w, True)
            impls["pytorch"] = lambda tx=tx, tw=tw, tf=tf, s=s, p=p: (tf(tx, tw, stride=s, padding=p) ** 2).sum().backward()
        if linen is not None:
            xh = np.moveaxis(x, 1, -1)
            if transposed:  # PyTorch's padding p is Flax's k - 1 - p on the dilated input
                mod = linen.ConvTranspose(o, (k,) * n, (s,) * n, padding=((k - 1 - p, k - 1 - p),) * n,
                                          use_bias=False, transpose_kernel=True)
            else:
                mod = linen.Conv(o, (k,) * n, (s,) * n, padding=((p, p),) * n, use_bias=False)
            wh = np.asarray(mod.init(jax.random.key(0), xh)["params"]["kernel"])
            fl = lambda xh, wh, mod=mod: (mod.apply({"params": {"kernel": wh}}, xh) ** 2).sum()
            impls["flax"], _ = _jax_timed(jax.grad(fl, (0, 1)), xh, wh)
        rows.append((f"{name}, {shape}, fwd+bwd", impls, flops, cs))
    return rows


def _lenet_step_row(nb: int, torch: Any, linen: Any) -> tuple:
    import optax

    from jconv import train as train_lib

    model = models.lenet(variant="modern")
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(nb, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, nb).astype(np.int32)
    mask = np.ones(nb, np.float32)
    opt = train_lib.make_optimizer(0.05, 0.9)
    # Placed exactly as fit() places them: a donated step called with arguments of another
    # sharding (uncommitted params, a single-device batch) compiles again on the next call.
    mesh = train_lib.data_mesh()
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    params = jax.device_put(model.init(jax.random.key(0), (1, 1, 28, 28)), repl)
    state = {"p": params, "o": jax.device_put(opt.init(params), repl)}
    batch = train_lib.batch_putter(mesh, nb)(x, y, mask)

    def timed_step() -> tuple[Timed, float]:
        step = train_lib.make_train_step(model, opt, mesh)
        start = time.perf_counter()
        step.lower(state["p"], state["o"], batch).compile()
        cs = time.perf_counter() - start
        state["p"], state["o"], _ = step(state["p"], state["o"], batch)  # traced here, under the caller's backend

        def run() -> None:
            state["p"], state["o"], m = step(state["p"], state["o"], batch)
            jax.block_until_ready(m)

        return run, cs

    impls: dict[str, Timed] = {}
    impls["jconv"], cs = timed_step()
    if _both_backends():
        with onednn.use("xla"):
            impls["jconv-xla"], _ = timed_step()
    if torch is not None:
        tnn = torch.nn
        net = tnn.Sequential(
            tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5), tnn.ReLU(),
            tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
            tnn.Linear(84, 10)).to(_TORCH_DEVICE[0])
        sgd = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        tx, ty = _tt(torch, x), _tt(torch, y, dtype=torch.long)

        def torch_step() -> None:
            sgd.zero_grad()
            tnn.functional.cross_entropy(net(tx), ty).backward()
            sgd.step()

        impls["pytorch"] = torch_step
    if linen is not None:
        class FlaxLeNet(linen.Module):
            @linen.compact
            def __call__(self, x: jax.Array) -> jax.Array:
                x = linen.relu(linen.Conv(6, (5, 5), padding=2)(x))
                x = linen.max_pool(x, (2, 2), (2, 2))
                x = linen.relu(linen.Conv(16, (5, 5), padding="VALID")(x))
                x = linen.max_pool(x, (2, 2), (2, 2))
                x = x.reshape(x.shape[0], -1)
                x = linen.relu(linen.Dense(120)(x))
                x = linen.relu(linen.Dense(84)(x))
                return linen.Dense(10)(x)

        fnet = FlaxLeNet()
        xh = np.transpose(x, (0, 2, 3, 1))
        fparams = fnet.init(jax.random.key(0), xh)
        fopt = optax.sgd(0.05, momentum=0.9)
        fstate = {"p": fparams, "o": fopt.init(fparams)}

        @jax.jit
        def fstep(p: Any, o: Any, xb: Any, yb: Any) -> Any:
            l, g = jax.value_and_grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(fnet.apply(p, xb), yb).mean())(p)
            u, o = fopt.update(g, o, p)
            return optax.apply_updates(p, u), o, l

        def flax_run() -> None:
            fstate["p"], fstate["o"], l = fstep(fstate["p"], fstate["o"], xh, y)
            jax.block_until_ready(l)

        impls["flax"] = flax_run
    return (f"LeNet (ReLU, max pool) train step, batch {nb}", impls, None, cs)


def _lenet_epoch(quick: bool) -> str:
    from jconv._src import data as data_lib
    from jconv import train as train_lib

    ds = data_lib.load("mnist5k")
    epochs = 2 if quick else 3
    _, hist = train_lib.fit(models.lenet(variant="modern"), ds, train_lib.TrainConfig(epochs=epochs), progress=False, log=lambda s: None)
    rate = statistics.median(r["examples_per_sec"] for r in hist[1:])
    return f"LeNet epoch on mnist5k through `jconv train`'s loop (batch 64, epochs 2+): {rate:,.0f} examples/s"


def main(quick: bool = False, rounds: int | None = None) -> int:
    rounds = rounds or (2 if quick else 7)
    reps = 1 if quick else 3
    notes = []
    if _torch() is None:
        notes.append("PyTorch not installed: its column is skipped (pip install torch==2.13.0)")
    if _flax() is None:
        notes.append("Flax not installed: its column is skipped (pip install flax)")
    rows = _rows(quick)
    results = []
    sgemm_gflops = None
    for name, impls, flops, compile_s in rows:
        times: dict[str, list[float]] = {k: [] for k in impls}
        for fn in impls.values():  # warm-up: caches, allocators, thread pools
            fn()
        for _ in range(rounds):
            for k, fn in impls.items():  # interleaved: one of each per round
                times[k].append(_time(fn, reps))
        med = {k: statistics.median(v) for k, v in times.items()}
        gflops = flops / med["jconv"] / 1e9 if flops else None
        if name.startswith("sgemm"):
            sgemm_gflops = gflops
        results.append((name, med, gflops, compile_s))

    precision = jax.config.jax_default_matmul_precision or "default"
    print(f"jconv bench{' --quick' if quick else ''}: {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} cores, jax {jax.__version__} on {jax.devices()[0].device_kind} "
          f"({jax.devices()[0].platform}), PyTorch on {_TORCH_DEVICE[0]}, float32 with matmul precision "
          f"{precision}{' (TF32 on NVIDIA GPUs)' if precision == 'default' and jax.default_backend() == 'gpu' else ''}; "
          f"{rounds} interleaved rounds x {reps} reps, medians")
    print(onednn.describe() + ("" if jax.default_backend() == "cpu" else " (unused: jconv runs on "
                               f"{jax.default_backend()})"))
    for n in notes:
        print(f"note: {n}")
    print()
    print("| workload | jconv ms | jconv, XLA convs ms | PyTorch ms | Flax ms | jconv / PyTorch | XLA convs / PyTorch "
          "| jconv GFLOP/s | jconv compile s |")
    print("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v: f"{v * 1e3:.2f}" if v is not None else "-"
    ratio = lambda k, med: f"{med[k] / med['pytorch']:.2f}x" if k in med and "pytorch" in med else "-"
    for name, med, gflops, cs in results:
        gf = f"{gflops:.1f}" if gflops else "-"
        print(f"| {name} | {fmt(med['jconv'])} | {fmt(med.get('jconv-xla'))} | {fmt(med.get('pytorch'))} "
              f"| {fmt(med.get('flax'))} | {ratio('jconv', med)} | {ratio('jconv-xla', med)} | {gf} | {cs:.2f} |")
    if sgemm_gflops:
        print(f"\nthis machine's sgemm through XLA: {sgemm_gflops:.1f} GFLOP/s (the reference for the GFLOP/s column)")
    print(_lenet_epoch(quick))
    return 0
