"""genjax: deep generative models in JAX (unrelated to the probabilistic-programming package
of the same name on PyPI)."""

__version__ = "0.1.0"
