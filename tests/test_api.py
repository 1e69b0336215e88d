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
