"""Checks that stop (or name) a run which cannot learn: a diverging or non-finite loss, a loss plateau."""

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


#: A whole epoch whose every step's loss is within this fraction of ``ln(num_classes)`` (the loss of
#: a uniform guess) is "on the plateau": the network has not started to learn.
PLATEAU_TOLERANCE = 0.02


def plateau(rows: list[list[float]], num_classes: int) -> bool:
    """Whether every step of an epoch (``[loss_sum, correct, count]`` rows) stayed within
    :data:`PLATEAU_TOLERANCE` of ``ln(num_classes)``."""
    chance = math.log(num_classes)
    return bool(rows) and all(abs(loss / count - chance) <= PLATEAU_TOLERANCE * chance
                              for loss, _, count in rows if count)


def plateau_message(model: str, epoch: int, lr: float, num_classes: int) -> str:
    """The one line that names a plateau, the learning rate and what to try."""
    return (f"{model} is on the loss plateau: every step of epoch {epoch} stayed within "
            f"{PLATEAU_TOLERANCE:.0%} of ln({num_classes}) = {math.log(num_classes):.3f} at lr {lr:g}; try "
            f"the model's recipe (--recipe jconv: warmup + cosine), a smaller --lr, or --init he")
