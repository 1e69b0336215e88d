"""Every command the README shows runs as written, up to training: each ``genjax train | cv |
params | config`` line with a concrete config is validated and, where its data are on every
machine, built for its data (``genjax params``: config, data, family, parameter table); every
``python experiments/.../main.py`` and ``benchmarks/...`` script it names imports. (The API
session is run whole by ``tests/test_api.py``; the demo and the studies train in their own tests
and in experiments/.)"""

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from genjax.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
LOCAL = ("digits", "toy2d:", "toy1d:", "text:", "mnist5k")


def _commands() -> list[str]:
    """``genjax ...`` lines of the README's bash blocks and inline code, without comments and
    without the usage synopses (those with [optional] or <placeholder> parts)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    blocks = [b.replace("\\\n", " ") for b in blocks]  # continued lines joined
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines()]
    lines += re.findall(r"`(genjax [^`]*)`", README)
    out = []
    for ln in lines:
        if ln.startswith("./run.sh demo"):
            ln = "genjax train --config experiments/vae_digits/config.py" + ln[len("./run.sh demo") :]
        if ln.startswith("genjax ") and "experiments/" in ln and not re.search(r"[\[<|]|\.\.\.", ln):
            out.append(ln)
    return sorted(set(out))


COMMANDS = _commands()


def test_the_readme_shows_commands():
    assert len(COMMANDS) >= 6, COMMANDS  # the demo, cv:sweep, and a train line per family section


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_validates_and_builds(line, capsys, monkeypatch):
    monkeypatch.setenv("GENJAX_CACHE_DIR", "0")
    args = shlex.split(line)[1:]
    skip = ("--workdir", "--noprogress", "--progress", "--overwrite", "--noplots")
    rest = [a for a in args[1:] if not a.startswith(skip)]
    code = main(["genjax", "config", *rest])  # cv's --sweep too
    err = capsys.readouterr().err
    assert code == 0, err
    from genjax.cli import FLAGS

    if str(FLAGS.config.data.name).startswith(LOCAL):
        assert main(["genjax", "params", *rest]) == 0, capsys.readouterr().err


SCRIPTS = sorted(set(re.findall(r"(?:python|\.venv/bin/python) ((?:experiments|benchmarks)/[\w/]+\.py)", README)))


@pytest.mark.parametrize("script", SCRIPTS)
def test_readme_scripts_import(script):
    path = ROOT / script
    assert path.is_file(), script
    spec = importlib.util.spec_from_file_location(f"readme_{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # each runs only under __main__
    assert callable(getattr(mod, "main", None)), script
