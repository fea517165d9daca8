"""What determines a run's numbers: :class:`TrainConfig`, each model's defaults, and the optimizer
built from them (optax SGD, its learning-rate schedule and weight decay)."""

from __future__ import annotations

import dataclasses
from typing import Any

import optax

COMPUTE_DTYPES = ("float32", "bfloat16")
SCHEDULES = ("constant", "cosine")


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
    #: The learning rate over the run: ``"constant"`` (``lr`` at every step) or ``"cosine"``
    #: (linear warmup from 0 to ``lr`` over ``warmup_epochs``, then cosine decay to 0 at the
    #: last step of ``epochs``; a resumed run that changes ``epochs`` changes the decay).
    schedule: str = "constant"
    warmup_epochs: float = 0.0

    def same_run(self) -> dict[str, Any]:
        """The fields a resumed run must share with its checkpoint (all but ``epochs``)."""
        d = dataclasses.asdict(self)
        d.pop("epochs")
        return d


#: Each ``--model``'s training defaults where they differ from :class:`TrainConfig`'s; the
#: command line reads them through :func:`model_defaults`.
#: d2l trains the modern CNNs for 10 epochs on 60,000 images with plain SGD (lr 0.01-0.1, batch
#: 128-256): 2,300-4,700 steps. mnist5k gives 32 steps of 128 per epoch; with d2l's recipe,
#: ResNet-18 reached 0.945-0.957 after 3 epochs and GoogLeNet stayed on the ln(10) plateau, so
#: jconv's defaults for the modern CNNs are SGD with momentum 0.9, lr 0.01, batch 128.
_MODERN = {"lr": 0.01, "batch_size": 128, "momentum": 0.9}
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    name: dict(_MODERN) for name in ("alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet")
}


def model_defaults(model: str) -> dict[str, Any]:
    """The training settings of ``model`` (:class:`TrainConfig` fields), its table entry over
    :class:`TrainConfig`'s defaults."""
    base = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name not in ("model", "dataset")}
    return {**base, **MODEL_DEFAULTS.get(model, {})}


def make_optimizer(lr: float | optax.Schedule, momentum: float = 0.0,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
    """SGD (optax), with optional heavy-ball momentum and L2 weight decay.

    ``lr`` is a float or an optax schedule (``step -> learning rate``, see :func:`learning_rate`).
    Weight decay adds ``weight_decay * params`` to the gradient before momentum (PyTorch's
    ``SGD(weight_decay=...)``).
    """
    sgd = optax.sgd(lr, momentum=momentum or None)
    return optax.chain(optax.add_decayed_weights(weight_decay), sgd) if weight_decay else sgd


def learning_rate(config: TrainConfig, steps_per_epoch: int) -> float | optax.Schedule:
    """``config``'s learning rate: the float ``lr``, or its optax schedule over the run's steps."""
    if config.schedule == "constant":
        return config.lr
    total = max(config.epochs * steps_per_epoch, 1)
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    return optax.warmup_cosine_decay_schedule(0.0, config.lr, warmup, total, end_value=0.0)


def optimizer_for(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """The run's optimizer: :func:`make_optimizer` with ``config``'s schedule, momentum and decay."""
    return make_optimizer(learning_rate(config, steps_per_epoch), config.momentum, config.weight_decay)
