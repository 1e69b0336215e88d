"""One model on a device mesh: data-parallel equals one device, members x data equals the loop
reference, checkpoints move between meshes, two processes equal one. Each case runs in a process
of its own with forced host devices (``sharded_cases.py``), so the rest of the suite keeps the
plain default device."""

import fcntl
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genjax.train.sharding import parse_mesh

CASES = Path(__file__).with_name("sharded_cases.py")


def run_case(*args, devices: int = 4, env: dict | None = None, wait: bool = True):
    e = {**os.environ, "N_DEVICES": str(devices), **(env or {})}
    e.pop("XLA_FLAGS", None)
    p = subprocess.Popen([sys.executable, str(CASES), *map(str, args)], env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    if not wait:
        return p
    return finish(p)


def finish(p):
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def assert_same_run(a, b, rtol=1e-5):
    for k in a["history"]:
        np.testing.assert_allclose(a["history"][k], b["history"][k], rtol=rtol, err_msg=k)
    np.testing.assert_allclose(a["params"], b["params"], rtol=rtol, atol=1e-5)
    np.testing.assert_allclose(a["absmax"], b["absmax"], rtol=rtol, atol=1e-6)
    assert a["step"] == b["step"]


_RESULTS: dict = {}  # survives xdist's early fixture teardown within one worker


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """All single-process cases, run once in a process with 4 forced host devices: once per
    session, whichever xdist worker asks first (the others wait on a file lock and read its
    result)."""
    if "all" not in _RESULTS:
        base = tmp_path_factory.getbasetemp()
        shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this session's, common to its workers
        with open(shared / "sharded_cases.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = shared / "sharded_cases.json"
            if not done.exists():
                done.write_text(json.dumps(run_case("all", tmp_path_factory.mktemp("sharded") / "run")))
            _RESULTS["all"] = json.loads(done.read_text())
    return _RESULTS["all"]


@pytest.mark.parametrize("family", ["vae", "gan", "flow"])
def test_data_parallel_over_four_devices_equals_one(cases, family):
    """VAE; GAN (two players, the critic's split batch, EMA); flow (ActNorm's data init)."""
    r = cases[f"data_parallel_{family}"]
    assert r["one"]["devices"] == 1 and r["four"]["devices"] == 4
    assert_same_run(r["one"], r["four"])


def test_members_by_data_grid_equals_the_loop(cases):
    r = cases["members"]
    assert r["grid"]["devices"] == 4  # 2 members x 2 data
    np.testing.assert_allclose(r["grid"]["heldout"], r["loop"]["heldout"], rtol=1e-5)
    assert not np.allclose(r["grid"]["heldout"][:2], r["grid"]["heldout"][2:])  # the settings differ


def test_checkpoint_from_four_devices_resumes_on_one_and_on_four(cases):
    r = cases["checkpoint"]
    assert r["on1"]["devices"] == 1 and r["on4"]["devices"] == 4
    for resumed in (r["on1"], r["on4"]):
        full = dict(r["full"], history={k: v[1:] for k, v in r["full"]["history"].items()})  # epoch 2 on
        assert_same_run(full, resumed)


def test_impossible_meshes_are_refused_in_one_sentence(cases):
    r = cases["refusals"]
    assert "data axis (4 devices) does not divide the batch of 50" in r["batch"]
    assert "members axis (4 devices) does not divide the run's 5 members" in r["members"]
    with pytest.raises(ValueError, match="train.mesh='members=2,gpus=2'"):
        parse_mesh("members=2,gpus=2")
    with pytest.raises(ValueError, match="only one axis may be -1"):
        parse_mesh("members=-1,data=-1")
    assert parse_mesh("members=5, data=2") == {"members": 5, "data": 2} and parse_mesh("") == {}


def test_two_processes_equal_one(cases, tmp_path):
    """jax.distributed over two CPU processes on 127.0.0.1 (gloo), one device each, data axis 2,
    stopped after epoch 1 and resumed from the checkpoint both wrote: the uninterrupted one-device run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"GENJAX_COORDINATOR": f"127.0.0.1:{port}", "GENJAX_NUM_PROCESSES": "2"}
    procs = [run_case("multiprocess", tmp_path / "run", devices=1, env=env | {"GENJAX_PROCESS_ID": str(i)}, wait=False)
             for i in (0, 1)]  # fmt: skip
    out = [finish(p) for p in procs]
    single = cases["data_parallel_vae"]["one"]
    single = dict(single, history={k: v[1:] for k, v in single["history"].items()})  # the resumed call: epoch 2
    assert [o["process"] for o in out] == [0, 1] and all(o["processes"] == 2 and o["devices"] == 2 for o in out)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.is_dir()) == ["1", "2"]
    for o in out:
        assert_same_run(single, o)
