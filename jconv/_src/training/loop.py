"""Training: a jit-compiled, data-parallel SGD step and a resumable fit loop.

The step is ``step(params, opt_state, batch) -> (params, opt_state, metrics)``, compiled once
per shape with ``jax.jit`` over a 1-D device mesh with axis ``"data"``: the global batch is
sharded along it, parameters and optimizer state are replicated. On one device this is plain
``jit``; with several devices (or several processes, after ``jax.distributed.initialize``) the
same code runs data-parallel and XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jconv._src import data as data_lib
from jconv._src.nn.base import Layer
from jconv._src.training.multiprocess import check_same_run
from jconv._src.training.preemption import PreemptionWatch


class TrainingError(Exception):
    """Training cannot go on (non-finite loss, unusable checkpoints, bad flags); one-line message."""


#: A run stops when an epoch's mean training loss exceeds this multiple of its first step's loss
#: (or is not finite): the learning rate is too large for the model (``jconv train --lr``).
DIVERGENCE_FACTOR = 10.0


class Metrics(NamedTuple):
    """Per-batch sums over the real (unmasked) examples."""

    loss_sum: jax.Array
    correct: jax.Array
    count: jax.Array


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run's numbers (checked again on ``--resume``)."""

    model: str = "lenet"
    dataset: str = "mnist5k"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    #: Compute dtype of the activations (``"float32"`` or ``"bfloat16"``); parameters, optimizer
    #: state, the loss and BatchNorm's statistics stay float32 (mixed precision).
    dtype: str = "float32"

    def same_run(self) -> dict[str, Any]:
        """The fields a resumed run must share with its checkpoint (all but ``epochs``)."""
        d = dataclasses.asdict(self)
        d.pop("epochs")
        return d


