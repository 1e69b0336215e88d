"""Runs in a process of its own (``tests/train/test_sharding.py`` starts it) so that forcing
host devices does not change the rest of the suite: ``python sharded_cases.py CASE [ARGS]``
prints one JSON line of results for the test to assert on."""

import json
import os
import sys

if __name__ == "__main__":
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={os.environ.get('N_DEVICES', '4')}"
    os.environ["JAX_PLATFORMS"] = "cpu"
    # the compilation cache stays as the suite set it: programs for 4 forced devices have keys of their own
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from genjax.config import base_config  # noqa: E402
from genjax.data import load_splits  # noqa: E402
from genjax.models import DataInfo, build_family  # noqa: E402
from genjax.train import fit  # noqa: E402
from genjax.train.sharding import initialize_distributed  # noqa: E402


def cfg_for(kind: str):
    c = base_config()
    c.train.epochs, c.train.batch_size = 2, 64
    if kind == "vae":
        c.data.binarize = "dynamic"
        c.model.vae.hidden, c.model.vae.latent_dim = (32,), 4
        c.model.vae.val_samples, c.model.vae.nll_samples, c.model.vae.nll_chunk = 2, 10, 10
    elif kind == "gan":  # two players, a critic with 2 updates on its own slices per step
        c.data.name, c.data.toy_n = "toy2d:ring", 2000
        c.model.family = "gan"
        c.model.gan.hidden = c.model.gan.disc_hidden = (32, 32)
        c.model.gan.latent_dim, c.model.gan.objective, c.model.gan.n_critic, c.model.gan.gp = 2, "wgan", 2, 0.1
        c.model.gan.ema = 0.9
    elif kind == "flow":  # ActNorm's data-dependent init
        c.data.name, c.data.toy_n = "toy2d:8gaussians", 2000
        c.model.family = "flow"
        c.model.flow.kind, c.model.flow.hidden, c.model.flow.n_layers = "realnvp", (32,), 4
    return c


def summary(res) -> dict:
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(jax.device_get(res.state.params))]
    hist = {k: [r[k] for r in res.history] for k in res.history[0] if k.endswith("loss") or k == "val_nll"}
    return {"params": [float(np.sum(a)) for a in leaves], "absmax": [float(np.abs(a).max()) for a in leaves],
            "history": hist, "step": int(jax.device_get(res.state.step))}  # fmt: skip


def run_fit(kind: str, mesh: str, workdir=None, **kw) -> dict:
    c = cfg_for(kind)
    c.train.mesh = mesh
    splits = load_splits(c.data, c.train.batch_size)
    res = fit(c, build_family(c, DataInfo.of(splits)), splits, workdir, progress=False, **kw)
    sharding = res.state.step.sharding
    return summary(res) | {"devices": len(sharding.device_set)}


def case_data_parallel(kind):
    return {"one": run_fit(kind, "data=1"), "four": run_fit(kind, "data=4")}


def case_all(workdir):
    """Every single-process case in one process (one JAX start-up, shared compilations)."""
    out = {f"data_parallel_{k}": case_data_parallel(k) for k in ("vae", "gan", "flow")}
    out["checkpoint"] = case_checkpoint(workdir, full=out["data_parallel_vae"]["one"])
    return out | {"members": case_members(None), "refusals": case_refusals(None)}


def case_members(_):
    from genjax.train.cv import cross_validate

    c = cfg_for("vae")
    c.cv.folds, c.train.epochs = 2, 2
    splits = load_splits(c.data, c.train.batch_size)
    fam = build_family(c, DataInfo.of(splits))
    settings = [{"optim.lr": 1e-3}, {"optim.lr": 3e-3}]
    out = {}
    for name, mesh, strategy in (("grid", "members=2,data=2", "vmap"), ("loop", "data=1", "loop")):
        c.train.mesh = mesh
        r = cross_validate(c, fam, splits, settings, strategy=strategy, progress=False)
        out[name] = {"heldout": r.heldout_nll.tolist(), "devices": len(r.state.step.sharding.device_set)}
    return out


def case_checkpoint(workdir, full=None):
    full = full or run_fit("vae", "data=1")
    run_fit("vae", "data=4", workdir, stop_after=1)
    # resume the 4-device checkpoint on one device and, from a copy, on four
    import shutil

    shutil.copytree(workdir, workdir + "_copy")
    on1 = run_fit("vae", "data=1", workdir, resume=True)
    on4 = run_fit("vae", "data=4", workdir + "_copy", resume=True)
    return {"full": full, "on1": on1, "on4": on4}


def case_refusals(_):
    from genjax.train.cv import cross_validate

    out = {}
    c = cfg_for("vae")
    c.train.batch_size = 50
    splits = load_splits(c.data, c.train.batch_size)
    fam = build_family(c, DataInfo.of(splits))
    for name, fn in (
        ("batch", lambda: fit(c, fam, splits, progress=False)),
        ("members", lambda: cross_validate(c, fam, splits, strategy="shard", progress=False)),  # 5 folds, 4 devices
    ):
        try:
            fn()
            out[name] = None
        except ValueError as e:
            out[name] = str(e)
    return out


def case_multiprocess(workdir):
    """One of two processes (GENJAX_COORDINATOR etc. in the environment), one device each: the
    run stopped after epoch 1 (both processes join the checkpoint save) and resumed from it."""
    initialize_distributed()
    run_fit("vae", "data=-1", workdir, stop_after=1)
    r = run_fit("vae", "data=-1", workdir, resume=True)
    return r | {"process": jax.process_index(), "processes": jax.process_count()}


if __name__ == "__main__":
    case, arg = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
    print(json.dumps(globals()[f"case_{case}"](arg)))
