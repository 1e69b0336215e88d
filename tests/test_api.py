"""The Python API: the README's notebook session, run as written."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_notebook_session_runs(monkeypatch):
    monkeypatch.setenv("GENJAX_CACHE_DIR", "0")
    block = re.search(r"<!-- api-session -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README has no API session"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 12
    ns: dict = {}
    exec(code.replace("epochs = 100", "epochs = 3"), ns)  # noqa: S102 - the README's own code, shortened
    x, m = ns["x"], ns["metrics"]
    assert x.shape == (16, 8, 8, 1) and set(np.unique(np.asarray(x))) <= {0.0, 1.0}
    assert np.isfinite(m["nll"]) and m["nll"] < 64 * np.log(2)  # better than a coin per pixel
    assert m["elbo"] <= -m["nll"] + 1.0  # the bound sits below the estimate (up to sampling noise)


def test_load_data_from_arrays_checks_them():
    import pytest

    import genjax
    from genjax.data import DataError

    cfg = genjax.default_config()
    rng = np.random.default_rng(0)
    d = genjax.load_data(cfg, x=rng.integers(0, 256, (500, 4, 4), dtype=np.uint8), y=rng.integers(0, 3, 500))
    assert d.shape == (4, 4, 1) and d.levels == 256 and len(d.train["x"]) + len(d.val["x"]) + len(d.test["x"]) == 500
    v = genjax.load_data(cfg, x=rng.normal(size=(300, 2)).astype(np.float32))
    assert v.shape == (2,)
    with pytest.raises(DataError, match="non-finite"):
        genjax.load_data(cfg, x=np.full((300, 2), np.nan, np.float32))


def readme_block(tag: str, **shorten) -> str:
    """The README's ``<!-- tag -->`` Python block, with ``old=new`` replacements (fewer epochs)."""
    block = re.search(rf"<!-- {tag} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert block, f"README has no {tag} block"
    code = block.group(1)
    for old, new in shorten.items():
        assert old in code, f"{tag}: {old!r} is no longer in the README block"
        code = code.replace(old, new)
    return code


def run_block(tag, tmp_path, monkeypatch, **shorten) -> dict:
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(readme_block(tag, **shorten), ns)  # noqa: S102 - the README's own code, shortened
    return ns


def test_readme_save_and_load(tmp_path, monkeypatch):
    import genjax

    small = "epochs = 1\ncfg.model.flow.hidden = (32, 32)\ncfg.model.flow.n_layers = 2\ncfg.data.toy_n = 2000"
    ns = run_block("api-save-load", tmp_path, monkeypatch, **{"epochs = 20": small})
    model, same, x = ns["model"], ns["same"], ns["x"]
    np.testing.assert_array_equal(np.asarray(model.log_prob(x)), np.asarray(same.log_prob(x)))
    assert (tmp_path / "runs/moons/config.json").is_file() and (tmp_path / "runs/moons-copy/config.json").is_file()
    copy = genjax.load(tmp_path / "runs/moons-copy")
    np.testing.assert_array_equal(np.asarray(copy.log_prob(x)), np.asarray(model.log_prob(x)))
    import pytest

    from genjax.run.folder import RunFolderError

    # a folder holding a run is never written over silently
    with pytest.raises(RunFolderError, match="^workdir .* already holds a run; pass overwrite=True"):
        genjax.fit(ns["cfg"], ns["data"], workdir=tmp_path / "runs/moons", progress=False)


def test_readme_cross_validation(tmp_path, monkeypatch):
    small = "epochs = 2\ncfg.model.vae.nll_samples = 100\ncfg.model.vae.hidden = (32,)"
    ns = run_block("api-cv", tmp_path, monkeypatch, **{"epochs = 30": small,
                                                        "folds=5": "folds=3"})
    rep = ns["report"]
    assert [r["optim.lr"] for r in rep["rows"]] == [1e-3, 3e-3]
    for r in rep["rows"]:
        assert len(r["per_fold"]) == 3 and np.isclose(r["heldout_nll_mean"], np.mean(r["per_fold"]), rtol=1e-6)
    best = min(rep["rows"], key=lambda r: r["heldout_nll_mean"])
    assert rep["best"]["optim.lr"] == best["optim.lr"] and "lead" in rep["best"]


def test_readme_gan_evaluation(tmp_path, monkeypatch, capsys):
    ns = run_block("api-gan", tmp_path, monkeypatch, **{"epochs = 50": "epochs = 2"})
    s = ns["s"]
    assert "nll" not in ns["m"]  # no likelihood: nothing pretends to be one
    for k in ("fid_digits_classifier", "kid_digits_classifier", "is_digits_classifier", "precision", "recall"):
        assert np.isfinite(s["model"][k]) and np.isfinite(s["real_vs_real"][k])
    assert s["real_vs_real"]["fid_digits_classifier"] < s["model"]["fid_digits_classifier"]  # 2 epochs: far off
    out = capsys.readouterr().out
    assert "lower is better" in out and "fid_digits_classifier" in out


def test_readme_text_generation_from_a_prompt(tmp_path, monkeypatch):
    ns = run_block("api-text", tmp_path, monkeypatch, **{"epochs = 20": "epochs = 1"})
    model = ns["model"]
    texts = model.sample_text(4, prompt="The model ", temperature=0.8, top_k=10)
    block = model.cfg.data.block_size
    assert len(texts) == 4 and all(t.startswith("The model ") and len(t) == block for t in texts)
    assert set("".join(texts)) <= set(ns["text"])  # decoded through the corpus's own vocabulary
    ids = np.asarray(model.sample(4, prompt="The model ", top_k=1))
    assert (ids == ids[0]).all()  # top_k = 1 is greedy: every sample the same


def test_on_epoch_sees_every_epochs_metrics_as_metrics_jsonl_has_them(tmp_path):
    import json

    import genjax

    cfg = genjax.default_config("flow")
    cfg.data.name, cfg.data.toy_n = "toy2d:moons", 1000
    cfg.model.flow.hidden, cfg.model.flow.n_layers = (16,), 2
    cfg.train.epochs = 3
    seen = []
    genjax.fit(cfg, workdir=tmp_path / "run", progress=False, on_epoch=lambda e, m: seen.append((e, m)))
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [e for e, _ in seen] == [1, 2, 3] == [r["epoch"] for r in rows]
    for (_, m), r in zip(seen, rows):
        assert m["val_nll"] == r["val_nll"] and m["loss"] == r["loss"] and m["stopped"] is False


def test_a_run_on_arrays_in_memory_asks_for_them_when_loaded(tmp_path):
    """fit's folder and Model.save's copy both record that the data came from memory, so load
    asks for them rather than loading cfg.data.name (other data) in their place."""
    import pytest

    import genjax
    from genjax.run.prepare import UsageError

    cfg = genjax.default_config("flow")
    cfg.model.flow.hidden, cfg.model.flow.n_layers = (16,), 2
    cfg.train.epochs = 1
    data = genjax.load_data(cfg, x=np.random.default_rng(0).normal(size=(400, 2)).astype(np.float32))
    model = genjax.fit(cfg, data, workdir=tmp_path / "run", progress=False)
    model.save(tmp_path / "copy")
    for d in ("run", "copy"):
        with pytest.raises(UsageError, match="data in memory"):
            genjax.load(tmp_path / d)
        again = genjax.load(tmp_path / d, data=data)
        x = data.test["x"][:4]
        np.testing.assert_array_equal(np.asarray(again.log_prob(x)), np.asarray(model.log_prob(x)))
