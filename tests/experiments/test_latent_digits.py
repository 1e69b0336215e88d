"""experiments/latent_digits end to end on smoke settings: a two-stage model and a one-stage one
trained, scored and reported; and the shipped config's two stages through the command line."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from genjax.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]


def _study():
    spec = importlib.util.spec_from_file_location("latent_digits_main", ROOT / "experiments/latent_digits/main.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_study_runs_and_reports(tmp_path):
    out = tmp_path / "out"
    res = _study().main(["--smoke", "--models", "VQ-VAE + transformer prior,MADE (one stage)", "--out", str(out),
                         "--workdir", str(tmp_path / "work")])  # fmt: skip
    assert set(res) == {"VQ-VAE + transformer prior", "MADE (one stage)"}
    two = res["VQ-VAE + transformer prior"]
    assert np.isfinite(two["test_nll_nats"]) and "two-stage bound" in two["nll_kind"] and len(two["epochs"]) == 2
    assert two["codes_nll"] is not None and res["MADE (one stage)"]["codes_nll"] is None
    report = (out / "report.md").read_text()
    assert "| VQ-VAE + transformer prior |" in report and (out / "samples.png").is_file()
    assert json.loads((out / "results.json").read_text()).keys() == res.keys()


def test_the_shipped_two_stage_config_trains_through_the_cli(tmp_path, capsys):
    cfg = "--config=experiments/latent_digits/config.py"
    first, second = tmp_path / "vq", tmp_path / "prior"
    assert cli(["genjax", "train", f"{cfg}:vq:smoke", "--noprogress", f"--workdir={first}"]) == 0
    assert cli(["genjax", "train", f"{cfg}:transformer:smoke", "--noprogress", f"--config.data.name=latents:{first}",
                f"--workdir={second}"]) == 0  # fmt: skip
    ev = json.loads((second / "eval.json").read_text())
    assert ev["two_stage"]["first_stage_family"] == "vqvae" and ev["nll_unit"].startswith("nats per code grid (4x4")
    assert (first / "reconstructions.png").is_file() and (first / "codes.png").is_file()
