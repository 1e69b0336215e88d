"""Model families: each binds nn modules to objectives and exposes the family protocol."""

from genjax.models.base import Context, Family, Player
from genjax.models.flow import make_flow
from genjax.models.gan import make_gan
from genjax.models.vae import make_vae

_FAMILIES = {"vae": make_vae, "flow": make_flow, "gan": make_gan}


def build_family(cfg, data_shape) -> Family:
    """The family named by ``cfg.model.family`` for data of shape ``data_shape`` (H, W, C)."""
    try:
        make = _FAMILIES[cfg.model.family]
    except KeyError:
        raise ValueError(f"model.family must be one of {sorted(_FAMILIES)}, got {cfg.model.family!r}.") from None
    return make(cfg, data_shape)


__all__ = ["Context", "Family", "Player", "build_family"]
