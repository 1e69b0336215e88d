"""Data: sources, transforms, splits and device-resident pre-batched epochs.

Imports nothing from models, train or eval.
"""

from genjax.data.batching import epoch_batches, eval_batches
from genjax.data.pipeline import DataSplits, load_splits
from genjax.data.sources import DataError, from_arrays, load_source
from genjax.data.splits import fold_indices, kfold_assign
from genjax.data.toy2d import TOY2D, toy2d_log_prob, toy2d_sample

__all__ = [
    "DataError",
    "DataSplits",
    "epoch_batches",
    "eval_batches",
    "fold_indices",
    "from_arrays",
    "kfold_assign",
    "load_source",
    "load_splits",
    "TOY2D",
    "toy2d_log_prob",
    "toy2d_sample",
]
