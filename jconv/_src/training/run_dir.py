"""The run folder: checked once (writable, not holding another run), cleared on ``--overwrite``."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from typing import Any

import jax

from jconv._src.training.errors import TrainingError
from jconv._src.training.multiprocess import check_same_run

RUN_FILES = ("metrics.jsonl", "curves.png")


@dataclasses.dataclass(frozen=True)
class RunDir:
    """A run folder that :func:`check_output` accepted for ``resume`` / ``overwrite``
    (:func:`jconv.train.fit` takes it for ``out`` and does not check it again)."""

    path: str
    resume: bool = False
    overwrite: bool = False

    def __fspath__(self) -> str:
        return self.path


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _run_in(out: str) -> str | None:
    """A description of the run that ``out`` holds (checkpoints or metrics), or None."""
    ckpts = os.path.join(out, "checkpoints")
    steps = sorted(int(d) for d in os.listdir(ckpts) if d.isdigit()) if os.path.isdir(ckpts) else []
    metrics = os.path.join(out, "metrics.jsonl")
    epochs = sum(1 for _ in open(metrics)) if os.path.isfile(metrics) else 0
    if not steps and not epochs:
        return None
    parts = ([f"checkpoints after {', '.join(map(str, steps))} steps"] if steps else []) + (
        [f"{plural(epochs, 'epoch')} in metrics.jsonl"] if epochs else [])
    return " and ".join(parts)


def check_output(out: str, *, resume: bool = False, overwrite: bool = False) -> RunDir:
    """Checks that ``out`` can be written (creating it) and does not hold another run, unless
    ``resume`` (continue it) or ``overwrite`` (replace it) is given.

    Returns:
      The checked folder, a :class:`RunDir` (``fit(out=...)`` accepts it without a second check).

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
    return RunDir(out, resume, overwrite)


def open_run(out: str | RunDir | None, settings: dict[str, Any], *, resume: bool, overwrite: bool) -> RunDir | None:
    """Everything ``fit`` does to its folder before training: :func:`check_output` (unless ``out``
    is a :class:`RunDir` checked for the same ``resume``/``overwrite``), the check that every
    process has the same ``settings`` and folder, and on ``overwrite`` the removal of the old run
    (by process 0, once every process has checked it)."""
    if isinstance(out, RunDir) and (out.resume, out.overwrite) != (resume, overwrite):
        out = out.path
    run = out if isinstance(out, RunDir) or not out else check_output(out, resume=resume, overwrite=overwrite)
    check_same_run({**settings, "resume": resume, "overwrite": overwrite}, run.path if run else None,
                   TrainingError)
    if run and overwrite:
        if jax.process_index() == 0:
            _clear_run(run.path)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("jconv: output folder cleared")
    return run


def _clear_run(out: str) -> None:
    """Removes the run in ``out`` (its checkpoints, metrics and curves; nothing else)."""
    shutil.rmtree(os.path.join(out, "checkpoints"), ignore_errors=True)
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, name))
