"""``fit``: the training loop, read top to bottom (restore, then per epoch: steps, metrics,
evaluation, record, checkpoint); each part lives in the module named after it."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jconv._src import data as data_lib
from jconv._src.nn.base import Layer
from jconv._src.training import checkpoints, history
from jconv._src.training.config import COMPUTE_DTYPES, TrainConfig, optimizer_for
from jconv._src.training.errors import TrainingError
from jconv._src.training.guards import check_divergence, plateau, plateau_message
from jconv._src.training.pipeline import PIPELINES, Carry, Stepper, on_device
from jconv._src.training.preemption import PreemptionWatch, stop
from jconv._src.training.run_dir import RunDir, open_run
from jconv._src.training.sharding import data_mesh
from jconv._src.training.steps import evaluate, host_metrics, make_eval_step, sum_metrics


class LoopState(NamedTuple):
    """Everything the loop carries from step to step and epoch to epoch (and a checkpoint restores)."""

    carry: Carry
    history: list[dict]
    first_loss: float | None  # the loss of the run's first step (divergence is measured from it)
    partial: dict[str, Any] | None  # the position inside an epoch that a preemption saved


def fit(
    model: Layer,
    dataset: data_lib.Dataset,
    config: TrainConfig,
    out: str | RunDir | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    mesh: Mesh | None = None,
    input_pipeline: str = "auto",
    fail_on_plateau: bool = False,
) -> tuple[Any, list[dict]]:
    """Trains ``model`` on ``dataset``; returns the final parameters and per-epoch metrics.

    Models with state (BatchNorm) train with batch statistics and carry their state through
    every step, checkpoint and resume; evaluation uses the running statistics. Models with
    Dropout draw step ``s``'s masks from ``fold_in(fold_in(key, 2), s)``. The optimizer is
    :func:`jconv._src.training.config.optimizer_for`'s (SGD, ``config``'s schedule).

    Writes ``out/metrics.jsonl``, ``out/curves.png`` and ``out/checkpoints/`` (orbax, the last 3,
    named by the number of optimizer steps done) when ``out`` is given (a path, or the
    :class:`RunDir` that :func:`check_output` returned, which is not checked again). A folder that
    holds another run is refused unless ``resume`` (continue it; ``config.epochs`` below the epochs
    it has done is an error, equal is nothing to do) or ``overwrite`` (its checkpoints, metrics and
    curves are removed first). All randomness derives
    from ``config.seed``: parameters from ``fold_in(key, 0)``, epoch ``e``'s shuffle from
    ``fold_in(fold_in(key, 1), e)``, so a run resumed from any checkpoint ends with the metrics of
    an uninterrupted run (on the same devices: another device count sums in another order).

    The first SIGTERM or SIGINT stops every process of the run before its next step: a
    checkpoint of that step (with the position in the epoch) is committed and :class:`Preempted`
    is raised; a second signal ends the process at once. See :mod:`jconv._src.training.preemption`.

    ``input_pipeline``: ``"device"`` places the training set on the devices once and runs each
    epoch as compiled chunks of ``STEPS_PER_CHUNK`` (32) steps (``lax.scan``; the permutation and
    the batch gathering inside the program, one host synchronisation per chunk); ``"host"`` feeds
    batches from NumPy; ``"auto"`` (default) picks the device on accelerators when the training set is at
    most ``DEVICE_DATA_LIMIT`` (1 GiB), the host on CPU (measured faster there). Both see the
    same batches, so their metrics agree to float rounding.

    A run whose epoch mean loss is not finite, or above :data:`DIVERGENCE_FACTOR` times the loss
    of its first step, stops with a :class:`TrainingError` (the last good checkpoint is kept). An
    epoch whose every step's loss stays within 2% of ``ln(num_classes)`` (the plateau of a network
    that has not started to learn) is named in one logged line; with ``fail_on_plateau`` the run
    then stops with a :class:`TrainingError` (after that epoch's checkpoint).

    Raises:
      Preempted: after a preemption signal (the checkpoint, if ``out``, is committed).
      TrainingError: a diverging loss, an output folder that cannot be written or holds another
        run, a batch size that the devices do not divide, unusable checkpoints, a resume with
        different settings or fewer epochs than done, or processes of one run started with
        different flags or folders.
    """
    mesh = _check(config, input_pipeline, mesh or data_mesh())
    run = open_run(out, dataclasses.asdict(config), resume=resume, overwrite=overwrite)
    lead = jax.process_index() == 0
    say = log if lead else (lambda s: None)
    key = jax.random.key(config.seed)
    steps_per_epoch = math.ceil(len(dataset.y_train) / config.batch_size)
    optimizer = optimizer_for(config, steps_per_epoch)
    loop = _initial_state(model, optimizer, dataset, jax.random.fold_in(key, 0), mesh)
    ckpt = checkpoints.Checkpoints(f"{run.path}/checkpoints") if run else None
    try:
        if resume and ckpt:
            loop = _restored(ckpt, loop, model, config, run.path, say)
        dtype = None if config.dtype == "float32" else jnp.dtype(config.dtype)
        stepper = Stepper(model, optimizer, mesh, dataset, config.batch_size, dtype, jax.random.fold_in(key, 1),
                          jax.random.fold_in(key, 2) if model.needs_key else None,
                          on_device(input_pipeline, mesh, dataset))
        eval_step = make_eval_step(model, mesh, dtype)
        with PreemptionWatch() as watch:
            for epoch in range(len(loop.history) + 1, config.epochs + 1):
                loop, rows, seconds = _train_epoch(stepper, loop, epoch, config, watch, ckpt, model,
                                                   progress and lead)
                sums = sum_metrics(rows)
                check_divergence(sums[0] / sums[2], loop.first_loss, epoch, config.lr,
                                 ckpt.directory if ckpt and epoch > 1 else None)
                test_acc = evaluate(eval_step, loop.carry.params, dataset.x_test, dataset.y_test, stepper.put,
                                    config.batch_size, loop.carry.model_state)
                row = history.epoch_row(epoch, *sums, test_acc, seconds)
                loop = loop._replace(history=loop.history + [row])
                say(history.describe(row))
                if ckpt:
                    done = epoch * steps_per_epoch
                    ckpt.save(done, checkpoints.trained(*loop.carry, model),
                              checkpoints.metadata(config, steps_per_epoch, epoch, done, loop.history, None,
                                                   loop.first_loss))
                if run and lead:
                    history.write(run.path, loop.history, title=f"{config.model} on {config.dataset}")
                if plateau(rows, dataset.num_classes):
                    message = plateau_message(config.model, epoch, config.lr, dataset.num_classes)
                    if fail_on_plateau:
                        raise TrainingError(message)
                    say(f"warning: {message}")
    finally:
        if ckpt:
            ckpt.close()
    return loop.carry.params, loop.history


def _check(config: TrainConfig, input_pipeline: str, mesh: Mesh) -> Mesh:
    """Refuses settings ``fit`` cannot run with, before anything is built."""
    if input_pipeline not in PIPELINES:
        raise ValueError(f"fit: `input_pipeline` must be 'auto', 'device' or 'host', got {input_pipeline!r}")
    if config.dtype not in COMPUTE_DTYPES:
        raise TrainingError(f"--dtype must be one of {COMPUTE_DTYPES}, got {config.dtype!r}")
    if not 0.0 <= config.final_lr_ratio <= 1.0:
        raise TrainingError(f"--final-lr-ratio must be in [0, 1], got {config.final_lr_ratio}")
    n_dev = mesh.devices.size
    if config.batch_size % n_dev:
        raise TrainingError(
            f"--batch-size {config.batch_size} is not divisible by the {n_dev} devices of the "
            f"data mesh; use a multiple of {n_dev}"
        )
    return mesh


def _initial_state(model: Layer, optimizer: Any, dataset: data_lib.Dataset, key: jax.Array,
                   mesh: Mesh) -> LoopState:
    """Fresh parameters (from ``key``), optimizer and model state, replicated over ``mesh``.

    Models with BatchNorm carry their state through every step; models with only Dropout carry
    an empty one (so that the step takes their key); the others none.
    """
    repl = NamedSharding(mesh, P())
    params, mstate = jax.device_put(model.init_with_state(key, (1,) + dataset.x_train.shape[1:]), repl)
    opt_state = jax.device_put(optimizer.init(params), repl)
    stateful = model.has_state or model.needs_key
    return LoopState(Carry(params, opt_state, mstate if stateful else None), [], None, None)


def _restored(ckpt: checkpoints.Checkpoints, loop: LoopState, model: Layer, config: TrainConfig, out: str,
              say: Callable[[str], None]) -> LoopState:
    """``loop`` continued from the newest usable checkpoint (unchanged where there is none)."""
    restored = checkpoints.restore(ckpt, checkpoints.trained(*loop.carry, model), config, out, say)
    if restored is None:
        return loop
    state, meta = restored
    carry = Carry(state["params"], state["opt_state"], state.get("model_state", loop.carry.model_state))
    return LoopState(carry, meta["history"], meta.get("first_loss"), meta["partial"])


def _train_epoch(stepper: Stepper, loop: LoopState, epoch: int, config: TrainConfig, watch: PreemptionWatch,
                 ckpt: checkpoints.Checkpoints | None, model: Layer,
                 show: bool) -> tuple[LoopState, list[list[float]], float]:
    """Epoch ``epoch``'s steps (from a preempted position, if ``loop.partial``): the new loop state,
    the epoch's per-step metrics ``[loss_sum, correct, count]`` and its training seconds. At a
    preemption, commits a checkpoint of the position reached and raises :class:`Preempted`."""
    partial = loop.partial or {"step": 0, "metrics": [], "seconds": 0.0}
    i, ms, carry = partial["step"], list(partial["metrics"]), loop.carry
    bar = history.progress(show, stepper.steps_per_epoch, f"epoch {epoch}/{config.epochs}", i)
    start = time.perf_counter()
    for i, carry, m in stepper.epoch(carry, epoch, i, watch):
        ms.append(m)
        bar.update(i - bar.n)
    bar.close()
    seconds = partial["seconds"] + time.perf_counter() - start
    rows = host_metrics(ms)  # the epoch's one host synchronisation
    first_loss = loop.first_loss if loop.first_loss is not None or not rows else rows[0][0] / rows[0][2]
    loop = LoopState(carry, loop.history, first_loss, None)
    if i < stepper.steps_per_epoch:  # preempted before step i
        done = (epoch - 1) * stepper.steps_per_epoch + i
        so_far = {"epoch": epoch, "step": i, "seconds": seconds, "metrics": rows} if i else None
        stop(watch, ckpt, checkpoints.trained(*carry, model),
             checkpoints.metadata(config, stepper.steps_per_epoch, epoch - 1, done, loop.history, so_far,
                                  loop.first_loss))
    return loop, rows, seconds