def make_optimizer(lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> optax.GradientTransformation:
    """SGD (optax), with optional heavy-ball momentum and L2 weight decay."""
    sgd = optax.sgd(lr, momentum=momentum or None)
    return optax.chain(optax.add_decayed_weights(weight_decay), sgd) if weight_decay else sgd


COMPUTE_DTYPES = ("float32", "bfloat16")


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


def data_mesh(devices: Any = None) -> Mesh:
    """A 1-D mesh over every device JAX sees (all processes), axis ``"data"``."""
    return Mesh(np.array(jax.devices() if devices is None else devices), ("data",))


def _replicated(mesh: Mesh, value: np.ndarray) -> jax.Array:
    """A host value (the same on every process) as an array replicated over ``mesh``."""
    return jax.make_array_from_process_local_data(NamedSharding(mesh, P()), np.asarray(value))


def _key_data(mesh: Mesh, key: jax.Array | None) -> jax.Array | None:
    """A ``jax.random`` key's raw data, replicated over ``mesh`` (None stays None)."""
    return None if key is None else _replicated(mesh, jax.random.key_data(key))


def _step_body(model: Layer, optimizer: optax.GradientTransformation, dtype: Any, params: Any, opt_state: Any,
               batch: tuple, state: Any, key: jax.Array | None) -> tuple:
    """One SGD step (traced inside the jitted step and the device-resident epoch chunks)."""
    (_, aux), grads = jax.value_and_grad(
        lambda p: loss_and_metrics(model, p, batch, state, train=True, key=key, dtype=dtype), has_aux=True
    )(params)
    metrics, state = aux if state is not None else (aux, None)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics, state


#: Data sets up to this size (training images and labels) are placed on the devices, and each
#: epoch runs as compiled chunks of steps; larger ones are fed from the host, batch by batch.
DEVICE_DATA_LIMIT = 2**30
#: Steps per compiled chunk of the device-resident pipeline (a progress-bar update, a preemption
#: check and one host synchronisation each).
STEPS_PER_CHUNK = 32


def make_train_chunk(model: Layer, optimizer: optax.GradientTransformation, mesh: Mesh, n: int,
                     batch_size: int, dtype: Any = None) -> Callable:
    """The device-resident training loop: ``chunk(params, opt_state, model_state, x, y, order,
    start, step0, key_data, length) -> (params, opt_state, model_state, Metrics of shape
    (length,))`` runs ``length`` steps as one ``lax.scan`` inside one compiled program.

    ``x``, ``y`` are the whole training set, replicated on every device (a random batch is then
    gathered where it is used, without communication); ``order`` the epoch's padded order
    (:func:`device_epoch_order`); step ``i`` of the chunk takes rows ``order[(start + i) * B :
    (start + i + 1) * B]``, masked where they are the padding of the last batch (positions
    ``>= n``), exactly the batches of :func:`jconv.data.batches`. ``step0`` is the run's step
    count at the chunk's start (Dropout's key is ``fold_in(key, step0 + i)``). One program is
    compiled per distinct ``length``.
    """
    repl, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    positions = jnp.arange(batch_size)

    def chunk(params: Any, opt_state: Any, state: Any, x: jax.Array, y: jax.Array, order: jax.Array,
              start: jax.Array, step0: jax.Array, rng: Any, length: int) -> tuple:
        base = None if rng is None else jax.random.wrap_key_data(rng)

        def body(carry: tuple, i: jax.Array) -> tuple:
            params, opt_state, state = carry
            first = (start + i) * batch_size
            idx = lax.dynamic_slice_in_dim(order, first, batch_size)
            mask = (first + positions < n).astype(jnp.float32)
            batch = jax.lax.with_sharding_constraint((x[idx], y[idx], mask), (rows, rows, rows))
            key = None if base is None else jax.random.fold_in(base, step0 + i)
            params, opt_state, m, state = _step_body(model, optimizer, dtype, params, opt_state, batch, state, key)
            return (params, opt_state, state), m

        (params, opt_state, state), ms = lax.scan(body, (params, opt_state, state), jnp.arange(length))
        return params, opt_state, state, ms

    jitted = jax.jit(chunk, static_argnums=(9,), in_shardings=(repl,) * 9, out_shardings=(repl,) * 4,
                     donate_argnums=(0, 1, 2))

    def run(params: Any, opt_state: Any, state: Any, x: jax.Array, y: jax.Array, order: jax.Array, start: int,
            step0: int, key: jax.Array | None, length: int) -> tuple:
        return jitted(params, opt_state, state, x, y, order, _replicated(mesh, np.int32(start)),
                      _replicated(mesh, np.int32(step0)), _key_data(mesh, key), length)

    return run


def device_epoch_order(mesh: Mesh, key: jax.Array, n: int, batch_size: int) -> jax.Array:
    """The epoch's order (``jax.random.permutation(key, n)``, as :func:`jconv.data.epoch_order`),
    padded to whole batches with its first examples, computed on the devices (replicated)."""
    steps = -(-n // batch_size)

    def order(key: jax.Array) -> jax.Array:
        perm = jax.random.permutation(key, n).astype(jnp.int32)
        return jnp.concatenate([perm, jnp.resize(perm, steps * batch_size - n)]) if steps * batch_size > n else perm

    return jax.jit(order, out_shardings=NamedSharding(mesh, P()))(key)


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
        return _step_body(model, optimizer, dtype, params, opt_state, batch, state, key)

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
        return jitted(params, opt_state, batch, model_state, _key_data(mesh, key))

    def lower(params: Any, opt_state: Any, batch: tuple, model_state: Any = None,
              key: jax.Array | None = None) -> Any:
        return jitted.lower(params, opt_state, batch, model_state, _key_data(mesh, key))

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


def batch_putter(mesh: Mesh, batch_size: int) -> Callable[[np.ndarray, np.ndarray, np.ndarray], tuple]:
    """Turns a global batch (the same NumPy rows on every process) into arrays sharded on
    ``"data"``; each process contributes only the rows of its own devices."""
    rows = NamedSharding(mesh, P("data"))
    n_proc, pid = jax.process_count(), jax.process_index()
    lo, hi = pid * batch_size // n_proc, (pid + 1) * batch_size // n_proc

    def put(*arrays: np.ndarray) -> tuple:
        return tuple(
            jax.make_array_from_process_local_data(rows, a[lo:hi], a.shape) for a in arrays
        )

    return put


def _host_metrics(ms: list[Any]) -> list[list[float]]:
    """Per-step :class:`Metrics` as ``[loss_sum, correct, count]`` floats, one row per step:
    from device scalars (a step), stacked device arrays (a chunk of steps) or host triples (a
    checkpoint)."""
    rows: list[list[float]] = []
    for m in jax.device_get([tuple(m) for m in ms]):
        rows.extend(np.asarray(m, np.float64).reshape(3, -1).T.tolist())
    return rows


def _sum_metrics(rows: list[list[float]]) -> tuple[float, float, float]:
    """Sums per-step metric rows (from :func:`_host_metrics`) in order, in float64 (a resumed
    partial epoch sums identically)."""
    rows = np.asarray(rows, np.float64).reshape(-1, 3)
    loss_sum, correct, count = (float(v) for v in rows.sum(axis=0))
    return loss_sum, correct, count


def evaluate(eval_step: Callable, params: Any, x: np.ndarray, y: np.ndarray, put: Callable, batch_size: int,
             model_state: Any = None) -> float:
    """Accuracy over ``(x, y)``, in padded batches of ``batch_size`` (one compiled shape)."""
    ms = [eval_step(params, b, model_state) for b in data_lib.batches(x, y, np.arange(len(y)), batch_size, put)]
    _, correct, count = _sum_metrics(_host_metrics(ms))
    return correct / count


class Preempted(TrainingError):
    """The run stopped at a preemption signal after committing a checkpoint (or without one)."""

    def __init__(self, message: str, epoch: int, step: int, directory: str | None):
        super().__init__(message)
        self.epoch, self.step, self.directory = epoch, step, directory


class _Checkpoints:
    """orbax-checkpoint's manager over ``DIR/checkpoints``, one orbax step per optimizer step
    count: ``DIR/checkpoints/<steps done>``, written at the end of every epoch and at a
    preemption (then mid-epoch, with the position and the epoch's metrics so far)."""

    def __init__(self, directory: str, keep: int = 3):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True),
        )

    def save(self, step: int, state: dict[str, Any], meta: dict[str, Any]) -> None:
        args = self._ocp.args
        if step in self.manager.all_steps():  # an unreadable one that resume skipped
            self.manager.delete(step)
        self.manager.save(
            step,
            args=args.Composite(state=args.StandardSave(state), meta=args.JsonSave(meta)),
            force=True,
        )

    def has(self, step: int) -> bool:
        return step in self.manager.all_steps()

    def restore_newest(self, abstract_state: dict[str, Any], log: Callable[[str], None]) -> tuple[dict, dict] | None:
        """The newest checkpoint that restores cleanly; corrupt ones are skipped with a note."""
        args = self._ocp.args
        steps = sorted(self.manager.all_steps(), reverse=True)
        for step in steps:
            path = os.path.join(self.directory, str(step))
            try:
                out = self.manager.restore(
                    step,
                    args=args.Composite(
                        state=args.StandardRestore(abstract_state), meta=args.JsonRestore()
                    ),
                )
                state, meta = out["state"], out["meta"]
                if not isinstance(meta, dict) or meta.get("global_step") != step:
                    raise ValueError("metadata missing or inconsistent")
                return state, meta
            except Exception as e:  # orbax raises many kinds for damaged files
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
                log(f"skipping unreadable checkpoint {path}: {type(e).__name__}: {first}")
        if steps:
            raise TrainingError(
                f"no usable checkpoint in {self.directory} (tried steps {steps}); "
                f"remove the folder or start without --resume"
            )
        return None

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


