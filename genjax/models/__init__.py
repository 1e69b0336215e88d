"""Model families: each binds nn modules to objectives and exposes the family protocol.

``FAMILIES`` is the registry: a family's maker, its config block (``model.<name>``) and, for run
folders saved before that block existed, where its fields used to live. Adding a family means a
module in this package and one entry here; nothing outside ``genjax/models/`` changes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

from genjax.fields import check_block, defaults
from genjax.models import autoregressive, consistency, diffusion, edm, flow, flow_matching, gan, predictor, vae, vqvae
from genjax.models.base import Codes, Context, Curves, DataInfo, Family, Latent, Player, Predictor


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    make: Callable[..., Family]  # (its config block, DataInfo) -> Family
    fields: dict  # the block model.<name>: {field: genjax.fields.Field}, its defaults and rules
    # field -> "section.field" in flat configs saved before the block existed (a field mapped to
    # None came later: it takes its default); legacy None: the family came after the blocks, so a
    # flat config holds none of its fields (its block takes defaults)
    legacy: dict | None

    def default_config(self):
        """The block ``model.<name>`` at its declared defaults."""
        return defaults(self.fields)


FAMILIES = {
    "vae": FamilySpec(vae.make_vae, vae.FIELDS, vae.LEGACY),
    "flow": FamilySpec(flow.make_flow, flow.FIELDS, flow.LEGACY),
    "gan": FamilySpec(gan.make_gan, gan.FIELDS, gan.LEGACY),
    "diffusion": FamilySpec(diffusion.make_diffusion, diffusion.FIELDS, diffusion.LEGACY),
    "consistency": FamilySpec(consistency.make_consistency, consistency.FIELDS, None),
    "edm": FamilySpec(edm.make_edm, edm.FIELDS, None),
    "flow_matching": FamilySpec(flow_matching.make_flow_matching, flow_matching.FIELDS, None),
    "vqvae": FamilySpec(vqvae.make_vqvae, vqvae.FIELDS, None),
    "autoregressive": FamilySpec(autoregressive.make_autoregressive, autoregressive.FIELDS, autoregressive.LEGACY),
    "predictor": FamilySpec(predictor.make_predictor, predictor.FIELDS, predictor.LEGACY),
}


def family_config(cfg):
    """The config block of ``cfg.model.family``."""
    name = cfg.model.family
    if name not in FAMILIES:
        raise ValueError(f"model.family must be one of {sorted(FAMILIES)}, got {name!r}.")
    return cfg.model[name]


def build_family(cfg, data) -> Family:
    """The family named by ``cfg.model.family``, built from its block ``model.<family>`` for
    ``data``: a ``DataInfo`` (``DataInfo.of(splits)``) or just a per-example shape."""
    if not isinstance(data, DataInfo):
        data = DataInfo(tuple(int(s) for s in data))
    block = family_config(cfg)
    spec = FAMILIES[cfg.model.family]
    check_block(block, spec.fields, f"model.{cfg.model.family}.")  # each field's type and range
    family = spec.make(block, data)
    # what the family was made from, for the traced-program cache (genjax.train.programs): a
    # family made otherwise, or changed after (dataclasses.replace), carries none and is traced
    object.__setattr__(family, "origin", origin_of(cfg.model.family, block, data))
    if data.vocab and not family.tokens:
        raise ValueError(
            f"model.family={cfg.model.family!r} does not model token sequences (data.name={cfg.data.name!r} is "
            "text); use a family that does, e.g. model.family='autoregressive'."
        )
    return family


def origin_of(name: str, block, data: DataInfo) -> str:
    """A digest of what ``build_family`` makes a family from: its name, its config block and the
    ``DataInfo``."""
    from genjax.train.programs import digest

    return digest(name, json.loads(block.to_json_best_effort(sort_keys=True)), dataclasses.asdict(data))


def upgrade_legacy(saved: dict) -> dict:
    """A config dict saved before families had their own blocks (flat ``model``/``objective``
    fields), rewritten in place into the block layout: each family's field takes the old value
    from its legacy location, else from ``model.<field>`` or ``objective.<field>``."""
    model = saved.get("model", {})
    if not isinstance(model, dict) or isinstance(model.get(model.get("family", "vae")), dict):
        return saved
    old = {"model": dict(model), "objective": dict(saved.get("objective", {}))}
    old |= {s: saved.get(s, {}) for s in ("eval", "train", "optim")}
    new_model = {"family": model.get("family", "vae")}
    for name, spec in FAMILIES.items():
        block = {}
        if spec.legacy is None:
            new_model[name] = block
            continue
        for field in spec.default_config():
            where = spec.legacy.get(field)
            if field in spec.legacy and where is None:  # added after the flat layout: its default
                continue
            candidates = [where] if where else [f"model.{field}", f"objective.{field}"]
            for c in candidates:
                section, _, f = c.partition(".")
                if f in old.get(section, {}):
                    block[field] = old[section][f]
                    break
        new_model[name] = block
    saved["model"] = new_model
    saved["objective"] = {k: v for k, v in old["objective"].items() if k in ("l1", "l2")}
    return saved


__all__ = [
    "FAMILIES",
    "Codes",
    "Context",
    "Curves",
    "DataInfo",
    "Family",
    "FamilySpec",
    "Latent",
    "Player",
    "Predictor",
    "build_family",
    "family_config",
    "upgrade_legacy",
]
