"""The command line end to end, in-process (one JAX import)."""

import json
from pathlib import Path

import numpy as np
import pytest

from genjax.cli import main

SMOKE = "experiments/vae_digits/config.py:smoke"


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setenv("GENJAX_CACHE_DIR", "0")


def test_train_eval_sample(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["genjax", "train", f"--config={SMOKE}", f"--workdir={run}", "--noprogress"]) == 0
    out = capsys.readouterr().out
    assert "held-out test NLL" in out and str(run) in out
    for f in (
        "config.json",
        "run.json",
        "metrics.jsonl",
        "eval.json",
        "samples.png",
        "reconstructions.png",
        "interpolation.png",
        "curves.png",
    ):
        assert (run / f).is_file(), f
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    ev = json.loads((run / "eval.json").read_text())
    assert (
        np.isfinite(ev["nll"]) and ev["n"] == 359 and ev["bits_per_dim"] == pytest.approx(ev["nll"] / (64 * np.log(2)))
    )
    # a run saved before a config field existed still evaluates (the field takes its default)
    saved = json.loads((run / "config.json").read_text())
    saved["model"]["vae"].pop("cycle_ratio"), saved["eval"].pop("max_samples")
    (run / "config.json").write_text(json.dumps(saved))
    # eval recomputes the same figures from the checkpoint
    assert main(["genjax", "eval", str(run)]) == 0
    assert json.loads((run / "eval.json").read_text())["nll"] == pytest.approx(ev["nll"], rel=1e-6)
    assert main(["genjax", "sample", str(run), "--n=9", "--seed=3"]) == 0
    assert (run / "samples-seed3.png").is_file() and np.load(run / "samples-seed3.npy").shape == (9, 8, 8, 1)
    # an easy-first curriculum ranked by this run's NLL on the next run's training examples
    run2 = tmp_path / "easy"
    argv = ["genjax", "train", f"--config={SMOKE}", f"--workdir={run2}", "--noprogress", "--noplots"]
    assert main([*argv, f"--config.train.easy_first=run:{run}", "--config.train.epochs=1"]) == 0
    assert len((run2 / "metrics.jsonl").read_text().splitlines()) == 1
    # a run folder is never overwritten unless asked
    before = (run / "metrics.jsonl").read_text()
    assert main(["genjax", "train", f"--config={SMOKE}", f"--workdir={run}", "--noprogress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "metrics.jsonl").read_text() == before


def test_a_run_folder_in_the_old_flat_layout_still_evaluates(tmp_path):
    """config.json as genjax wrote it before the family blocks (a fixture saved by that
    version): eval maps the old fields into model.vae and gets the same NLL."""
    run = tmp_path / "run"
    assert main(["genjax", "train", f"--config={SMOKE}", f"--workdir={run}", "--noprogress", "--noplots"]) == 0
    nll = json.loads((run / "eval.json").read_text())["nll"]
    legacy = json.loads(Path("tests/fixtures/legacy_configs.json").read_text())["vae_digits_smoke"]
    assert "hidden" in legacy["model"] and "nll_samples" in legacy["eval"]  # the flat layout
    (run / "config.json").write_text(json.dumps(legacy))
    assert main(["genjax", "eval", str(run)]) == 0
    assert json.loads((run / "eval.json").read_text())["nll"] == pytest.approx(nll, rel=1e-6)


def test_cli_resume_continues_to_the_same_result(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    common = [f"--config={SMOKE}", "--config.train.epochs=4", "--noprogress", "--noplots"]
    assert main(["genjax", "train", *common, f"--workdir={a}"]) == 0
    assert main(["genjax", "train", *common, f"--workdir={b}", "--stop_after=2"]) == 0
    assert not (b / "eval.json").exists()
    assert main(["genjax", "train", f"--resume={b}", "--noprogress", "--noplots"]) == 0
    ea, eb = (json.loads((d / "eval.json").read_text()) for d in (a, b))
    assert ea["nll"] == eb["nll"]


def test_bad_input_exits_nonzero_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, image=np.full((50, 4, 4), np.nan))
    run = tmp_path / "run"
    code = main(["genjax", "train", f"--config={SMOKE}", f"--config.data.name=npz:{bad}", f"--workdir={run}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not run.exists()
    assert err.startswith("genjax: error:") and "non-finite" in err and len(err.splitlines()) == 1
    assert main(["genjax", "train", f"--config={SMOKE}", "--config.train.epochs=0", f"--workdir={run}"]) == 2
    assert "train.epochs" in capsys.readouterr().err and not run.exists()
    assert main(["genjax", "train", f"--config={SMOKE}", "--config.train.nope=1"]) == 2
    assert main(["genjax", "eval", str(tmp_path / "missing")]) == 2
    assert main(["genjax", "frobnicate"]) == 2


def test_vae_mnist_config_runs_on_mock_tfds(tmp_path):
    import tensorflow_datasets as tfds

    run = tmp_path / "mnist"
    with tfds.testing.mock_data(num_examples=300):
        code = main(
            [
                "genjax",
                "train",
                "--config=experiments/vae_mnist/config.py:smoke",
                "--config.data.name=tfds:mnist",
                f"--workdir={run}",
                "--noprogress",
                "--noplots",
            ]
        )
    assert code == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["vae"]["hidden"] == [200, 200] and cfg["model"]["vae"]["latent_dim"] == 50
    assert json.loads((run / "eval.json").read_text())["n"] == 300


def test_cv_and_params_commands(tmp_path, capsys):
    run = tmp_path / "cv"
    code = main(
        [
            "genjax",
            "cv",
            f"--config={SMOKE}",
            "--config.cv.folds=3",
            "--config.train.epochs=2",
            f"--workdir={run}",
            "--noprogress",
        ]
    )
    assert code == 0
    rep = json.loads((run / "cv.json").read_text())
    assert rep["folds"] == 3 and len(rep["runs"][0]["members"]) == 3 and (run / "cv_curves.png").is_file()
    assert "held-out NLL" in capsys.readouterr().out
    # a sweep from the command line: the learning rate joins the folds on the vmapped axis
    sw = tmp_path / "sweep"
    args = ["genjax", "cv", SMOKE, "--config.cv.folds=2", "--config.train.epochs=1", f"--workdir={sw}", "--noprogress"]
    assert main([*args, '--sweep={"optim": {"lr": [0.001, 0.003]}}']) == 0
    rep = json.loads((sw / "cv.json").read_text())
    assert rep["swept"] == ["optim.lr"] and len(rep["runs"]) == 1 and len(rep["runs"][0]["members"]) == 4
    assert main([*args[:-2], f"--workdir={tmp_path / 'y'}", "--sweep={not json"]) == 2
    assert "--sweep" in capsys.readouterr().err and not (tmp_path / "y").exists()
    assert main(["genjax", "params", SMOKE]) == 0
    out = capsys.readouterr().out
    assert "| **total** |" in out
    assert main(["genjax", "cv", f"--config={SMOKE}", "--config.cv.folds=1", f"--workdir={tmp_path / 'x'}"]) == 2
    assert "cv.folds" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["genjax", "eval", str(run)]) == 2  # a cv folder keeps results, not a model: said so
    assert "cross-validation folder" in capsys.readouterr().err


def test_gan_train_and_eval_report_sample_metrics(tmp_path, capsys, classifier_dir):
    """A GAN trains and evaluates through the CLI with classifier-based metrics next to their
    real-versus-real values; a VAE run gets the same sample metrics."""
    run = tmp_path / "gan"
    cfg = "experiments/gan_digits/config.py:smoke"
    args = [f"--workdir={run}", "--noprogress", f"--config.eval.classifier_dir={classifier_dir}"]
    assert main(["genjax", "train", f"--config={cfg}", *args]) == 0
    out = capsys.readouterr().out
    assert "fid_digits_classifier" in out and "held-out test NLL" not in out
    ev = json.loads((run / "eval.json").read_text())["samples"]
    fid = "fid_digits_classifier"
    assert ev["real_vs_real"][fid] < ev["model"][fid]  # two epochs of a tiny GAN are far from real
    assert ev["classifier_test_accuracy"] > 0.9 and ev["duplicates"]["batch"] == 359
    for f in ("duplicates.png", "pca.png", "samples.png", "curves.png"):
        assert (run / f).is_file(), f
    assert main(["genjax", "eval", str(run)]) == 0
    assert json.loads((run / "eval.json").read_text())["samples"]["model"][fid] == pytest.approx(ev["model"][fid])
    vae = tmp_path / "vae"
    more = ["--config.eval.sample_metrics=True", f"--config.eval.classifier_dir={classifier_dir}"]
    assert main(["genjax", "train", f"--config={SMOKE}", f"--workdir={vae}", "--noprogress", *more]) == 0
    ev = json.loads((vae / "eval.json").read_text())
    assert np.isfinite(ev["nll"]) and "fid_digits_binarized_classifier" in ev["samples"]["model"]


def test_gan_on_toy_data_reports_divergences_and_modes(tmp_path, capsys):
    run = tmp_path / "ring"
    over = ["--config.train.epochs=1", "--config.data.toy_n=3000", "--config.model.gan.hidden=32,32"]
    cfg = "experiments/gan_mixtures/config.py:wgan_gp,ring"
    assert main(["genjax", "train", f"--config={cfg}", f"--workdir={run}", "--noprogress", *over]) == 0
    s = json.loads((run / "eval.json").read_text())["samples"]
    assert s["real_vs_real"]["modes"]["modes"] == 8 and s["real_vs_real"]["modes"]["high_quality"] > 0.98
    assert s["real_vs_real"]["js"] < s["model"]["js"]
    assert s["real_vs_real"]["wasserstein_exact"] < s["model"]["wasserstein_exact"]
    assert "modes" in capsys.readouterr().out


def _tb_events(folder):
    """Every event in a TensorBoard folder (TFRecord framing: length, crc, payload, crc)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    out = []
    for f in sorted(folder.glob("events.out.tfevents.*")):
        b, i = f.read_bytes(), 0
        while i < len(b):
            (n,) = struct.unpack("<Q", b[i : i + 8])
            out.append(Event.FromString(b[i + 12 : i + 12 + n]))
            i += 12 + n + 4
    return out


def test_tensorboard_gets_every_epochs_scalars_samples_and_figures(tmp_path):
    run = tmp_path / "run"
    args = [f"--config={SMOKE}", "--config.train.epochs=2", "--config.train.tb_images_every=1", "--noprogress"]
    assert main(["genjax", "train", *args, f"--workdir={run}"]) == 0
    events = _tb_events(run / "tb")
    scalars = {(v.tag, e.step): v.simple_value for e in events for v in e.summary.value if v.HasField("simple_value")}
    images = {(v.tag, e.step) for e in events for v in e.summary.value if v.HasField("image")}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:  # the same numbers as metrics.jsonl, epoch by epoch
        for k in ("loss", "kl", "val_nll"):
            assert scalars[(k, r["epoch"])] == pytest.approx(r[k], rel=1e-6)
    assert {("samples", 1), ("samples", 2), ("figures/samples", 2), ("figures/curves", 2)} <= images


def test_text_gpt_trains_evaluates_and_samples_text(tmp_path, capsys):
    """The GPT on the default corpus through the CLI: the vocabulary saved with the run, bits per
    character and perplexity from the exact NLL, generated text in samples.txt and from `sample`."""
    run = tmp_path / "gpt"
    cfg = "experiments/gpt_text/config.py:smoke"
    assert main(["genjax", "train", f"--config={cfg}", f"--workdir={run}", "--noprogress"]) == 0
    out = capsys.readouterr().out
    voc = json.loads((run / "vocab.json").read_text())
    assert voc["tokens"] == "char" and len(voc["vocab"]) > 50 and voc["vocab"] == sorted(voc["vocab"])
    ev = json.loads((run / "eval.json").read_text())
    t = 16  # the smoke config's block_size
    assert ev["bits_per_token"] == pytest.approx(ev["nll"] / (t * np.log(2)), rel=1e-6)
    assert ev["perplexity"] == pytest.approx(np.exp(ev["nll"] / t), rel=1e-6)
    assert ev["bits_per_token"] < np.log2(len(voc["vocab"]))  # it learned something in 2 epochs
    assert "perplexity" in out
    text = (run / "samples.txt").read_text()
    assert text.count("--- sample") == 2 and all(c in voc["vocab"] or c == "\n" for c in text.replace("--- sample", ""))
    assert main(["genjax", "sample", str(run), "--n=3", "--seed=7"]) == 0
    x = np.load(run / "samples-seed7.npy")
    assert x.shape == (3, t) and x.dtype.kind == "i" and x.max() < len(voc["vocab"])
    assert (run / "samples-seed7.txt").read_text().count("--- sample") == 3
    # sampling-time fields at sample time: greedy decoding draws one text, recorded beside it
    assert main(["genjax", "sample", str(run), "--n=3", "--seed=8", "--config.model.autoregressive.top_k=1"]) == 0
    g = np.load(run / "samples-seed8.npy")
    assert (g == g[0]).all() and not (x == x[0]).all()
    rec = json.loads((run / "samples-seed8.json").read_text())
    assert rec["config_changes"] == {"model.autoregressive.top_k": {"run": 0, "now": 1}}
    assert json.loads((run / "config.json").read_text())["model"]["autoregressive"]["top_k"] == 0
    assert main(["genjax", "sample", str(run), "--seed=9", "--config.model.autoregressive.d_model=8"]) == 2
    assert "cannot change it" in capsys.readouterr().err and not (run / "samples-seed9.npy").exists()


def test_predictor_trains_and_reports_calibration_and_accuracy(tmp_path, capsys):
    cfg = "experiments/conditional_regression/config.py"
    run = tmp_path / "reg"
    assert main(["genjax", "train", f"--config={cfg}:smoke", f"--workdir={run}", "--noprogress"]) == 0
    out = capsys.readouterr().out
    assert "held-out test NLL (exact, n=100)" in out and "95% interval" in out
    ev = json.loads((run / "eval.json").read_text())
    assert set(ev["predictive"]["coverage"]) == {"0.5", "0.9", "0.95"} and ev["family"] == "predictor"
    assert ev["bits_per_dim"] == pytest.approx(ev["nll"] / np.log(2))  # one target dimension
    for f in ("calibration.png", "predictive.png", "curves.png"):
        assert (run / f).is_file(), f
    assert not (run / "samples.png").exists()
    assert main(["genjax", "sample", str(run), "--n=7"]) == 0
    assert np.load(run / "samples-seed0.npy").shape == (7, 1)
    run = tmp_path / "cls"
    assert main(["genjax", "train", f"--config={cfg}:digits,smoke", f"--workdir={run}", "--noprogress"]) == 0
    out = capsys.readouterr().out
    ev = json.loads((run / "eval.json").read_text())
    assert "test accuracy" in out and 0.0 <= ev["predictive"]["accuracy"] <= 1.0
    assert np.sum(ev["predictive"]["confusion"]) == ev["n"] == 359
    assert (run / "confusion.png").is_file()


def test_every_command_has_help_and_typos_get_a_suggestion(capsys):
    from genjax.cli import COMMANDS

    for cmd in COMMANDS:
        assert main(["genjax", cmd, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: genjax {cmd}") and "flags:" in out
    assert main(["genjax", "sample", "-h"]) == 0
    out = capsys.readouterr().out  # the sampling fields it may set, from their declarations
    assert "model.diffusion.sampler" in out and "model.autoregressive.temperature" in out and "optim.lr" not in out
    assert main(["genjax", "trian"]) == 2
    assert "did you mean 'train'" in capsys.readouterr().err
    assert main(["genjax", "train", SMOKE, "--config.train.epoch=3"]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err


def test_resume_extends_a_finished_run_to_the_longer_runs_result(tmp_path, capsys):
    """--resume RUN --config.train.epochs=4 on a finished 2-epoch run ends where a 4-epoch run
    ends; the change is recorded; checkpoint-breaking fields and shrinking are refused."""
    a, b = tmp_path / "a", tmp_path / "b"
    common = [f"--config={SMOKE}", "--noprogress", "--noplots"]
    assert main(["genjax", "train", *common, "--config.train.epochs=4", f"--workdir={a}"]) == 0
    assert main(["genjax", "train", *common, "--config.train.epochs=2", f"--workdir={b}"]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()}
    assert main(["genjax", "train", f"--resume={b}", "--config.model.vae.latent_dim=4"]) == 2
    assert "cannot change it" in capsys.readouterr().err
    assert main(["genjax", "train", f"--resume={b}", "--config.train.epochs=1"]) == 2
    assert "already trained 2 epochs" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()} == before  # nothing written
    assert main(["genjax", "train", f"--resume={b}", "--config.train.epochs", "4", "--noprogress", "--noplots"]) == 0
    ea, eb = (json.loads((d / "eval.json").read_text()) for d in (a, b))
    assert ea["nll"] == eb["nll"]
    assert [json.loads(r)["loss"] for r in (a / "metrics.jsonl").read_text().splitlines()] == [
        json.loads(r)["loss"] for r in (b / "metrics.jsonl").read_text().splitlines()]  # fmt: skip
    assert json.loads((b / "config.json").read_text())["train"]["epochs"] == 4
    capsys.readouterr()
    assert main(["genjax", "config", str(b)]) == 0  # a run folder: the config it now trains with
    out = capsys.readouterr().out
    assert "train.epochs = 4\n" in out and "may change at genjax train --resume" in out
    assert main(["genjax", "config", str(tmp_path)]) == 2 and "no config.json" in capsys.readouterr().err
    change = json.loads((b / "run.json").read_text())["changes"][-1]
    assert change["fields"] == {"train.epochs": {"from": 2, "to": 4}} and change["command"] == "genjax train --resume"
    # a schedule laid over the run's length is not stretched silently
    c = tmp_path / "c"
    assert main(["genjax", "train", *common, "--config.train.epochs=1", "--config.optim.schedule=warmup_cosine",
                 f"--workdir={c}"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["genjax", "train", f"--resume={c}", "--config.train.epochs=2"]) == 2
    assert "optim.schedule='warmup_cosine'" in capsys.readouterr().err
    # evaluation-time fields for one evaluation, recorded in eval.json; config.json untouched
    assert main(["genjax", "eval", str(a), "--config.eval.batch_size=7"]) == 0
    ev = json.loads((a / "eval.json").read_text())
    assert ev["config_changes"] == {"eval.batch_size": {"run": 100, "now": 7}}
    assert ev["nll"] == pytest.approx(ea["nll"], abs=1.0)  # other importance draws per batch, the same estimand
    assert json.loads((a / "config.json").read_text())["eval"]["batch_size"] == 100
    assert main(["genjax", "eval", str(a), "--config.optim.lr=0.1"]) == 2
    assert "genjax eval cannot change it" in capsys.readouterr().err


def _bench_all():
    """benchmarks/bench_all.py, loaded as a module (a script, not in a package)."""
    import importlib.util

    script = Path(__file__).parents[1] / "benchmarks" / "bench_all.py"
    spec = importlib.util.spec_from_file_location("bench_all", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_all_writes_its_table_after_each_config(tmp_path, monkeypatch):
    """benchmarks/bench_all.py writes its table and all.json after each config, so a run stopped
    at a time budget (gpu.sh's ``timeout``) keeps the rows it finished."""
    import genjax.run.bench as bench_mod

    bench_all = _bench_all()
    real, calls = bench_mod.bench, []

    def stopped_at_the_second(*a, **k):
        calls.append(a[0].name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what a timeout's signal does to the run: not a config's failure
        return real(*a, **k)

    monkeypatch.setattr(bench_mod, "bench", stopped_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        bench_all.main(["--only", "made,predictor", "--epochs", "0", "--out", str(tmp_path)])
    table = (tmp_path / "table.md").read_text().splitlines()
    assert calls == ["bench_made", "bench_predictor"] and len(table) == 3  # the header's two lines and MADE's row
    assert table[2].startswith("| `benchmarks/config.py:made` | float32 | scan | ")
    assert [r["spec"] for r in json.loads((tmp_path / "all.json").read_text())] == ["benchmarks/config.py:made"]


def test_bench_all_only_reads_arguments_with_commas_whole(tmp_path, capsys):
    """--only splits on commas, except where consecutive items spell one config argument
    (the few-step study's ``fm_vp,digits``); an item that is no argument is refused, exit 2,
    before anything is written."""
    bench_all = _bench_all()
    known = {arg for _, arg in bench_all.targets(True)}
    assert {"fm_vp,digits", "digits", "fm_vp,digits:smoke", "pixelcnn", "flow", "smoke", "flow,smoke"} <= known
    assert bench_all.chosen("", known) == set()
    assert bench_all.chosen("fm_vp,digits", known) == {"fm_vp,digits"}  # not conditional_regression's "digits"
    assert bench_all.chosen("flow,smoke", known) == {"flow,smoke"}  # the longest first: not "flow" and "smoke"
    assert bench_all.chosen("digits,fm_vp,digits,fm_vp,digits:smoke", known) == {
        "digits", "fm_vp,digits", "fm_vp,digits:smoke"}  # fmt: skip
    with pytest.raises(ValueError, match="'fm_vp' is no config argument"):
        bench_all.chosen("fm_vp", known)
    out = tmp_path / "out"
    assert bench_all.main(["--shipped", "--only", "pixelcnn,nosuch", "--out", str(out)]) == 2
    # a row shows the rounds' lowest and highest ratio beside the median, in both tables
    r = {"spec": "benchmarks/config.py:made", "dtype": "float32", "loop": "scan", "compile_cold_s": 2.0,
         "compile_cached_s": 0.1, "epoch_s": 1.0, "ms_per_step": 5.0, "unit": "examples", "examples_per_s": 10.0,
         "mfu": 0.5, "val_share": 0.1, "ratio": 0.98, "ratio_range": [0.9, 1.1], "epochs": 20, "whole_s": 4.0,
         "whole_ratio": 0.97, "whole_ratio_range": [0.95, 1.01],
         "twin": {"whole_s": 3.9, "compile_s": 0.2, "compile_cold_s": 1.0}}  # fmt: skip
    assert bench_all.row(r).endswith("| 10% | 0.980 (0.900-1.100) |")
    assert "| 0.970 (0.950-1.010) | " in bench_all.whole_row(r) and bench_all.whole_row(r).endswith(
        "| 0.980 (0.900-1.100) |")  # fmt: skip
    assert "'nosuch' is no config argument" in capsys.readouterr().err and not out.exists()


def test_bench_reports_compile_steady_state_and_the_twin_ratio(tmp_path, capsys, monkeypatch):
    """genjax bench on the smoke VAE: compile cold and cached, the epoch, MFU, and the plain-JAX
    twin's epochs interleaved with genjax's (the ratio is the median of those rounds); with
    --whole, genjax train's whole run and the twin's, four rounds in alternating order (the twin
    running genjax's validation after each of its epochs), after an untimed run of each: with
    caches that start empty, the timed rounds compile nothing the cache lacks."""
    import genjax.run.bench as bench_mod
    import genjax.train.loop as loop_mod

    order, twin_whole, fit = [], bench_mod._twin_whole, loop_mod.fit

    def spied_twin(tw, epochs, validate=None):
        calls = []
        order.append(("twin", calls))
        return twin_whole(tw, epochs, lambda e: calls.append(e) or validate(e))

    monkeypatch.setattr(bench_mod, "_twin_whole", spied_twin)
    monkeypatch.setattr(loop_mod, "fit", lambda *a, **k: order.append(("genjax", None)) or fit(*a, **k))
    twin_covers = "--config.model.vae.kl_schedule=constant"  # the MLP VAE twin's plain ELBO
    with bench_mod.persistent_cache(str(tmp_path / "xla")):  # empty: the run's first compiles are fresh ones
        assert main(["genjax", "bench", SMOKE, twin_covers, "--epochs=3", "--whole", f"--json={tmp_path}"]) == 0
    out = capsys.readouterr().out
    r = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert r["compile_cold_s"] > 0 and r["compile_cached_s"] > 0 and r["epoch_s"] > r["val_s"] >= 0
    assert r["steps_per_s"] == pytest.approx(r["steps_per_epoch"] / (r["epoch_s"] - r["val_s"]), rel=1e-6)
    assert 0 < r["mfu"] < 1 and "compile:" in out
    assert r["twin"]["rounds"] == 3 and 0.2 < r["ratio"] < 5  # the same math and shapes: the same order
    assert r["twin"]["compile_cold_s"] > 0 and r["twin"]["compile_s"] > 0 and "s from the persistent cache;" in out
    assert r["whole_rounds"] == 4 and r["whole_s"] > 3 * r["epoch_s"] and r["twin"]["whole_s"] > 3 * r["val_s"]
    assert [who for who, _ in order] == ["genjax", "twin"] + ["genjax", "twin", "twin", "genjax"] * 2
    assert all(calls == [0, 1, 2] for who, calls in order if who == "twin")  # validation after each epoch
    assert 0.05 < r["whole_ratio"] < 5 and "whole genjax train" in out
    for med, (lo, hi) in ((r["ratio"], r["ratio_range"]), (r["whole_ratio"], r["whole_ratio_range"])):
        assert lo <= med <= hi and lo < hi  # the rounds' lowest and highest, around their median
    assert f"its rounds {r['ratio_range'][0]:.3f}-" in out and "whose ratios span" in out
    assert r["whole_fresh_compiles"] == 0 and "compiled 0 program(s)" in out
