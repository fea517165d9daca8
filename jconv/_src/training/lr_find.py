"""The learning-rate range test (``jconv lr-find``): a fresh network trained for ~100 steps while
the learning rate grows exponentially; the loss against the learning rate is plotted and the lr of
the steepest descent before the loss blows up is suggested (Smith, "Cyclical Learning Rates", 2017;
fastai's ``lr_find``)."""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterator, NamedTuple

import jax
import numpy as np
import optax

from jconv._src import data as data_lib
from jconv._src.nn.base import Layer
from jconv._src.training.config import TrainConfig, make_optimizer
from jconv._src.training.sharding import batch_putter, data_mesh
from jconv._src.training.steps import make_train_step

#: The sweep stops once the smoothed loss exceeds this multiple of its minimum (it blew up).
BLOW_UP = 4.0
SMOOTHING = 0.9
#: No suggestion unless the smoothed loss fell at least this fraction below where it started.
MIN_FALL = 0.05


class LrFind(NamedTuple):
    """The sweep: learning rates, raw and smoothed losses per step, and the suggested lr (None
    where the loss never fell by ``MIN_FALL`` during the sweep: no descent to read)."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float | None


def lr_find(model: Layer, dataset: data_lib.Dataset, config: TrainConfig, *, steps: int = 100,
            min_lr: float = 1e-5, max_lr: float = 1.0) -> LrFind:
    """Trains ``model`` from a fresh init (``config.seed``) for at most ``steps`` steps of
    ``config.batch_size`` with ``config``'s optimizer, momentum and weight decay, the learning rate
    going from ``min_lr`` to ``max_lr`` geometrically; stops early when the loss blows up.

    The suggestion is the lr where the smoothed loss falls fastest against ``log(lr)``, among the
    steps before the minimum of the smoothed loss (the descent, not the blow-up). A peak lr of a
    warmup + cosine schedule about this size trains well. No suggestion (None) where the smoothed
    loss never fell ``MIN_FALL`` (5%) below its start: the network did not leave its initial loss in
    the sweep at any lr (NiN in 100 steps), and the steepest point of a flat curve is noise.
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(f"lr_find: need 0 < min_lr < max_lr, got {min_lr} and {max_lr}")
    if steps < 10:
        raise ValueError(f"lr_find: `steps` must be >= 10, got {steps}")
    schedule = optax.exponential_decay(min_lr, transition_steps=steps - 1, decay_rate=max_lr / min_lr)
    optimizer = make_optimizer(schedule, config.momentum, config.weight_decay, config.optimizer)
    mesh = data_mesh()
    key = jax.random.key(config.seed)
    params, state = model.init_with_state(jax.random.fold_in(key, 0), (1,) + dataset.x_train.shape[1:])
    stateful = model.has_state or model.needs_key
    opt_state = optimizer.init(params)
    step = make_train_step(model, optimizer, mesh)
    put = batch_putter(mesh, config.batch_size)
    dropout = jax.random.fold_in(key, 2) if model.needs_key else None
    losses: list[float] = []
    smoothed: list[float] = []
    avg = 0.0
    for i, batch in zip(range(steps), _batches(dataset, config.batch_size, jax.random.fold_in(key, 1), put)):
        if stateful:
            k = None if dropout is None else jax.random.fold_in(dropout, i)
            params, opt_state, m, state = step(params, opt_state, batch, state, k)
        else:
            params, opt_state, m = step(params, opt_state, batch)
        loss = float(m.loss_sum / m.count)
        losses.append(loss)
        avg = SMOOTHING * avg + (1 - SMOOTHING) * (loss if math.isfinite(loss) else 1e30)
        smoothed.append(avg / (1 - SMOOTHING ** (i + 1)))
        if not math.isfinite(loss) or smoothed[-1] > BLOW_UP * min(smoothed):
            break
    lrs = np.array([float(schedule(i)) for i in range(len(losses))])
    return LrFind(lrs, np.array(losses), np.array(smoothed), _steepest(lrs, np.array(smoothed)))


def _batches(dataset: data_lib.Dataset, batch_size: int, key: jax.Array, put: Any) -> Iterator[tuple]:
    """Training batches, epoch after epoch (epoch ``e`` shuffled by ``fold_in(key, e)``)."""
    for epoch in itertools.count():
        order = data_lib.epoch_order(jax.random.fold_in(key, epoch), len(dataset.y_train))
        yield from data_lib.batches(dataset.x_train, dataset.y_train, order, batch_size, put)


def _steepest(lrs: np.ndarray, smoothed: np.ndarray) -> float | None:
    """The lr of the steepest fall of ``smoothed`` against ``log(lr)`` before its minimum (None
    where it never fell ``MIN_FALL`` below its start)."""
    end = int(np.argmin(smoothed)) + 1
    skip = min(len(lrs) // 10, max(end - 2, 0))  # the first steps: the average is still settling
    if smoothed[end - 1] > (1 - MIN_FALL) * smoothed[skip]:
        return None
    if end - skip < 2:
        return float(lrs[max(end - 1, 0)])
    slope = np.gradient(smoothed[skip:end], np.log(lrs[skip:end]))
    return float(lrs[skip + int(np.argmin(slope))])


def save_plot(result: LrFind, path: str, title: str) -> None:
    """Loss (raw and smoothed) against the learning rate, log scale, the suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=110)
    ax.plot(result.lrs, result.losses, color="0.75", label="loss")
    ax.plot(result.lrs, result.smoothed, label="smoothed")
    if result.suggestion is not None:
        ax.axvline(result.suggestion, color="g", linestyle="--", label=f"suggested {result.suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.set_ylim(top=min(float(np.nanmax(result.smoothed[np.isfinite(result.smoothed)])), 3 * result.smoothed[0]))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

