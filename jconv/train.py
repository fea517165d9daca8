"""Training: a jit-compiled, data-parallel optax SGD step and a resumable fit loop."""

from jconv._src.training.loop import DIVERGENCE_FACTOR as DIVERGENCE_FACTOR
from jconv._src.training.loop import Metrics as Metrics
from jconv._src.training.loop import Preempted as Preempted
from jconv._src.training.loop import TrainConfig as TrainConfig
from jconv._src.training.loop import TrainingError as TrainingError
from jconv._src.training.loop import batch_putter as batch_putter
from jconv._src.training.loop import check_output as check_output
from jconv._src.training.loop import data_mesh as data_mesh
from jconv._src.training.loop import device_epoch_order as device_epoch_order
from jconv._src.training.loop import evaluate as evaluate
from jconv._src.training.loop import fit as fit
from jconv._src.training.loop import loss_and_metrics as loss_and_metrics
from jconv._src.training.loop import make_eval_step as make_eval_step
from jconv._src.training.loop import make_optimizer as make_optimizer
from jconv._src.training.loop import make_train_chunk as make_train_chunk
from jconv._src.training.loop import make_train_step as make_train_step

__all__ = ("DIVERGENCE_FACTOR", "Metrics", "Preempted", "TrainConfig", "TrainingError", "batch_putter",
           "check_output", "data_mesh", "device_epoch_order", "evaluate", "fit", "loss_and_metrics",
           "make_eval_step", "make_optimizer", "make_train_chunk", "make_train_step")
