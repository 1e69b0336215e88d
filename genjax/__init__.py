"""genjax: deep generative models in JAX (unrelated to the probabilistic-programming package
of the same name on PyPI). The public Python API is ``genjax.api`` (re-exported here)."""

__version__ = "0.1.0"

from genjax.api import (  # noqa: E402
    Model,
    cross_validate,
    default_config,
    enable_compilation_cache,
    evaluate,
    fit,
    load,
    load_data,
)
from genjax.eval.report import summary  # noqa: E402
from genjax.keys import threefry_on_cpu  # noqa: E402
from genjax.sweep import sweep_table  # noqa: E402

enable_compilation_cache()
threefry_on_cpu()

__all__ = ["Model", "cross_validate", "default_config", "enable_compilation_cache", "evaluate", "fit", "load",
           "load_data", "summary", "sweep_table"]  # fmt: skip
