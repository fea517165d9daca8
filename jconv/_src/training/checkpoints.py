"""Checkpoints of a run: orbax-checkpoint's manager over ``DIR/checkpoints``, what a checkpoint
holds, and how a run is restored from one."""

from __future__ import annotations

import os
from typing import Any, Callable

from jconv._src.nn.base import Layer
from jconv._src.training.config import TrainConfig
from jconv._src.training.errors import TrainingError
from jconv._src.training.run_dir import plural


class Checkpoints:
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


def trained(params: Any, opt_state: Any, model_state: Any, model: Layer) -> dict[str, Any]:
    """What a checkpoint holds: parameters, optimizer state and, with BatchNorm, the model state."""
    out = {"params": params, "opt_state": opt_state}
    if model.has_state:
        out["model_state"] = model_state
    return out


def metadata(config: TrainConfig, steps_per_epoch: int, epochs_done: int, done: int, history: list[dict],
             partial: dict[str, Any] | None, first_loss: float | None) -> dict[str, Any]:
    """A checkpoint's metadata: after ``done`` steps, ``epochs_done`` whole epochs (and ``partial``,
    the position and metrics inside the next one, at a preemption)."""
    return {"epoch": epochs_done, "global_step": done, "steps_per_epoch": steps_per_epoch,
            "history": history, "config": config.same_run(), "partial": partial, "first_loss": first_loss}


def position(meta: dict[str, Any]) -> str:
    partial = meta.get("partial")
    if partial:
        return f"epoch {partial['epoch']}, step {partial['step']} of {meta['steps_per_epoch']}"
    return f"end of epoch {meta['epoch']}"


def restore(ckpt: Checkpoints, abstract_state: dict[str, Any], config: TrainConfig, out: str,
            say: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The newest usable checkpoint's ``(state, metadata)`` for a run with ``config``, or None
    (no checkpoint: a fresh start). Says where it resumed from.

    Raises:
      TrainingError: the checkpoint was written with other settings (only ``epochs`` may change),
        or has trained more epochs than ``config.epochs``.
    """
    restored = ckpt.restore_newest(abstract_state, say)
    if restored is None:
        say(f"no checkpoint in {ckpt.directory}; starting from scratch")
        return None
    state, meta = restored
    saved = {**TrainConfig().same_run(), **meta["config"]}  # fields added later: their defaults
    if saved != config.same_run():
        diff = {k: v for k, v in saved.items() if config.same_run().get(k) != v}
        raise TrainingError(
            f"checkpoint {ckpt.directory}/{meta['global_step']} was written with "
            f"{diff}; resume with the same flags (only --epochs may change)"
        )
    done = len(meta["history"])
    if done > config.epochs:
        raise TrainingError(
            f"the run in {out} has already trained {plural(done, 'epoch')}; nothing to "
            f"do for --epochs {config.epochs} (a run cannot go back; give --epochs "
            f"{done + 1} or more to continue it)"
        )
    say(f"resumed from {ckpt.directory}/{meta['global_step']} ({position(meta)})")
    if done == config.epochs:
        say(f"already trained {plural(done, 'epoch')}; nothing to do")
    return state, meta
