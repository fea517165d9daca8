"""The compiled pieces of training: the loss, one SGD step, the evaluation step, and the host
side of their metrics.

The step is ``step(params, opt_state, batch) -> (params, opt_state, metrics)``, compiled once
per shape with ``jax.jit`` over a 1-D device mesh with axis ``"data"``: the global batch is
sharded along it, parameters and optimizer state are replicated. On one device this is plain
``jit``; with several devices (or several processes, after ``jax.distributed.initialize``) the
same code runs data-parallel and XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jconv._src import data as data_lib
from jconv._src.nn.base import Layer
from jconv._src.training.sharding import key_data


class Metrics(NamedTuple):
    """Per-batch sums over the real (unmasked) examples."""

    loss_sum: jax.Array
    correct: jax.Array
    count: jax.Array


def loss_and_metrics(model: Layer, params: Any, batch: tuple, state: Any = None, *, train: bool = False,
                     key: jax.Array | None = None, dtype: Any = None) -> tuple[jax.Array, Metrics]:
    """Mean softmax cross-entropy over the real examples of a (padded) batch, and sums.

    ``dtype`` (e.g. ``"bfloat16"``) casts the input, so that every layer computes in it (layers
    follow their input's dtype and cast their float32 parameters); the logits are cast back to
    float32 for the softmax and the loss.

    With ``state`` (a model with BatchNorm or Dropout) the model runs through
    ``apply_with_state(params, state, x, train=train, key=key)`` and the metrics come as
    ``(Metrics, new_state)``; without, through ``apply(params, x)``.
    """
    x, y, mask = batch
    if dtype is not None:
        x = x.astype(dtype)
    if state is None:
        logits, new_state = model.apply(params, x), None
    else:
        logits, new_state = model.apply_with_state(params, state, x, train=train, key=key)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)
    count = mask.sum()
    loss_sum = (losses * mask).sum()
    correct = ((jnp.argmax(logits, axis=-1) == y) * mask).sum()
    metrics = Metrics(loss_sum, correct, count)
    return loss_sum / jnp.maximum(count, 1.0), metrics if state is None else (metrics, new_state)


def step_body(model: Layer, optimizer: optax.GradientTransformation, dtype: Any, params: Any, opt_state: Any,
              batch: tuple, state: Any, key: jax.Array | None) -> tuple:
    """One SGD step (traced inside the jitted step and the device-resident epoch chunks)."""
    (_, aux), grads = jax.value_and_grad(
        lambda p: loss_and_metrics(model, p, batch, state, train=True, key=key, dtype=dtype), has_aux=True
    )(params)
    metrics, state = aux if state is not None else (aux, None)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics, state


def make_train_step(model: Layer, optimizer: optax.GradientTransformation, mesh: Mesh,
                    dtype: Any = None) -> Callable:
    """The training step, jitted and sharded (batch on ``"data"``, the rest replicated).

    * ``step(params, opt_state, batch) -> (params, opt_state, Metrics)`` for models without
      state or randomness (``model.apply``);
    * ``step(params, opt_state, batch, model_state, key) -> (params, opt_state, Metrics,
      model_state)`` for any model (``model.apply_with_state(..., train=True, key=key)``; the
      state from ``model.init_with_state``; ``key`` a ``jax.random`` key or None without Dropout).

    ``params``, ``opt_state`` and ``model_state`` are donated (updated in place on the device).
    ``dtype`` is the compute dtype (see :func:`loss_and_metrics`); gradients and updates stay in
    the parameters' dtype.
    Under data parallelism BatchNorm sees the global batch's statistics. ``step.lower(...)`` (same
    arguments) lowers the jitted program for ahead-of-time compilation.
    """
    repl, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

    def train_step(params: Any, opt_state: Any, batch: tuple, state: Any, rng: Any) -> tuple:
        key = None if rng is None else jax.random.wrap_key_data(rng)
        return step_body(model, optimizer, dtype, params, opt_state, batch, state, key)

    jitted = jax.jit(
        train_step,
        in_shardings=(repl, repl, (rows, rows, rows), repl, repl),
        out_shardings=(repl, repl, repl, repl),
        donate_argnums=(0, 1, 3),
    )

    def step(params: Any, opt_state: Any, batch: tuple, model_state: Any = None,
             key: jax.Array | None = None) -> tuple:
        if model_state is None and key is None:
            return jitted(params, opt_state, batch, None, None)[:3]
        return jitted(params, opt_state, batch, model_state, key_data(mesh, key))

    def lower(params: Any, opt_state: Any, batch: tuple, model_state: Any = None,
              key: jax.Array | None = None) -> Any:
        return jitted.lower(params, opt_state, batch, model_state, key_data(mesh, key))

    step.lower = lower  # type: ignore[attr-defined]  # ahead-of-time: step.lower(...).compile()
    return step


def make_eval_step(model: Layer, mesh: Mesh, dtype: Any = None) -> Callable:
    """``eval_step(params, batch, model_state=None) -> Metrics``, jitted and sharded like the train
    step; evaluation mode (running statistics, no dropout)."""
    repl, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

    def eval_step(params: Any, batch: tuple, state: Any) -> Metrics:
        aux = loss_and_metrics(model, params, batch, state, dtype=dtype)[1]
        return aux if state is None else aux[0]

    jitted = jax.jit(eval_step, in_shardings=(repl, (rows, rows, rows), repl), out_shardings=repl)
    return lambda params, batch, model_state=None: jitted(params, batch, model_state)


def host_metrics(ms: list[Any]) -> list[list[float]]:
    """Per-step :class:`Metrics` as ``[loss_sum, correct, count]`` floats, one row per step:
    from device scalars (a step), stacked device arrays (a chunk of steps) or host triples (a
    checkpoint)."""
    rows: list[list[float]] = []
    for m in jax.device_get([tuple(m) for m in ms]):
        rows.extend(np.asarray(m, np.float64).reshape(3, -1).T.tolist())
    return rows


def sum_metrics(rows: list[list[float]]) -> tuple[float, float, float]:
    """Sums per-step metric rows (from :func:`host_metrics`) in order, in float64 (a resumed
    partial epoch sums identically)."""
    rows = np.asarray(rows, np.float64).reshape(-1, 3)
    loss_sum, correct, count = (float(v) for v in rows.sum(axis=0))
    return loss_sum, correct, count


def evaluate(eval_step: Callable, params: Any, x: np.ndarray, y: np.ndarray, put: Callable, batch_size: int,
             model_state: Any = None) -> float:
    """Accuracy over ``(x, y)``, in padded batches of ``batch_size`` (one compiled shape)."""
    ms = [eval_step(params, b, model_state) for b in data_lib.batches(x, y, np.arange(len(y)), batch_size, put)]
    _, correct, count = sum_metrics(host_metrics(ms))
    return correct / count
