"""Pure objective functions: arrays (and keys) in, per-example terms out.

Nothing here imports Flax, a config or any other part of genjax.
"""
