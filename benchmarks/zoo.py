"""Does every zoo network learn on every seed? Trains each ``--model`` with its default recipe
(``jconv train --model M --epochs 5 --seed S`` on mnist5k) over several seeds and writes the
min/median/max test accuracy, wall time and examples/s.

    python benchmarks/zoo.py                          # every model, seeds 0-4, results in runs/zoo/results.jsonl
    python benchmarks/zoo.py --models nin googlenet --seeds 0 1
    JCONV_CPU_CONV=xla python benchmarks/zoo.py --seeds 0 --tag xla
    python benchmarks/zoo.py --table                  # the Markdown table of what results.jsonl holds

Each run is its own ``jconv train`` process (as a user runs it); a finished (model, seed, tag) is
skipped when the script runs again, so an interrupted sweep continues where it stopped. Two sweeps
may run side by side into one results file (e.g. the XLA one next to the default); the table then
quotes timings only from runs that had the machine to themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

MODELS = ["lenet", "bn-lenet", "alexnet", "vgg11", "nin", "googlenet", "resnet18", "resnext", "regnet", "densenet"]


def _done(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run(models: list[str], seeds: list[int], epochs: int, tag: str, path: str, extra: list[str]) -> None:
    seen = {(r["model"], r["seed"], r["tag"]) for r in _done(path)}
    for seed in seeds:  # seed-major: a short sweep already covers every model
        for model in models:
            if (model, seed, tag) in seen:
                continue
            out = os.path.join(os.path.dirname(path), f"{model}-{tag}-{seed}")
            began, start = time.time(), time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "jconv._src.cli", "train", "--model", model, "--epochs",
                                   str(epochs), "--seed", str(seed), "--out", out, "--overwrite", "--no-progress",
                                   *extra], capture_output=True, text=True)
            wall = time.perf_counter() - start
            rows = _done(os.path.join(out, "metrics.jsonl"))
            result = {"model": model, "seed": seed, "tag": tag, "epochs": epochs, "returncode": proc.returncode,
                      "wall_s": round(wall, 1), "began": round(began, 1), "ended": round(time.time(), 1), "test_acc": rows[-1]["test_acc"] if rows else None,
                      "test_accs": [r["test_acc"] for r in rows],
                      "examples_per_sec": round(statistics.median(r["examples_per_sec"] for r in rows), 1) if rows
                      else None, "extra": extra, "machine": f"{platform.processor() or platform.machine()}, "
                                                           f"{os.cpu_count()} cores"}
            if proc.returncode:
                result["error"] = (proc.stderr.strip().splitlines() or [""])[-1][:300]
            print(json.dumps(result), flush=True)
            with open(path, "a") as f:
                f.write(json.dumps(result) + "\n")


def _alone(r: dict, rows: list[dict]) -> bool:
    """Whether run ``r`` had the machine to itself: no other run of ``rows`` overlapped it in time,
    and it is not marked ``"shared": true`` (added by hand to a run during which other work ran)."""
    if r.get("shared"):
        return False
    if "began" not in r:
        return True
    return not any(o is not r and "began" in o and o["began"] < r["ended"] and r["began"] < o["ended"] for o in rows)


def table(path: str) -> str:
    """Markdown: one row per (model, tag): seeds, min / median / max test accuracy, and the wall time
    and examples/s of the runs that had the machine to themselves (two sweeps run side by side share
    the cores: their timings are left out, ``-`` when no run of the row was alone)."""
    rows = _done(path)
    lines = ["| model | backend | seeds | test acc min / median / max | wall per run (s) | examples/s |",
             "|---|---|---|---|---|---|"]
    keys = sorted({(r["model"], r["tag"]) for r in rows}, key=lambda k: (MODELS.index(k[0]) if k[0] in MODELS else 99,
                                                                         k[1]))
    for model, tag in keys:
        rs = [r for r in rows if (r["model"], r["tag"]) == (model, tag)]
        accs = [r["test_acc"] if r["test_acc"] is not None else 0.0 for r in rs]
        timed = [r for r in rs if _alone(r, rows)]
        walls = [r["wall_s"] for r in timed]
        eps = [r["examples_per_sec"] for r in timed if r["examples_per_sec"]]
        seeds = ",".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"]))
        lines.append(f"| {model} | {tag} | {seeds} | {min(accs):.3f} / {statistics.median(accs):.3f} / "
                     f"{max(accs):.3f} | {f'{min(walls):.0f}-{max(walls):.0f}' if walls else '-'} | "
                     f"{f'{min(eps):,.0f}-{max(eps):,.0f}' if eps else '-'} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--tag", default="onednn", help="the label of this sweep (e.g. the backend)")
    p.add_argument("--results", default="runs/zoo/results.jsonl")
    p.add_argument("--table", action="store_true", help="print the table of the results and exit")
    args, extra = p.parse_known_args()
    if args.table:
        print(table(args.results))
        return
    os.makedirs(os.path.dirname(args.results) or ".", exist_ok=True)
    run(args.models, args.seeds, args.epochs, args.tag, args.results, extra)


if __name__ == "__main__":
    main()
