"""Bad input, as a sweep: every case ends with exit status 2 and exactly one line on stderr that
names the field or file and the offending value, no traceback, and no file created or changed.

In-process (``genjax.cli.main``), so one JAX import serves all the cases.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from genjax.cli import main

SMOKE = "experiments/vae_digits/config.py:smoke"
GPT = "experiments/gpt_text/config.py:smoke"
TOY = "experiments/gan_mixtures/config.py"
REG = "experiments/conditional_regression/config.py:smoke"
FLOW = "experiments/flow_digits/config.py:smoke"
SCORE = "experiments/score_toy2d/config.py:ddpm,8gaussians:smoke"
CVAE = "experiments/conditional_digits/config.py:smoke"


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setenv("GENJAX_CACHE_DIR", "0")
    monkeypatch.delenv("GENJAX_DEBUG", raising=False)


def _files(tmp: Path) -> Path:
    """Malformed inputs in ``tmp/in``."""
    d = tmp / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    img = rng.random((50, 8, 8)).astype(np.float32)
    np.save(d / "array.npy", img)
    np.savez(d / "no_image.npz", pixels=img)
    np.savez(d / "flat.npz", image=img.reshape(50, 64)[:, 0])
    np.savez(d / "nan.npz", image=np.where(img > 0.9, np.nan, img))
    np.savez(d / "inf.npz", image=np.where(img > 0.9, np.inf, img))
    np.savez(d / "int300.npz", image=(img * 300).astype(np.int32))
    np.savez(d / "float2.npz", image=img * 2)
    np.savez(d / "empty.npz", image=np.zeros((0, 8, 8), np.float32))
    np.savez(d / "complex.npz", image=img.astype(np.complex64))
    np.savez(d / "labels.npz", image=img, label=np.zeros((49,), np.int64))
    np.savez(d / "test_shape.npz", image=img, test_image=rng.random((10, 6, 6)))
    np.savez(d / "tiny.npz", image=img[:5])
    np.save(d / "scores5.npy", np.arange(5.0))
    (d / "random.npz").write_bytes(rng.bytes(300))
    (d / "zero.npz").write_bytes(b"")
    (d / "config_syntax.py").write_text("def get_config(:\n")
    (d / "config_none.py").write_text("def get_config():\n    return None\n")
    for name in ("notrun", "corrupt_config"):
        (d / name).mkdir()
    (d / "corrupt_config" / "config.json").write_text("{ not json")
    (d / "a_file").write_text("x")
    (d / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 500)
    (d / "short.txt").write_text("tiny text")
    binary = (rng.random((300, 8, 8)) > 0.5).astype(np.uint8)
    np.savez(d / "no_test_labels.npz", image=binary, label=rng.integers(0, 10, 300), test_image=binary[:50])
    return d


def _trained(tmp: Path) -> Path:
    """A real run folder (3 epochs) whose checkpoints the cases then damage."""
    run = tmp / "in" / "trained"
    assert main(["genjax", "train", f"--config={SMOKE}", f"--workdir={run}", "--noprogress", "--noplots"]) == 0
    return run


def tr(*overrides: str, config: str = SMOKE) -> list[str]:
    """``genjax train --config=CONFIG --config.<override> ...``"""
    return ["train", f"--config={config}", *(f"--config.{o}" for o in overrides)]


# (argv after "genjax", substrings the one error line must contain). {d}: the inputs folder,
# {w}: a fresh run folder that must not appear
CASES = {
    # data files
    "npz missing": (tr("data.name=npz:{d}/nope.npz"), ["nope.npz", "no such file"]),
    "npy as npz": (tr("data.name=npz:{d}/array.npy"), ["array.npy"]),
    "npz random bytes": (tr("data.name=npz:{d}/random.npz"), ["random.npz"]),
    "npz empty file": (tr("data.name=npz:{d}/zero.npz"), ["zero.npz"]),
    "npz no image": (tr("data.name=npz:{d}/no_image.npz"), ["'image'", "pixels"]),
    "npz 1-d image": (tr("data.name=npz:{d}/flat.npz"), ["flat.npz", "(50,)"]),
    "npz NaN": (tr("data.name=npz:{d}/nan.npz"), ["nan.npz", "non-finite"]),
    "npz Inf": (tr("data.name=npz:{d}/inf.npz"), ["inf.npz", "non-finite"]),
    "npz ints > 255": (tr("data.name=npz:{d}/int300.npz"), ["int300.npz", "0..29"]),
    "npz floats > 1": (tr("data.name=npz:{d}/float2.npz"), ["float2.npz", "[0, 1]"]),
    "npz 0 examples": (tr("data.name=npz:{d}/empty.npz"), ["empty.npz", "0 examples"]),
    "npz complex": (tr("data.name=npz:{d}/complex.npz"), ["complex.npz", "complex64"]),
    "npz labels": (tr("data.name=npz:{d}/labels.npz"), ["labels.npz", "(49,)"]),
    "npz test shape": (tr("data.name=npz:{d}/test_shape.npz"), ["test_shape.npz", "(6, 6"]),
    "npz too small": (tr("data.name=npz:{d}/tiny.npz"), ["tiny.npz", "data.val_fraction"]),
    "tfds not prepared": (tr("data.name=tfds:mnist", "data.data_dir={d}/notrun"), ["mnist", "notrun"]),
    "data scheme": (tr("data.name=csv:x"), ["data.name", "csv:x"]),
    "toy2d name": (tr("data.name=toy2d:spiral9", config=TOY), ["toy2d:spiral9"]),
    "text missing": (tr("data.name=text:{d}/nope.txt", config=GPT), ["nope.txt", "no such file"]),
    "text not utf-8": (tr("data.name=text:{d}/latin1.txt", config=GPT), ["latin1.txt", "UTF-8"]),
    "text too short": (tr("data.name=text:{d}/short.txt", config=GPT), ["short.txt", "data.block_size=16"]),
    "block_size": (tr("data.block_size=1", config=GPT), ["data.block_size", "1"]),
    "text tokens": (tr("data.tokens=word", config=GPT), ["data.tokens", "word"]),
    "vae on text": (tr("model.family=vae", config=GPT), ["model.family='vae'", "text"]),
    "pixelcnn on text": (tr("model.autoregressive.arch=pixelcnn", config=GPT), ["pixelcnn", "(16,)"]),
    "autoregressive on continuous": (
        tr("model.family=autoregressive", "data.binarize=none", "data.dequantize=True"),
        ["autoregressive", "data.dequantize"],
    ),
    "ar arch": (tr("model.autoregressive.arch=rnn", config=GPT), ["model.autoregressive.arch", "rnn"]),
    "temperature": (tr("model.autoregressive.temperature=0", config=GPT), ["temperature", "0"]),
    "heads": (tr("model.autoregressive.n_heads=3", config=GPT), ["d_model=32", "n_heads=3"]),
    "cv on text": (["cv", GPT], ["cross-validation", "text:"]),
    "dtype": (tr("train.dtype=float16"), ["train.dtype", "float16"]),
    "predictor on unlabelled": (tr("model.family=predictor", config=TOY), ["model.predictor.likelihood", "none"]),
    "predictor classes on reals": (
        tr("model.predictor.likelihood=focal", config=REG), ["model.predictor.likelihood='focal'", "real-valued"]
    ),
    "toy1d name": (tr("data.name=toy1d:sine", config=REG), ["toy1d:sine"]),
    # config fields, every section
    "val_fraction": (tr("data.val_fraction=1.5"), ["data.val_fraction", "1.5"]),
    "test_fraction": (tr("data.test_fraction=-0.1"), ["data.test_fraction", "-0.1"]),
    "binarize": (tr("data.binarize=maybe"), ["data.binarize", "maybe"]),
    "scale": (tr("data.scale=0255"), ["data.scale", "0255"]),
    "toy_n": (tr("data.toy_n=0", config=TOY), ["data.toy_n", "0"]),
    "train_size": (tr("data.train_size=-3"), ["data.train_size", "-3"]),
    "epochs 0": (tr("train.epochs=0"), ["train.epochs", "0"]),
    "epochs text": (tr("train.epochs=abc"), ["train.epochs", "abc"]),
    "batch_size 0": (tr("train.batch_size=0"), ["train.batch_size", "0"]),
    "batch_size huge": (tr("train.batch_size=100000"), ["train.batch_size", "100000"]),
    "patience": (tr("train.patience=-1"), ["train.patience", "-1"]),
    "checkpoint_every": (tr("train.checkpoint_every=0"), ["train.checkpoint_every", "0"]),
    "checkpoint_minutes": (tr("train.checkpoint_minutes=-1"), ["train.checkpoint_minutes", "-1"]),
    "on_nonfinite": (tr("train.on_nonfinite=ignore"), ["train.on_nonfinite", "ignore"]),
    "loss_rise": (tr("train.loss_rise=-2"), ["train.loss_rise", "-2"]),
    "mesh": (tr("train.mesh=members=3"), ["members", "3"]),
    "mesh syntax": (tr("train.mesh=data:2"), ["train.mesh", "data:2"]),
    "unroll": (tr("train.unroll=-1"), ["train.unroll", "-1"]),
    "update_order": (tr("train.update_order=random"), ["train.update_order", "random"]),
    "simultaneous n_critic": (tr("train.update_order=simultaneous", config=TOY), ["simultaneous", "n_critic=5"]),
    "curriculum": (tr("train.curriculum=(3,)"), ["train.curriculum", "3"]),
    "curriculum toy": (tr("train.curriculum=(1,)", config=TOY), ["train.curriculum", "(2,)"]),
    "easy_first kind": (tr("train.easy_first=csv:x"), ["train.easy_first", "csv:x"]),
    "easy_first npy": (tr("train.easy_first=npy:{d}/nope.npy"), ["train.easy_first", "nope.npy"]),
    "easy_first length": (tr("train.easy_first=npy:{d}/scores5.npy"), ["train.easy_first", "(5,)"]),
    "easy_first run": (tr("train.easy_first=run:{d}/missing"), ["train.easy_first", "missing"]),
    "easy_start": (tr("train.easy_first=npy:{d}/scores5.npy", "train.easy_start=0"), ["train.easy_start", "0"]),
    "lr 0": (tr("optim.lr=0"), ["optim.lr", "0"]),
    "lr negative": (tr("optim.lr=-0.1"), ["optim.lr", "-0.1"]),
    "optimizer": (tr("optim.name=adamx"), ["optim.name", "adamx"]),
    "schedule": (tr("optim.schedule=zigzag"), ["optim.schedule", "zigzag"]),
    "clip_norm": (tr("optim.clip_norm=-1"), ["optim.clip_norm", "-1"]),
    "step_at": (tr("optim.schedule=step", "optim.step_at=(1.5,)"), ["optim.step_at", "1.5"]),
    "plateau factor": (tr("optim.schedule=plateau", "optim.plateau_factor=2"), ["optim.plateau_factor", "2"]),
    "plateau on a GAN": (tr("optim.schedule=plateau", config=TOY), ["optim.schedule='plateau'", "gan"]),
    "pack": (tr("model.gan.pack=0", config=TOY), ["model.gan.pack", "0"]),
    "l1": (tr("objective.l1=-1"), ["objective.l1", "-1"]),
    "family": (tr("model.family=transformer9"), ["model.family", "transformer9"]),
    "hidden text": (tr("model.vae.hidden=abc"), ["model.vae.hidden", "abc"]),
    "latent_dim": (tr("model.vae.latent_dim=0"), ["model.vae.latent_dim", "0"]),
    "vae arch": (tr("model.vae.arch=rnn"), ["model.vae.arch", "rnn"]),
    "eval batch": (tr("eval.batch_size=0"), ["eval.batch_size", "0"]),
    "cv folds 1": (["cv", SMOKE, "--config.cv.folds=1"], ["cv.folds", "1"]),
    "cv folds huge": (["cv", SMOKE, "--config.cv.folds=100000"], ["cv.folds", "100000"]),
    "cv strategy": (["cv", SMOKE, "--config.cv.strategy=pmap"], ["cv.strategy", "pmap"]),
    "sweep json": (["cv", SMOKE, "--sweep={oops"], ["--sweep", "{oops"]),
    "sweep field": (["cv", SMOKE, '--sweep={"optim": {"lrr": [1, 2]}}'], ["optim.lrr"]),
    "unknown field": (tr("train.nope=1"), ["train.nope"]),
    # config files
    "config missing": (["train", "--config=experiments/nope/config.py"], ["experiments/nope/config.py"]),
    "config variant": (
        ["train", "--config=experiments/vae_digits/config.py:nosuch"],
        ["unknown config variant 'nosuch'"],
    ),
    "config syntax": (["train", "--config={d}/config_syntax.py"], ["config_syntax.py"]),
    "config returns None": (["train", "--config={d}/config_none.py"], ["config_none.py"]),
    # folders and checkpoints
    "eval not a run": (["eval", "{d}/notrun"], ["notrun", "config.json"]),
    "eval missing": (["eval", "{d}/missing"], ["missing"]),
    "eval corrupt config": (["eval", "{d}/corrupt_config"], ["corrupt_config", "config.json"]),
    "resume not a run": (["train", "--resume={d}/notrun"], ["notrun", "config.json"]),
    "resume with config": (["train", "--resume={d}/notrun", f"--config={SMOKE}"], ["--resume", "--config"]),
    "workdir is a file": (["train", f"--config={SMOKE}", "--workdir={d}/a_file"], ["a_file"]),
    "workdir unwritable": (["train", f"--config={SMOKE}", "--workdir=/proc/genjax-run"], ["/proc/genjax-run"]),
    "sample n": (["sample", "{d}/notrun", "--n=0"], ["--n", "0"]),
    "positional": (["train", "extra", f"--config={SMOKE}"], ["extra"]),
    "command": (["frobnicate"], ["frobnicate"]),
    # figures that would mean nothing: the likelihood must fit the data it scores
    "bernoulli on continuous": (
        tr("data.name=toy2d:moons", "data.binarize=none"), ["model.vae.likelihood='bernoulli'", "continuous"]
    ),
    "bernoulli on grey levels": (tr("data.binarize=none"), ["model.vae.likelihood='bernoulli'", "17 grey levels"]),
    "bernoulli on [-1, 1]": (tr("data.scale=-11"), ["model.vae.likelihood='bernoulli'", "data.scale='01'"]),
    "gaussian on binary": (tr("model.vae.likelihood=gaussian"), ["model.vae.likelihood='gaussian'", "binary"]),
    "flow on discrete": (tr("data.dequantize=False", config=FLOW), ["model.family='flow'", "data.dequantize=True"]),
    "flow on [-1, 1]": (tr("data.scale=-11", config=FLOW), ["model.flow", "data.scale='01'"]),
    "diffusion prior": (tr("model.diffusion.beta_max=1.0", config=SCORE), ["model.diffusion.beta_max", "prior"]),
    "ve prior": (
        tr("model.diffusion.process=ve", "model.diffusion.sigma_max=2.0", config=SCORE),
        ["model.diffusion.sigma_max", "prior term"],
    ),
    "temperature nan": (tr("model.autoregressive.temperature=nan", config=GPT), ["temperature", "nan"]),
    "temperature negative": (tr("model.autoregressive.temperature=-1", config=GPT), ["temperature", "-1"]),
    "top_k negative": (tr("model.autoregressive.top_k=-1", config=GPT), ["model.autoregressive.top_k", "-1"]),
    "nll chunks": (tr("model.vae.nll_samples=25"), ["model.vae.nll_samples", "model.vae.nll_chunk"]),
    "optimizer b1": (tr("optim.b1=1.5"), ["optim.b1", "1.5"]),
    "optimizer eps": (tr("optim.eps=0"), ["optim.eps", "0"]),
    "optimizer momentum": (tr("optim.momentum=-0.5"), ["optim.momentum", "-0.5"]),
    "inactive block": (tr("model.vae.latent_dim=4", config=FLOW), ["model.vae.latent_dim", "'flow'"]),
    "field typo": (tr("train.epoch=5"), ["train.epoch", "epochs"]),
    "labelled without test labels": (
        tr("data.name=npz:{d}/no_test_labels.npz", "data.binarize=none", config=CVAE), ["test split", "no labels"]
    ),
    "cv of a gan": (["cv", TOY], ["cv", "gan"]),
    "sweep negative lr": (["cv", SMOKE, '--sweep={"optim": {"lr": [0.001, -0.1]}}'], ["optim.lr=-0.1", "> 0"]),
    "sweep string": (["cv", SMOKE, '--sweep={"optim": {"lr": ["fast"]}}'], ["optim.lr='fast'"]),
    "sweep other block": (["cv", SMOKE, '--sweep={"model": {"flow": {"n_layers": [2]}}}'], ["model.flow.n_layers"]),
}

CKPT_CASES = {
    # every checkpoint damaged: resume and eval refuse (naming the run) and change nothing
    "all checkpoints truncated (resume)": ("resume", ["trained", "no checkpoint"]),
    "all checkpoints truncated (eval)": ("eval", ["trained", "no checkpoint"]),
    "checkpoints missing (eval)": ("eval-missing", ["trained", "checkpoints"]),
}


def _tree_hash(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _check(capsys, tmp: Path, argv: list[str], expect: list[str]) -> None:
    before = _tree_hash(tmp)
    runs_before = set(os.listdir("runs")) if os.path.isdir("runs") else set()
    code = main(["genjax", *argv])
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert code == 2, (code, err)
    assert "Traceback" not in cap.err and "Traceback" not in cap.out
    assert len(err.splitlines()) == 1 and err.startswith("genjax: error: "), err
    for s in expect:
        assert s in err, (s, err)
    assert _tree_hash(tmp) == before, "a file was created or changed"
    assert (set(os.listdir("runs")) if os.path.isdir("runs") else set()) == runs_before


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys):
    d = _files(tmp_path)
    argv, expect = CASES[case]
    argv = [a.replace("{d}", str(d)) for a in argv]
    if argv[0] in ("train", "cv") and not any(a.startswith(("--workdir", "--resume")) for a in argv):
        argv.append(f"--workdir={tmp_path / 'run'}")
    _check(capsys, tmp_path, argv, [e.replace("{d}", str(d)) for e in expect])


@pytest.mark.parametrize("case", list(CKPT_CASES))
def test_damaged_checkpoints_are_refused_without_changes(case, tmp_path, capsys):
    _files(tmp_path)
    run = _trained(tmp_path)
    capsys.readouterr()
    how, expect = CKPT_CASES[case]
    if how == "eval-missing":
        import shutil

        shutil.rmtree(run / "checkpoints")
    else:
        for f in (run / "checkpoints").rglob("*"):
            if f.is_file() and f.stat().st_size > 0 and f.parent.name != "checkpoints":
                f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    argv = ["train", f"--resume={run}"] if how == "resume" else ["eval", str(run)]
    _check(capsys, tmp_path, argv, expect)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    """--resume skips the newest checkpoint that does not restore, says so, and continues from
    the one before: the same result as an uninterrupted run."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    common = [f"--config={SMOKE}", "--config.train.epochs=4", "--noprogress", "--noplots"]
    assert main(["genjax", "train", *common, f"--workdir={ref}"]) == 0
    assert main(["genjax", "train", *common, f"--workdir={run}", "--stop_after=3"]) == 0
    newest = run / "checkpoints" / "3"
    for f in newest.rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    capsys.readouterr()
    assert main(["genjax", "train", f"--resume={run}", "--noprogress", "--noplots"]) == 0
    err = capsys.readouterr().err
    assert "skipped checkpoint of epoch 3" in err
    assert json.loads((run / "eval.json").read_text())["nll"] == json.loads((ref / "eval.json").read_text())["nll"]
    rows = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3, 4]


def test_a_text_run_whose_text_changed_is_refused(tmp_path, capsys):
    """vocab.json is read back: sample, eval and --resume refuse a text file whose vocabulary
    is no longer the one the run was trained with (token ids would map to other characters)."""
    text = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    text.write_text("".join(rng.choice(list("abcdefgh \n"), 20000)))
    run = tmp_path / "gpt"
    argv = ["genjax", "train", f"--config={GPT}", f"--config.data.name=text:{text}", f"--workdir={run}"]
    assert main(argv + ["--noprogress", "--noplots", "--config.train.epochs=1"]) == 0
    assert main(["genjax", "sample", str(run), "--n=2"]) == 0  # the same text: fine
    text.write_text(text.read_text() + "xyz")
    capsys.readouterr()
    for args in (["sample", str(run)], ["eval", str(run)], ["train", f"--resume={run}"]):
        _check(capsys, tmp_path, args, [str(text), "vocabulary", "new: 'xyz'"])
