"""Checks that stop a run which cannot learn: a diverging or non-finite loss."""

from __future__ import annotations

import math

from jconv._src.training.errors import TrainingError

#: A run stops when an epoch's mean training loss exceeds this multiple of its first step's loss
#: (or is not finite): the learning rate is too large for the model (``jconv train --lr``).
DIVERGENCE_FACTOR = 10.0


def check_divergence(loss: float, first_loss: float, epoch: int, lr: float, last_good: str | None) -> None:
    """Raises :class:`TrainingError` when an epoch's mean loss is not finite or above
    ``DIVERGENCE_FACTOR`` times the first step's."""
    if math.isfinite(loss) and not loss > DIVERGENCE_FACTOR * first_loss:
        return
    why = (f"non-finite training loss ({loss})" if not math.isfinite(loss) else
           f"the training loss diverged (mean {loss:.4g}, more than {DIVERGENCE_FACTOR:g}x the "
           f"first step's {first_loss:.4g})")
    kept = f"; the last good checkpoint is in {last_good}" if last_good else ""
    raise TrainingError(f"{why} in epoch {epoch}: stopping (try a smaller --lr than {lr:g}){kept}")
