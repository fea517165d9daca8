"""Training curves, drawn as d2l's animator draws them: loss and accuracies per epoch."""

from __future__ import annotations

import os


def save_curves(history: list[dict], path: str, title: str = "training curves") -> None:
    """Writes a PNG of ``train_loss``, ``train_acc`` and ``test_acc`` against ``epoch``."""
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
