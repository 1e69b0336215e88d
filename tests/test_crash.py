"""Runs that lose nothing: real processes killed, interrupted and run twice on one folder.

Each case runs ``genjax train`` in a subprocess, stops it at a chosen moment — a real SIGINT from
outside, or ``GENJAX_FAULT`` (``genjax.train.driver.fault_point``) sending the process SIGKILL /
SIGINT / SIGTERM at an exact point: before the first checkpoint, with a save in flight, during
evaluation — then continues it with ``--resume`` and checks the outcome is bit-identical to an
uninterrupted run: the same ``metrics.jsonl`` rows (bar wall time) and the same ``eval.json``.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genjax.cli import main

ARGS = [
    "--config=experiments/vae_digits/config.py:smoke",
    "--config.train.epochs=4",
    "--config.train.checkpoint_every=3",
    "--noprogress",
    "--noplots",
]


def _env(tmp: Path, fault: str | None = None) -> dict:
    env = dict(os.environ, GENJAX_CACHE_DIR=str(tmp.parent / "xla-cache"), JAX_PLATFORMS="cpu")
    env.pop("GENJAX_FAULT", None)
    if fault:
        env["GENJAX_FAULT"] = fault
    return env


def _genjax(tmp: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "genjax.cli", *args]
    return subprocess.run(cmd, env=_env(tmp, fault), capture_output=True, text=True, timeout=300)


def _spawn(tmp: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "genjax.cli", *args]
    return subprocess.Popen(cmd, env=_env(tmp), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def _outcome(run: Path) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("time")
    return rows, json.loads((run / "eval.json").read_text())


_REFERENCE: dict = {}


@pytest.fixture
def reference(tmp_path_factory, monkeypatch) -> tuple[list[dict], dict]:
    """The uninterrupted run, in this process (the same code path; once per worker)."""
    if not _REFERENCE:
        monkeypatch.setenv("GENJAX_CACHE_DIR", "0")
        run = tmp_path_factory.mktemp("reference") / "run"
        assert main(["genjax", "train", *ARGS, f"--workdir={run}"]) == 0
        _REFERENCE["outcome"] = _outcome(run)
    return _REFERENCE["outcome"]


@pytest.mark.parametrize(
    ("fault", "code", "committed"),
    [
        ("kill@epoch:1", -signal.SIGKILL, []),  # before the first checkpoint
        ("kill@save:3", -signal.SIGKILL, None),  # the epoch-3 save in flight: 1 committed, 3 maybe
        ("kill@eval", -signal.SIGKILL, [1, 3, 4]),  # training done, evaluation under way
        ("int@epoch:2", 130, [1, 2]),  # Ctrl-C: the epoch is checkpointed on the way out
        ("term@epoch:2", 143, [1, 2]),
    ],
)
def test_a_stopped_run_resumes_to_the_uninterrupted_result(tmp_path, reference, fault, code, committed, monkeypatch):
    monkeypatch.setenv("GENJAX_CACHE_DIR", "0")
    run = tmp_path / "run"
    p = _genjax(tmp_path, "train", *ARGS, f"--workdir={run}", fault=fault)
    assert p.returncode == code, p.stderr
    if code > 0:  # a signal the run handles: one line that says how to continue, no traceback
        err = p.stderr.strip().splitlines()
        assert len(err) == 1 and f"genjax train --resume {run}" in err[0] and "Traceback" not in p.stderr
        assert "SIGINT" in err[0] if code == 130 else "SIGTERM" in err[0]
    have = sorted(int(d.name) for d in (run / "checkpoints").iterdir() if d.name.isdigit())
    if committed is not None:
        assert have == committed
    else:
        assert have[0] == 1 and set(have) <= {1, 3}
    assert main(["genjax", "train", f"--resume={run}", "--noprogress", "--noplots"]) == 0  # in-process: faster
    assert _outcome(run) == reference
    assert not list(run.glob("checkpoints/*tmp*"))  # nothing half-written left behind


def _start(tmp: Path, epochs: int, lines: int) -> tuple[subprocess.Popen, list[str], Path]:
    """A training run of ``epochs`` in a subprocess, returned once its metrics.jsonl has ``lines``
    lines (0: exists)."""
    run = tmp / "run"
    args = [a.replace("epochs=4", f"epochs={epochs}") for a in ARGS]
    proc = _spawn(tmp, "train", *args, f"--workdir={run}")
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= lines):
        time.sleep(0.05)
    return proc, args, run


def test_an_outside_sigint_mid_run_checkpoints_the_epoch_it_finishes(tmp_path):
    proc, _, run = _start(tmp_path, 400, 2)
    metrics = run / "metrics.jsonl"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    done = len(metrics.read_text().splitlines())
    assert 2 <= done < 400
    assert sorted(int(d.name) for d in (run / "checkpoints").iterdir() if d.name.isdigit())[-1] == done
    assert f"after epoch {done}" in err and f"--resume {run}" in err


def test_a_second_writer_is_refused_and_touches_nothing(tmp_path, capsys):
    proc, args, run = _start(tmp_path, 60, 0)
    metrics = run / "metrics.jsonl"
    for second in (
        ["train", *args, f"--workdir={run}", "--overwrite"],
        ["train", f"--resume={run}"],
        ["eval", str(run)],
    ):
        assert main(["genjax", *second]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"in use by pid {proc.pid} on host" in err, err
    _, err = proc.communicate(timeout=280)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 61))  # one run's epochs, in order, once
    # once the holder is gone (however it ended) the folder is free again
    assert main(["genjax", "eval", str(run)]) == 0
