"""The family protocol as the only door: configs saved in the old flat layout load into the
family blocks, and nothing outside genjax/models/ names a family or reads a side channel."""

import json
import re
from pathlib import Path

from experiments.flow_toy2d.config import get_config as flow_config
from experiments.gan_mixtures.config import get_config as gan_config
from experiments.vae_digits.config import get_config as vae_config
from genjax.config import base_config, validate
from genjax.models import FAMILIES, upgrade_legacy

ROOT = Path(__file__).resolve().parents[2]
LEGACY = json.loads((ROOT / "tests/fixtures/legacy_configs.json").read_text())  # saved by genjax 8109792


def test_old_flat_configs_map_onto_the_family_blocks():
    """Every field of the family block equals the value the same experiment sets today."""
    for key, new in (
        ("vae_digits_smoke", vae_config("smoke")),
        ("gan_mixtures_wgan_gp_ring", gan_config("wgan_gp,ring")),
        ("flow_spline_8gaussians", flow_config("spline,8gaussians")),
    ):
        up = upgrade_legacy(json.loads(json.dumps(LEGACY[key])))
        fam = new.model.family
        assert up["model"]["family"] == fam
        want = json.loads(new.to_json_best_effort())["model"][fam]
        # fields added to the block after the flat layout are absent and take their defaults
        later = {k for k in want if k not in up["model"][fam]}
        added = {k for k, v in FAMILIES[fam].legacy.items() if v is None}  # declared as added later
        assert later <= {"pack"} | added, (key, later)
        defaults = json.loads(FAMILIES[fam].default_config().to_json_best_effort())
        assert all(want[k] == defaults[k] for k in later), key
        assert up["model"][fam] == {k: v for k, v in want.items() if k not in later}, key
        assert up["objective"] == {"l1": 0.0, "l2": 0.0}
        # the other families' blocks: only the fields those families had then (none for a family
        # added after the blocks), so the loaded config still passes validation
        loaded = base_config()
        loaded.model.family = fam
        assert all(not up["model"][f] for f, spec in FAMILIES.items() if spec.legacy is None), key
        for f, b in up["model"].items():
            if isinstance(b, dict):
                for k, v in b.items():
                    loaded.model[f][k] = tuple(v) if isinstance(v, list) else v
        validate(loaded, ignore_inactive=True)  # as a saved run's config is validated
    # already in the block layout: unchanged
    cur = json.loads(vae_config("smoke").to_json_best_effort())
    assert upgrade_legacy(json.loads(json.dumps(cur))) == cur


def test_a_breaking_legacy_map_is_noticed():
    """The GAN's objective lived in objective.name: without its legacy entry it would take the
    default instead of 'wgan'."""
    up = upgrade_legacy(json.loads(json.dumps(LEGACY["gan_mixtures_wgan_gp_ring"])))
    assert up["model"]["gan"]["objective"] == "wgan" != FAMILIES["gan"].default_config().objective
    assert up["model"]["gan"]["disc_lr"] == 0.0 and up["model"]["gan"]["n_critic"] == 5
    assert up["model"]["flow"]["kind"] == "realnvp"  # the old model.flow string


def test_nothing_outside_models_names_a_family_or_reads_extras():
    pattern = re.compile(r"\.extras\b|extras\[|family\.name\s*==|fam\.name\s*==|\"(rec|kl|gen/loss|disc/loss)\"")
    hits = []
    for folder in ("genjax", "experiments", "benchmarks"):
        for p in (ROOT / folder).rglob("*.py"):
            if p.is_relative_to(ROOT / "genjax/models"):
                continue
            for i, line in enumerate(p.read_text().splitlines(), 1):
                if pattern.search(line):
                    hits.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_train_code_does_not_import_nn():
    for p in (ROOT / "genjax/train").rglob("*.py"):
        assert not re.search(r"^(from|import) genjax\.nn\b", p.read_text(), re.M), p
