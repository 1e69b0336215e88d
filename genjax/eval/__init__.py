"""Evaluation: held-out metrics, plots and reports. Sits on top of train/models/data."""

from genjax.eval.metrics import heldout_metrics

__all__ = ["heldout_metrics"]
