"""The errors a training run stops with: one-line messages for the command line."""

from __future__ import annotations


class TrainingError(Exception):
    """Training cannot go on (non-finite loss, unusable checkpoints, bad flags); one-line message."""


class Preempted(TrainingError):
    """The run stopped at a preemption signal after committing a checkpoint (or without one)."""

    def __init__(self, message: str, epoch: int, step: int, directory: str | None):
        super().__init__(message)
        self.epoch, self.step, self.directory = epoch, step, directory
