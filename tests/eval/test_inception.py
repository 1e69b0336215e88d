"""genjax's port of the FID Inception against pytorch-fid's own network: the same weights (drawn
from a seed in the published key layout) and images, outputs computed once by the reference
implementation (tools/make_inception_fixture.py, tests/fixtures/inception_reference.npz)."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from genjax.eval import inception as inc
from genjax.eval import sample_quality as sq

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "inception_reference.npz"


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURE) as f:
        ref = {k: f[k] for k in f.files}
    w = inc.synthetic_weights(int(ref["seed"]))
    return ref, w


@pytest.mark.parametrize("name", ["x8_1", "x28_1", "x32_3", "x299_3"])
def test_the_port_matches_pytorch_fid(reference, name, tmp_path):
    ref, w = reference
    path = tmp_path / "w.npz"
    np.savez(path, **w)
    net = inc.InceptionFeatures(path)  # loaded as a user's converted file is
    x01 = ref[name].astype(np.float32) / 255.0
    pool, logits = (np.asarray(a) for a in net._run(x01))
    want_pool, want_logits = ref[name + "_pool3"], ref[name + "_logits"]
    assert np.abs(want_pool).max() > 0.1  # the synthetic network is alive, not all zeros
    np.testing.assert_allclose(pool, want_pool, rtol=1e-5, atol=1e-5 * np.abs(want_pool).max())
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5 * np.abs(want_logits).max())
    # the probabilities are the softmax of those logits; 8-bit quantization makes a sub-level change invisible
    p = net.probs(x01)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(net.features(np.clip(x01 + 0.4 / 255, 0, 1)), pool, rtol=1e-6, atol=1e-6)


def test_the_port_fails_the_fixture_when_a_block_is_changed(reference):
    """The fixture tells the TF-style pools from torchvision's: counting the padding in the average
    pools (torchvision's InceptionA/C/E) moves the features."""
    ref, w = reference
    wj = {k: jnp.asarray(v) for k, v in w.items()}
    x = inc.preprocess(ref["x32_3"].astype(np.float32) / 255.0)
    orig = inc._avg_pool_exclude_pad
    try:
        inc._avg_pool_exclude_pad = lambda h: inc.jax.lax.reduce_window(
            h, 0.0, inc.jax.lax.add, (1, 1, 3, 3), (1, 1, 1, 1), [(0, 0), (0, 0), (1, 1), (1, 1)]) / 9.0
        bad = np.asarray(inc.forward(wj, x)[0])
    finally:
        inc._avg_pool_exclude_pad = orig
    want = ref["x32_3_pool3"]  # the unchanged port matches it to 1e-5 (test_the_port_matches_pytorch_fid)
    assert np.abs(bad - want).max() > 1e-2 * np.abs(want).max()


def test_weights_files_are_checked(tmp_path):
    w = inc.synthetic_weights(0)
    bad = dict(w)
    del bad["Mixed_7c.branch_pool.conv.weight"]
    np.savez(tmp_path / "missing.npz", **bad)
    with pytest.raises(ValueError, match="lacks 1 Inception weights"):
        inc.load_weights(tmp_path / "missing.npz")
    bad = dict(w, **{"fc.bias": np.zeros(10, np.float32)})
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(ValueError, match=r"fc.bias of shape \(10,\)"):
        inc.load_weights(tmp_path / "shape.npz")
    with pytest.raises(ValueError, match="no Inception weights file"):
        inc.load_weights(tmp_path / "none.npz")


def test_reference_statistics_round_trip_in_the_pytorch_fid_format(tmp_path):
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(300, 5)), rng.normal(loc=0.3, size=(200, 5))
    inc.save_stats(tmp_path / "ref.npz", f1)
    with np.load(tmp_path / "ref.npz") as f:
        assert sorted(f.files) == ["mu", "sigma"]
    mu, sigma = inc.load_stats(tmp_path / "ref.npz")
    np.testing.assert_allclose(sigma, np.cov(f1, rowvar=False, ddof=1))
    np.testing.assert_allclose(sq.frechet_distance(mu, sigma, f2.mean(0), np.cov(f2, rowvar=False)),
                               sq.fid_from_features(f1, f2), rtol=1e-10)  # fmt: skip
    np.savez(tmp_path / "bad.npz", mu=np.zeros(3))
    with pytest.raises(ValueError, match="'mu' and 'sigma'"):
        inc.load_stats(tmp_path / "bad.npz")


def test_genjax_eval_with_inception_features_writes_the_protocol_and_statistics(tmp_path, capsys, smoke_cfg):
    """eval.features='inception:<npz>' from the command line: FID / KID / IS named after the
    network, the protocol and the test split's statistics in eval.json / fid_stats_test.npz, FID
    against given statistics (the test split's own: the same figure), two sample sets; bad values
    refused in one sentence before anything is written."""
    import json

    from genjax.cli import main

    weights = tmp_path / "inception.npz"
    np.savez(weights, **inc.synthetic_weights(1))
    run = tmp_path / "run"
    assert main(["genjax", "train", "--config=experiments/vae_digits/config.py:smoke", "--noprogress",
                 "--config.train.epochs=1", f"--workdir={run}"]) == 0  # fmt: skip
    ev = ["genjax", "eval", str(run), f"--config.eval.features=inception:{weights}", "--config.eval.max_samples=12",
          "--config.eval.sample_metrics=True", "--config.eval.fid_seeds=2"]  # fmt: skip
    assert main(ev) == 0
    m = json.loads((run / "eval.json").read_text())["samples"]
    pr = m["protocol"]
    assert {"fid_inception", "kid_inception", "is_inception"} <= set(m["model"]) and m["n"] == 12
    assert len(pr["fid_per_seed"]) == 2 and pr["fid_per_seed"][0] == m["model"]["fid_inception"]
    assert pr["weights_sha256"] == inc.InceptionFeatures(weights).sha256 and "299x299" in pr["preprocessing"]
    out = capsys.readouterr().out
    assert "FID over 2 sample set(s) of 12" in out
    # the statistics written are those of the test images' features
    from genjax.api import load

    model = load(run)
    test01 = model.data.to_unit(model.data.test["x"][:12])
    f = inc.InceptionFeatures(weights).features(test01)
    mu, sigma = inc.load_stats(run / "fid_stats_test.npz")
    np.testing.assert_allclose(mu, f.mean(0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(sigma, np.cov(f, rowvar=False), rtol=1e-6, atol=1e-8)
    # scored against those statistics, FID is the figure against the test split
    stats = tmp_path / "stats.npz"
    stats.write_bytes((run / "fid_stats_test.npz").read_bytes())
    assert main(ev[:-1] + [f"--config.eval.fid_stats={stats}"]) == 0
    pr = json.loads((run / "eval.json").read_text())["samples"]["protocol"]
    np.testing.assert_allclose(pr["fid_vs_stats"], pr["fid_per_seed"][0], rtol=1e-6)
    before = (run / "eval.json").read_text()
    for bad, why in (("--config.eval.features=inception", "must be 'classifier' or 'inception:<weights .npz>'"),
                     (f"--config.eval.features=inception:{tmp_path}/none.npz", "no such file"),
                     (f"--config.eval.fid_stats={stats}", "needs eval.features='inception")):  # fmt: skip
        capsys.readouterr()
        assert main(["genjax", "eval", str(run), bad]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err, err
    assert (run / "eval.json").read_text() == before