_RUN_FILES = ("metrics.jsonl", "curves.png")


def _run_in(out: str) -> str | None:
    """A description of the run that ``out`` holds (checkpoints or metrics), or None."""
    ckpts = os.path.join(out, "checkpoints")
    steps = sorted(int(d) for d in os.listdir(ckpts) if d.isdigit()) if os.path.isdir(ckpts) else []
    metrics = os.path.join(out, "metrics.jsonl")
    epochs = sum(1 for _ in open(metrics)) if os.path.isfile(metrics) else 0
    if not steps and not epochs:
        return None
    parts = ([f"checkpoints after {', '.join(map(str, steps))} steps"] if steps else []) + (
        [f"{_plural(epochs, 'epoch')} in metrics.jsonl"] if epochs else [])
    return " and ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_output(out: str, *, resume: bool = False, overwrite: bool = False) -> None:
    """Checks that ``out`` can be written (creating it) and does not hold another run, unless
    ``resume`` (continue it) or ``overwrite`` (replace it) is given.

    Raises:
      TrainingError: naming the folder and the OS error, or the run found there.
    """
    if resume and overwrite:
        raise TrainingError("--resume continues the run in the output folder and --overwrite replaces it; "
                            "give one of them")
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".jconv-write-test-"):
            pass
    except OSError as e:
        raise TrainingError(f"cannot write to the output folder {out}: {e.strerror or e}") from None
    run = _run_in(out)
    if run and not (resume or overwrite):
        raise TrainingError(
            f"the output folder {out} holds another run ({run}); pass --resume to continue it, "
            f"--overwrite to replace it, or choose another --out"
        )


