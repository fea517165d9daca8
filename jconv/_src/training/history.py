"""What a run reports: per-epoch metric rows, ``metrics.jsonl``, ``curves.png`` and the progress bar."""

from __future__ import annotations

import json
import os
from typing import Any


def epoch_row(epoch: int, loss_sum: float, correct: float, count: float, test_acc: float,
              seconds: float) -> dict[str, Any]:
    """One line of ``metrics.jsonl``: the epoch's mean training loss and accuracy, test accuracy,
    throughput and training seconds."""
    return {
        "epoch": epoch,
        "train_loss": round(loss_sum / count, 6),
        "train_acc": round(correct / count, 6),
        "test_acc": round(test_acc, 6),
        "examples_per_sec": round(count / seconds, 1),
        "seconds": round(seconds, 3),
    }


def describe(row: dict[str, Any]) -> str:
    """The epoch's line in the log."""
    return (f"epoch {row['epoch']:3d}  loss {row['train_loss']:.4f}  train acc {row['train_acc']:.4f}  "
            f"test acc {row['test_acc']:.4f}  {row['examples_per_sec']:,.0f} examples/s")


def write(out: str, history: list[dict], title: str) -> None:
    """Rewrites ``out/metrics.jsonl`` and ``out/curves.png`` (each replaced atomically)."""
    path = os.path.join(out, "metrics.jsonl")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)
    save_curves(history, os.path.join(out, "curves.png"), title=title)


def save_curves(history: list[dict], path: str, title: str = "training curves") -> None:
    """Writes a PNG of ``train_loss``, ``train_acc`` and ``test_acc`` against ``epoch`` (as d2l's
    animator draws them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=110)
    ax.plot(epochs, [r["train_loss"] for r in history], "-", label="train loss")
    ax.plot(epochs, [r["train_acc"] for r in history], "m--", label="train acc")
    ax.plot(epochs, [r["test_acc"] for r in history], "g-.", label="test acc")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / accuracy")
    ax.set_title(title)
    ax.set_xlim(1, max(epochs[-1], 2))
    ax.grid(True)
    ax.legend()
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def progress(enabled: bool, total: int, desc: str, initial: int = 0) -> Any:
    """A tqdm bar over an epoch's batches (disabled: a no-op bar)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False, disable=not enabled)
