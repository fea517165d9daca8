"""Graceful preemption: every process of a run stops at one agreed step.

Cluster schedulers (Slurm, Kubernetes, spot VMs) announce a preemption with SIGTERM and send
SIGKILL after a grace period. :class:`PreemptionWatch` turns the first SIGTERM or SIGINT into a
stop at a step boundary, where the training loop commits a checkpoint; a second signal ends the
process at once.

* One process: a Python signal handler sets a flag; the loop sees it before its next step.
* Several processes (after ``jax.distributed.initialize``): JAX's preemption service owns
  SIGTERM. It tells every process of the job (through the coordination service) and they agree
  on the first step that all of them can still reach;
  ``multihost_utils.reached_preemption_sync_point(step)`` is True at that step on every process.
  SIGINT (Ctrl-C) is turned into a SIGTERM to the process itself so that it goes the same way.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import jax
from jax.experimental import multihost_utils

from jconv._src.training.errors import Preempted

#: The exit status of a preempted ``jconv train``: 128 + SIGTERM, what shells report for a
#: process ended by SIGTERM, which is what the job was asked to do.
EXIT_CODE = 128 + signal.SIGTERM


class PreemptionWatch:
    """A context manager that answers "stop before this step?" the same on every process.

    Example::

      with PreemptionWatch() as watch:
          for step in range(start, end):
              if watch.reached(step):
                  save_checkpoint(step)
                  break
              state = train_step(state)

    ``reached`` must be called at every step, with increasing step numbers, on every process.
    Signal handlers can only be installed from the main thread; elsewhere the watch is inert
    (signals keep their current handling) but ``reached`` still follows JAX's preemption service.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._multi = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "PreemptionWatch":
        self._multi = jax.process_count() > 1
        if threading.current_thread() is threading.main_thread():
            # With several processes SIGTERM stays with JAX's preemption notifier.
            signals = (signal.SIGINT,) if self._multi else (signal.SIGINT, signal.SIGTERM)
            self._old = {s: signal.signal(s, self._on_signal) for s in signals}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:
            os.write(2, f"jconv: second {name}: stopping at once, without a checkpoint of the "
                        f"current step (the last committed one is kept)\n".encode())
            os._exit(128 + signum)
        self.signal_name = name
        if self._multi:  # JAX's notifier tells every process of the job
            os.kill(os.getpid(), signal.SIGTERM)

    def reached(self, step: int) -> bool:
        """True when the run should stop before ``step`` (the same answer on every process)."""
        if self._multi:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.signal_name is not None


def stop(watch: PreemptionWatch, ckpt: Any, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Commits the checkpoint of ``meta["global_step"]`` (unless the end of the previous epoch
    already did) to ``ckpt`` (a :class:`jconv._src.training.checkpoints.Checkpoints` or None) and
    raises :class:`Preempted`."""
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
