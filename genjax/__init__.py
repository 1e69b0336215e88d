"""genjax: deep generative models in JAX (unrelated to the probabilistic-programming package
of the same name on PyPI). The public Python API is ``genjax.api`` (re-exported here)."""

__version__ = "0.1.0"

from genjax.api import Model, default_config, enable_compilation_cache, evaluate, fit, load_data  # noqa: E402

enable_compilation_cache()

__all__ = ["Model", "default_config", "enable_compilation_cache", "evaluate", "fit", "load_data"]
