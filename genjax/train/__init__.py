"""Training: the state pytree, optimizers, the pure step and scanned epoch, early stopping,
checkpoints, the device mesh and the one host-side driver. Knows models only through the
family protocol."""

from genjax.train.checkpoint import Checkpointer, CheckpointError
from genjax.train.driver import Interrupted, RunResult, TrainingError, drive
from genjax.train.engine import EarlyStopState, TrainState, batched_mean, init_state, make_epoch, make_step
from genjax.train.loop import FitResult, Program, build_program, fit, select_params, split_data
from genjax.train.optim import make_optimizer

__all__ = [
    "Checkpointer",
    "CheckpointError",
    "EarlyStopState",
    "TrainState",
    "batched_mean",
    "init_state",
    "make_epoch",
    "make_step",
    "FitResult",
    "Program",
    "Interrupted",
    "RunResult",
    "TrainingError",
    "build_program",
    "drive",
    "fit",
    "select_params",
    "split_data",
    "make_optimizer",
]
