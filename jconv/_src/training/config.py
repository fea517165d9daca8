"""What determines a run's numbers: :class:`TrainConfig`, each model's defaults, and the optimizer
built from them (optax SGD, its learning-rate schedule and weight decay)."""

from __future__ import annotations

import dataclasses
from typing import Any

import optax

COMPUTE_DTYPES = ("float32", "bfloat16")
SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("sgd", "adam")


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
    #: (linear warmup from 0 to ``lr`` over ``warmup_epochs``, then cosine decay to
    #: ``final_lr_ratio * lr`` at the last step of ``epochs``; a resumed run that changes ``epochs``
    #: changes the decay).
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    final_lr_ratio: float = 0.0
    #: ``"sgd"`` (heavy-ball ``momentum``, L2 ``weight_decay`` added to the gradient) or ``"adam"``
    #: (AdamW: ``weight_decay`` decoupled; ``momentum`` unused).
    optimizer: str = "sgd"
    #: How the caller built the model (recorded so that a resume is checked against them):
    #: its weight initialisation (None: the builder's default) and ``--resize``.
    init: str | None = None
    resize: int | None = None

    def same_run(self) -> dict[str, Any]:
        """The fields a resumed run must share with its checkpoint (all but ``epochs``)."""
        d = dataclasses.asdict(self)
        d.pop("epochs")
        return d


#: ``jconv train --recipe jconv`` (the default): each ``--model``'s training settings where they
#: differ from :class:`TrainConfig`'s, chosen by measurement on mnist5k (5 epochs, seeds 0-4;
#: ``benchmarks/zoo.py``, BENCHMARKS.md) so that the worst seed learns. ``init`` names the weight
#: initialisation of the model builder (``None``: the builder's own default).
#: Why each is what it is: the README's "Training recipes".
_BN = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128,
       "schedule": "cosine", "warmup_epochs": 1.0}
_NO_BN = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64, "schedule": "cosine",
          "warmup_epochs": 0.5}
_NO_BN_32 = {**_NO_BN, "batch_size": 32}  # more, smaller steps in 5 epochs of mnist5k
RECIPES: dict[str, dict[str, Any]] = {
    "lenet": {**_NO_BN_32, "lr": 2e-3, "weight_decay": 0.0},
    "lenet-classic": {},
    "bn-lenet": {**_NO_BN_32, "lr": 3e-3},
    "alexnet": dict(_NO_BN),
    "vgg11": dict(_NO_BN),
    "nin": {**_NO_BN_32, "final_lr_ratio": 0.1},  # still climbing at epoch 5: the lr ends at 1e-4, not 0
    "googlenet": dict(_NO_BN_32),
    "resnet18": dict(_BN),
    "resnext": dict(_BN),
    "regnet": {**_BN, "lr": 0.1, "batch_size": 64},
    "densenet": dict(_BN),
}
#: ``--recipe d2l``: the book's setting for each model (plain SGD, its learning rate and batch
#: size, Xavier initialisation, 10 epochs; d2l resizes Fashion-MNIST to 224 for AlexNet, VGG and
#: NiN and to 96 for GoogLeNet, ResNet, DenseNet and RegNet: ``--resize``).
D2L_LR = {"lenet": 0.1, "lenet-classic": 0.1, "bn-lenet": 0.1, "alexnet": 0.01, "vgg11": 0.01, "nin": 0.05,
          "googlenet": 0.01, "resnet18": 0.01, "resnext": 0.01, "regnet": 0.05, "densenet": 0.01}
D2L_RESIZE = {"alexnet": 224, "vgg11": 224, "nin": 224, "googlenet": 96, "resnet18": 96, "resnext": 96,
              "regnet": 96, "densenet": 96}
RECIPE_NAMES = ("jconv", "d2l")
#: The settings a recipe may set (the command line's flags override each).
RECIPE_FIELDS = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "schedule", "warmup_epochs",
                 "final_lr_ratio", "epochs", "init")


def recipe(model: str, name: str = "jconv") -> dict[str, Any]:
    """The training settings of ``model`` under recipe ``name`` (``"jconv"`` or ``"d2l"``): every
    field of :data:`RECIPE_FIELDS`, the recipe's entry over :class:`TrainConfig`'s defaults
    (``init``: ``"xavier"`` for d2l's, else None, the builder's default)."""
    if name not in RECIPE_NAMES:
        raise ValueError(f"recipe: `name` must be one of {RECIPE_NAMES}, got {name!r}")
    base = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in RECIPE_FIELDS}
    if name == "d2l":
        return {**base, "optimizer": "sgd", "lr": D2L_LR.get(model, 0.1), "momentum": 0.0, "weight_decay": 0.0,
                "batch_size": 128, "schedule": "constant", "warmup_epochs": 0.0, "final_lr_ratio": 0.0, "epochs": 10,
                "init": "xavier"}
    return {**base, "init": None, **RECIPES.get(model, {})}


def model_defaults(model: str) -> dict[str, Any]:
    """The :class:`TrainConfig` fields of ``model``'s default recipe (``recipe(model)`` without ``init``)."""
    return {k: v for k, v in recipe(model).items() if k != "init"}


def make_optimizer(lr: float | optax.Schedule, momentum: float = 0.0, weight_decay: float = 0.0,
                   optimizer: str = "sgd") -> optax.GradientTransformation:
    """The optimizer of a run (optax): SGD with optional heavy-ball momentum and L2 weight decay
    (added to the gradient before momentum, as PyTorch's ``SGD(weight_decay=...)``), or AdamW
    (``optimizer="adam"``; decoupled weight decay, ``momentum`` unused).

    ``lr`` is a float or an optax schedule (``step -> learning rate``, see :func:`learning_rate`).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"make_optimizer: `optimizer` must be one of {OPTIMIZERS}, got {optimizer!r}")
    if optimizer == "adam":
        return optax.adamw(lr, weight_decay=weight_decay)
    sgd = optax.sgd(lr, momentum=momentum or None)
    return optax.chain(optax.add_decayed_weights(weight_decay), sgd) if weight_decay else sgd


def learning_rate(config: TrainConfig, steps_per_epoch: int) -> float | optax.Schedule:
    """``config``'s learning rate: the float ``lr``, or its optax schedule over the run's steps."""
    if config.schedule == "constant":
        return config.lr
    total = max(config.epochs * steps_per_epoch, 1)
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    return optax.warmup_cosine_decay_schedule(0.0, config.lr, warmup, total,
                                              end_value=config.final_lr_ratio * config.lr)


def optimizer_for(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """The run's optimizer: :func:`make_optimizer` with ``config``'s optimizer, schedule, momentum and decay."""
    return make_optimizer(learning_rate(config, steps_per_epoch), config.momentum, config.weight_decay,
                          config.optimizer)