def _clear_run(out: str) -> None:
    """Removes the run in ``out`` (its checkpoints, metrics and curves; nothing else)."""
    shutil.rmtree(os.path.join(out, "checkpoints"), ignore_errors=True)
    for name in _RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, name))


def _write_jsonl(path: str, history: list[dict]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def _position(meta: dict[str, Any]) -> str:
    partial = meta.get("partial")
    if partial:
        return f"epoch {partial['epoch']}, step {partial['step']} of {meta['steps_per_epoch']}"
    return f"end of epoch {meta['epoch']}"


def fit(
    model: Layer,
    dataset: data_lib.Dataset,
    config: TrainConfig,
    out: str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    mesh: Mesh | None = None,
    input_pipeline: str = "auto",
) -> tuple[Any, list[dict]]:
    """Trains ``model`` on ``dataset``; returns the final parameters and per-epoch metrics.

    Models with state (BatchNorm) train with batch statistics and carry their state through
    every step, checkpoint and resume; evaluation uses the running statistics. Models with
    Dropout draw step ``s``'s masks from ``fold_in(fold_in(key, 2), s)``.

    Writes ``out/metrics.jsonl``, ``out/curves.png`` and ``out/checkpoints/`` (orbax, the last 3,
    named by the number of optimizer steps done) when ``out`` is given. A folder that holds
    another run is refused unless ``resume`` (continue it; ``config.epochs`` below the epochs it
    has done is an error, equal is nothing to do) or ``overwrite`` (its checkpoints, metrics and
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
    of its first step, stops with a :class:`TrainingError` (the last good checkpoint is kept).

    Raises:
      Preempted: after a preemption signal (the checkpoint, if ``out``, is committed).
      TrainingError: a diverging loss, an output folder that cannot be written or holds another
        run, a batch size that the devices do not divide, unusable checkpoints, a resume with
        different settings or fewer epochs than done, or processes of one run started with
        different flags or folders.
    """
    if input_pipeline not in ("auto", "device", "host"):
        raise ValueError(f"fit: `input_pipeline` must be 'auto', 'device' or 'host', got {input_pipeline!r}")
    if config.dtype not in COMPUTE_DTYPES:
        raise TrainingError(f"--dtype must be one of {COMPUTE_DTYPES}, got {config.dtype!r}")
    mesh = mesh or data_mesh()
    n_dev = mesh.devices.size
    if config.batch_size % n_dev:
        raise TrainingError(
            f"--batch-size {config.batch_size} is not divisible by the {n_dev} devices of the "
            f"data mesh; use a multiple of {n_dev}"
        )
    if out:
        check_output(out, resume=resume, overwrite=overwrite)
    check_same_run({**dataclasses.asdict(config), "resume": resume, "overwrite": overwrite}, out, TrainingError)
    lead = jax.process_index() == 0
    if out and overwrite:  # every process has checked the folder (above) before process 0 clears it
        if lead:
            _clear_run(out)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("jconv: output folder cleared")
    say = log if lead else (lambda s: None)
    key = jax.random.key(config.seed)
    input_shape = (1,) + dataset.x_train.shape[1:]
    optimizer = make_optimizer(config.lr, config.momentum, config.weight_decay)
    repl = NamedSharding(mesh, P())
    params, mstate = jax.device_put(model.init_with_state(jax.random.fold_in(key, 0), input_shape), repl)
    opt_state = jax.device_put(optimizer.init(params), repl)
    # Models with BatchNorm carry their state through every step; models with Dropout get the
    # key fold_in(fold_in(key, 2), step) at each step (so a resumed run draws the same masks).
    stateful = model.has_state or model.needs_key
    if not stateful:
        mstate = None
    dropout_key = jax.random.fold_in(key, 2) if model.needs_key else None
    n = len(dataset.y_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    history: list[dict] = []
    partial: dict[str, Any] | None = None  # the position inside an epoch that a preemption saved
    first_loss: float | None = None  # the loss of the run's first step (divergence is measured from it)

    def checkpoint_meta(epochs_done: int, done: int, partial: dict[str, Any] | None) -> dict[str, Any]:
        """A checkpoint's metadata: after ``done`` steps, ``epochs_done`` whole epochs."""
        return {"epoch": epochs_done, "global_step": done, "steps_per_epoch": steps_per_epoch,
                "history": history, "config": config.same_run(), "partial": partial, "first_loss": first_loss}

    ckpt = _Checkpoints(os.path.join(out, "checkpoints")) if out else None
    try:
        if resume and ckpt:
            restored = ckpt.restore_newest(_trained(params, opt_state, mstate, model), say)
            if restored is not None:
                state, meta = restored
                saved = {**TrainConfig().same_run(), **meta["config"]}  # fields added later: their defaults
                if saved != config.same_run():
                    diff = {k: v for k, v in saved.items() if config.same_run().get(k) != v}
                    raise TrainingError(
                        f"checkpoint {ckpt.directory}/{meta['global_step']} was written with "
                        f"{diff}; resume with the same flags (only --epochs may change)"
                    )
                params, opt_state, history = state["params"], state["opt_state"], meta["history"]
                mstate = state.get("model_state", mstate)
                partial, first_loss = meta["partial"], meta.get("first_loss")
                if len(history) > config.epochs:
                    raise TrainingError(
                        f"the run in {out} has already trained {_plural(len(history), 'epoch')}; nothing to "
                        f"do for --epochs {config.epochs} (a run cannot go back; give --epochs "
                        f"{len(history) + 1} or more to continue it)"
                    )
                say(f"resumed from {ckpt.directory}/{meta['global_step']} ({_position(meta)})")
                if len(history) == config.epochs:
                    say(f"already trained {_plural(len(history), 'epoch')}; nothing to do")
            else:
                say(f"no checkpoint in {ckpt.directory}; starting from scratch")

        dtype = None if config.dtype == "float32" else jnp.dtype(config.dtype)
        step = make_train_step(model, optimizer, mesh, dtype)
        eval_step = make_eval_step(model, mesh, dtype)
        size = dataset.x_train.nbytes + dataset.y_train.nbytes
        # "auto" keeps the host pipeline on CPU: there the data already is in the device's memory,
        # a step's dispatch costs little, and XLA:CPU ran the scanned steps slower (LeNet, batch 48:
        # 8 steps 250 ms as a scan, 65 ms unrolled (5.7 s compile), 53-63 ms as separate steps).
        accelerated = mesh.devices.flat[0].platform != "cpu"
        on_device = input_pipeline == "device" or (
            input_pipeline == "auto" and accelerated and size <= DEVICE_DATA_LIMIT)
        if on_device:  # placed once, replicated (a random batch is gathered where it is used)
            chunk = make_train_chunk(model, optimizer, mesh, n, config.batch_size, dtype)
            xs, ys = _replicated(mesh, dataset.x_train), _replicated(mesh, dataset.y_train)
        put = batch_putter(mesh, config.batch_size)
        shuffle_key = jax.random.fold_in(key, 1)
        with PreemptionWatch() as watch:
            for epoch in range(len(history) + 1, config.epochs + 1):
                first = partial["step"] if partial else 0
                ms: list[Any] = list(partial["metrics"]) if partial else []
                seconds = partial["seconds"] if partial else 0.0
                partial = None
                bar = _progress(progress and lead, steps_per_epoch, f"epoch {epoch}/{config.epochs}", first)
                start = time.perf_counter()

                def stop_if_preempted(i: int, done: int) -> None:
                    if watch.reached(done):
                        bar.close()
                        so_far = {"epoch": epoch, "step": i, "seconds": seconds + time.perf_counter() - start,
                                  "metrics": _host_metrics(ms)}
                        _stop(watch, ckpt, _trained(params, opt_state, mstate, model),
                              checkpoint_meta(epoch - 1, done, so_far if i else None))

                if on_device:  # chunks of steps as compiled scans over the device-resident data
                    order_d = device_epoch_order(mesh, jax.random.fold_in(shuffle_key, epoch), n, config.batch_size)
                    i = first
                    while i < steps_per_epoch:
                        done = (epoch - 1) * steps_per_epoch + i
                        stop_if_preempted(i, done)
                        length = min(STEPS_PER_CHUNK, steps_per_epoch - i)
                        params, opt_state, mstate, m = chunk(params, opt_state, mstate, xs, ys, order_d, i, done,
                                                             dropout_key, length)
                        if ms and i > first:  # two chunks in flight at most
                            jax.block_until_ready(ms[-1])
                        ms.append(m)
                        bar.update(length)
                        i += length
                else:  # batches gathered on the host, one step each
                    order = data_lib.epoch_order(jax.random.fold_in(shuffle_key, epoch), n)
                    batches = data_lib.batches(dataset.x_train, dataset.y_train,
                                               order[first * config.batch_size:], config.batch_size, put)
                    for i, batch in enumerate(batches, start=first):
                        done = (epoch - 1) * steps_per_epoch + i
                        stop_if_preempted(i, done)
                        if stateful:
                            k = None if dropout_key is None else jax.random.fold_in(dropout_key, done)
                            params, opt_state, m, mstate = step(params, opt_state, batch, mstate, k)
                        else:
                            params, opt_state, m = step(params, opt_state, batch)
                        if ms and i > first:  # two steps in flight at most: a signal stops the run within a step
                            jax.block_until_ready(ms[-1])
                        ms.append(m)
                        bar.update(1)
                host = _host_metrics(ms)  # the epoch's one host synchronisation
                loss_sum, correct, count = _sum_metrics(host)
                seconds += time.perf_counter() - start
                bar.close()
                train_loss = loss_sum / count
                if first_loss is None:
                    first_loss = host[0][0] / host[0][2]
                _check_divergence(train_loss, first_loss, epoch, config.lr,
                                  ckpt.directory if ckpt and epoch > 1 else None)
                test_acc = evaluate(eval_step, params, dataset.x_test, dataset.y_test, put, config.batch_size, mstate)
                row = {
                    "epoch": epoch,
                    "train_loss": round(train_loss, 6),
                    "train_acc": round(correct / count, 6),
                    "test_acc": round(test_acc, 6),
                    "examples_per_sec": round(count / seconds, 1),
                    "seconds": round(seconds, 3),
                }
                history.append(row)
                say(
                    f"epoch {epoch:3d}  loss {row['train_loss']:.4f}  train acc {row['train_acc']:.4f}  "
                    f"test acc {row['test_acc']:.4f}  {row['examples_per_sec']:,.0f} examples/s"
                )
                if out:
                    if ckpt:
                        done = epoch * steps_per_epoch
                        ckpt.save(done, _trained(params, opt_state, mstate, model), checkpoint_meta(epoch, done, None))
                    if lead:
                        _write_jsonl(os.path.join(out, "metrics.jsonl"), history)
                        from jconv._src.training.plot import save_curves

                        save_curves(history, os.path.join(out, "curves.png"),
                                    title=f"{config.model} on {config.dataset}")
    finally:
        if ckpt:
            ckpt.close()
    return params, history


def _check_divergence(loss: float, first_loss: float, epoch: int, lr: float, last_good: str | None) -> None:
    """Raises :class:`TrainingError` when an epoch's mean loss is not finite or above
    ``DIVERGENCE_FACTOR`` times the first step's."""
    if math.isfinite(loss) and not loss > DIVERGENCE_FACTOR * first_loss:
        return
    why = (f"non-finite training loss ({loss})" if not math.isfinite(loss) else
           f"the training loss diverged (mean {loss:.4g}, more than {DIVERGENCE_FACTOR:g}x the "
           f"first step's {first_loss:.4g})")
    kept = f"; the last good checkpoint is in {last_good}" if last_good else ""
    raise TrainingError(f"{why} in epoch {epoch}: stopping (try a smaller --lr than {lr:g}){kept}")


def _trained(params: Any, opt_state: Any, model_state: Any, model: Layer) -> dict[str, Any]:
    """What a checkpoint holds: parameters, optimizer state and, with BatchNorm, the model state."""
    out = {"params": params, "opt_state": opt_state}
    if model.has_state:
        out["model_state"] = model_state
    return out


def _stop(watch: PreemptionWatch, ckpt: _Checkpoints | None, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Commits the checkpoint of ``meta["global_step"]`` (unless the end of the previous epoch
    already did) and raises :class:`Preempted`."""
    done, partial = meta["global_step"], meta["partial"]
    epoch, step = (partial["epoch"], partial["step"]) if partial else (meta["epoch"] + 1, 0)
    if ckpt:
        ckpt.wait()
        if not ckpt.has(done):
            ckpt.save(done, state, meta)
            ckpt.wait()
    where = f"epoch {epoch} step {step}" if step else f"the start of epoch {epoch}"
    what = watch.signal_name or "a preemption notice"
    if ckpt:
        message = (f"preempted ({what}) at {where}; checkpoint in {ckpt.directory}/{done}; "
                   f"restart every process with --resume")
    else:
        message = f"preempted ({what}) at {where}; no checkpoint (no output folder)"
    raise Preempted(message, epoch, step, ckpt.directory if ckpt else None)


def _progress(enabled: bool, total: int, desc: str, initial: int = 0) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False, disable=not enabled)
