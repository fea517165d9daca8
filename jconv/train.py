"""Training: a jit-compiled, data-parallel optax SGD step and a resumable fit loop."""

from jconv._src.training.config import RECIPES as RECIPES
from jconv._src.training.config import TrainConfig as TrainConfig
from jconv._src.training.config import learning_rate as learning_rate
from jconv._src.training.config import make_optimizer as make_optimizer
from jconv._src.training.config import model_defaults as model_defaults
from jconv._src.training.config import optimizer_for as optimizer_for
from jconv._src.training.config import recipe as recipe
from jconv._src.training.errors import Preempted as Preempted
from jconv._src.training.errors import TrainingError as TrainingError
from jconv._src.training.guards import DIVERGENCE_FACTOR as DIVERGENCE_FACTOR
from jconv._src.training.loop import fit as fit
from jconv._src.training.pipeline import device_epoch_order as device_epoch_order
from jconv._src.training.pipeline import make_train_chunk as make_train_chunk
from jconv._src.training.run_dir import RunDir as RunDir
from jconv._src.training.run_dir import check_output as check_output
from jconv._src.training.sharding import batch_putter as batch_putter
from jconv._src.training.sharding import data_mesh as data_mesh
from jconv._src.training.steps import Metrics as Metrics
from jconv._src.training.steps import evaluate as evaluate
from jconv._src.training.steps import loss_and_metrics as loss_and_metrics
from jconv._src.training.steps import make_eval_step as make_eval_step
from jconv._src.training.steps import make_train_step as make_train_step

__all__ = ("DIVERGENCE_FACTOR", "Metrics", "Preempted", "RECIPES", "RunDir", "TrainConfig", "TrainingError",
           "batch_putter", "check_output", "data_mesh", "device_epoch_order", "evaluate", "fit", "learning_rate",
           "loss_and_metrics", "make_eval_step", "make_optimizer", "make_train_chunk", "make_train_step",
           "model_defaults", "optimizer_for", "recipe")
