"""Feeding an epoch's steps: host batches (one jitted step each) or the device-resident data set
(compiled chunks of steps), behind one :class:`Stepper` that yields ``(steps done, carry,
metrics)`` so the training loop's bookkeeping exists once."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jconv._src import data as data_lib
from jconv._src.nn.base import Layer
from jconv._src.training.preemption import PreemptionWatch
from jconv._src.training.sharding import batch_putter, key_data, replicated
from jconv._src.training.steps import make_train_step, step_body

#: Data sets up to this size (training images and labels) are placed on the devices, and each
#: epoch runs as compiled chunks of steps; larger ones are fed from the host, batch by batch.
DEVICE_DATA_LIMIT = 2**30
#: Steps per compiled chunk of the device-resident pipeline (a progress-bar update, a preemption
#: check and one host synchronisation each).
STEPS_PER_CHUNK = 32
PIPELINES = ("auto", "device", "host")


class Carry(NamedTuple):
    """What every step updates: parameters, optimizer state, model state (None without state)."""

    params: Any
    opt_state: Any
    model_state: Any


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
            params, opt_state, m, state = step_body(model, optimizer, dtype, params, opt_state, batch, state, key)
            return (params, opt_state, state), m

        (params, opt_state, state), ms = lax.scan(body, (params, opt_state, state), jnp.arange(length))
        return params, opt_state, state, ms

    jitted = jax.jit(chunk, static_argnums=(9,), in_shardings=(repl,) * 9, out_shardings=(repl,) * 4,
                     donate_argnums=(0, 1, 2))

    def run(params: Any, opt_state: Any, state: Any, x: jax.Array, y: jax.Array, order: jax.Array, start: int,
            step0: int, key: jax.Array | None, length: int) -> tuple:
        return jitted(params, opt_state, state, x, y, order, replicated(mesh, np.int32(start)),
                      replicated(mesh, np.int32(step0)), key_data(mesh, key), length)

    return run


def device_epoch_order(mesh: Mesh, key: jax.Array, n: int, batch_size: int) -> jax.Array:
    """The epoch's order (``jax.random.permutation(key, n)``, as :func:`jconv.data.epoch_order`),
    padded to whole batches with its first examples, computed on the devices (replicated)."""
    steps = -(-n // batch_size)

    def order(key: jax.Array) -> jax.Array:
        perm = jax.random.permutation(key, n).astype(jnp.int32)
        return jnp.concatenate([perm, jnp.resize(perm, steps * batch_size - n)]) if steps * batch_size > n else perm

    return jax.jit(order, out_shardings=NamedSharding(mesh, P()))(key)


def on_device(pipeline: str, mesh: Mesh, dataset: data_lib.Dataset) -> bool:
    """Whether ``pipeline`` (``"auto"``, ``"device"``, ``"host"``) places the training set on the devices.

    ``"auto"`` keeps the host pipeline on CPU: there the data already is in the device's memory,
    a step's dispatch costs little, and XLA:CPU ran the scanned steps slower (LeNet, batch 48:
    8 steps 250 ms as a scan, 65 ms unrolled (5.7 s compile), 53-63 ms as separate steps).
    """
    accelerated = mesh.devices.flat[0].platform != "cpu"
    size = dataset.x_train.nbytes + dataset.y_train.nbytes
    return pipeline == "device" or (pipeline == "auto" and accelerated and size <= DEVICE_DATA_LIMIT)


class Stepper:
    """Runs the steps of an epoch from step ``first`` on, on the pipeline ``fit`` chose.

    ``epoch(carry, e, first, watch)`` yields ``(steps done in the epoch, carry, metrics)`` after
    each jitted step (host batches) or compiled chunk (device-resident data); before each, it asks
    ``watch`` whether to stop and ends early (an epoch that yields fewer than ``steps_per_epoch``
    steps was preempted). Two steps (or chunks) are in flight at most, so a signal stops the run
    within one. Epoch ``e``'s order comes from ``fold_in(shuffle_key, e)``; step ``s``'s Dropout
    key is ``fold_in(dropout_key, s)``.
    """

    def __init__(self, model: Layer, optimizer: optax.GradientTransformation, mesh: Mesh,
                 dataset: data_lib.Dataset, batch_size: int, dtype: Any, shuffle_key: jax.Array,
                 dropout_key: jax.Array | None, device: bool):
        self.n, self.batch_size = len(dataset.y_train), batch_size
        self.steps_per_epoch = math.ceil(self.n / batch_size)
        self.mesh, self.dataset, self.device = mesh, dataset, device
        self.shuffle_key, self.dropout_key = shuffle_key, dropout_key
        if device:  # placed once, replicated (a random batch is gathered where it is used)
            self._chunk = make_train_chunk(model, optimizer, mesh, self.n, batch_size, dtype)
            self._xs, self._ys = replicated(mesh, dataset.x_train), replicated(mesh, dataset.y_train)
        else:
            self._step = make_train_step(model, optimizer, mesh, dtype)
        self.put = batch_putter(mesh, batch_size)

    def epoch(self, carry: Carry, epoch: int, first: int,
              watch: PreemptionWatch) -> Iterator[tuple[int, Carry, Any]]:
        key = jax.random.fold_in(self.shuffle_key, epoch)
        runs = self._chunks(key, first) if self.device else self._batches(key, first)
        previous = None
        for i, length, run in runs:
            if watch.reached((epoch - 1) * self.steps_per_epoch + i):
                return
            carry, m = run(carry, (epoch - 1) * self.steps_per_epoch + i)
            if previous is not None:
                jax.block_until_ready(previous)
            previous = m
            yield i + length, carry, m

    def _chunks(self, key: jax.Array, first: int) -> Iterator[tuple[int, int, Callable]]:
        order = device_epoch_order(self.mesh, key, self.n, self.batch_size)
        for i in range(first, self.steps_per_epoch, STEPS_PER_CHUNK):
            length = min(STEPS_PER_CHUNK, self.steps_per_epoch - i)

            def run(c: Carry, done: int, i: int = i, length: int = length) -> tuple[Carry, Any]:
                params, opt_state, state, m = self._chunk(*c, self._xs, self._ys, order, i, done,
                                                          self.dropout_key, length)
                return Carry(params, opt_state, state), m

            yield i, length, run

    def _batches(self, key: jax.Array, first: int) -> Iterator[tuple[int, int, Callable]]:
        order = data_lib.epoch_order(key, self.n)
        batches = data_lib.batches(self.dataset.x_train, self.dataset.y_train,
                                   order[first * self.batch_size:], self.batch_size, self.put)
        for i, batch in enumerate(batches, start=first):
            def run(c: Carry, done: int, batch: tuple = batch) -> tuple[Carry, Any]:
                if c.model_state is None:  # a model without state or Dropout (see loop._initial_state)
                    params, opt_state, m = self._step(c.params, c.opt_state, batch)
                    return Carry(params, opt_state, None), m
                k = None if self.dropout_key is None else jax.random.fold_in(self.dropout_key, done)
                params, opt_state, m, state = self._step(c.params, c.opt_state, batch, c.model_state, k)
                return Carry(params, opt_state, state), m

            yield i, 1, run
