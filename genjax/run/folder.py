"""Run folders that one process at a time writes, and that appear whole or not at all.

``lock(run_dir)`` takes an exclusive ``fcntl.flock`` on a sibling file ``.<name>.lock`` (beside
the folder, not in it, so it survives ``--overwrite`` replacing the folder and needs no folder to
exist yet). The lock belongs to the open file: the kernel drops it when the process ends however
it ends (SIGKILL included), so a stale lock never blocks the next run. The holder writes its pid,
host and command into the lock file; a second process is refused with those.

``create(run_dir, files, overwrite)`` writes the first files into a temporary sibling folder and
renames it into place: a run folder either holds its ``config.json`` and ``run.json`` or does not
exist. Under ``overwrite`` the old folder is renamed aside first and deleted only after the new
one is in place.

``new_run_dir`` picks the folder (given, or ``runs/<name>-<time>``) and refuses one that holds a
run; ``open_run_dir`` locks and creates it with ``config.json``, ``run.json`` (versions,
devices, command) and, for text, ``vocab.json``: the CLI and ``genjax.fit`` both go through them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path


class RunFolderError(ValueError):
    pass


def _lock_path(run_dir: Path) -> Path:
    run_dir = Path(os.path.abspath(run_dir))
    return run_dir.parent / f".{run_dir.name}.lock"


@contextlib.contextmanager
def lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the run folder's lock for the ``with`` block; refuse (``RunFolderError``) when another
    process holds it."""
    import fcntl

    path = _lock_path(Path(run_dir))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunFolderError(f"cannot create the lock file {str(path)!r} for {str(run_dir)!r}: {e.strerror}.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(Path(path).read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
            raise RunFolderError(
                f"run folder {str(run_dir)!r} is in use by {who} ({holder.get('command', 'another genjax process')}); "
                "wait for it to finish or choose another --workdir."
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv[:6])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def holds_run(run_dir: Path) -> bool:
    """A folder with anything in it (other than what a lock leaves) counts as holding a run."""
    return run_dir.exists() and any(run_dir.iterdir())


def create(run_dir: str | os.PathLike, files: dict[str, str], overwrite: bool = False) -> Path:
    """Make ``run_dir`` holding ``files`` ({name: text}) atomically (a temporary sibling folder,
    then one rename). The caller holds the lock."""
    run_dir = Path(run_dir)
    parent = Path(os.path.abspath(run_dir)).parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{run_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, text in files.items():
        (tmp / name).write_text(text)
    old = None
    if run_dir.exists():
        if holds_run(run_dir) and not overwrite:
            shutil.rmtree(tmp)
            raise RunFolderError(f"the run folder {str(run_dir)!r} already holds a run.")
        old = parent / f".{run_dir.name}.old-{os.getpid()}"
        os.rename(run_dir, old)
    os.rename(tmp, run_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return run_dir


VERSIONED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "numpy", "scipy", "ml-collections",
             "tensorflow-datasets")  # fmt: skip


def versions() -> dict:
    """The installed versions of genjax, Python and the dependencies whose changes move numbers."""
    import platform
    from importlib import metadata

    import genjax

    out = {"genjax": genjax.__version__, "python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_info() -> dict:
    """``run.json``: versions, backend and devices, processes, the command and the start time."""
    import datetime
    import platform

    import jax

    import genjax

    return {
        "genjax": genjax.__version__,
        "jax": jax.__version__,
        "versions": versions(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "processes": jax.process_count(),
        "python": platform.python_version(),
        "argv": sys.argv,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def new_run_dir(cfg, workdir=None, overwrite: bool = False, suffix: str = "",
                hint: str = "pass --overwrite to replace it", field: str = "--workdir") -> Path:  # fmt: skip
    """``workdir`` or ``runs/<name>[-suffix]-<time>``; refuses a file, or a folder that already
    holds a run unless ``overwrite`` (``RunFolderError`` naming ``field``, ``hint`` saying what to
    do)."""
    import datetime

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(workdir or Path("runs") / "-".join(x for x in (cfg.name, suffix, stamp) if x))
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"{field} {str(run_dir)!r} is a file, not a folder.")
    if holds_run(run_dir) and not overwrite:
        raise RunFolderError(f"{field} {str(run_dir)!r} already holds a run; {hint}.")
    return run_dir


def open_run_dir(run_dir: Path, cfg, locks: contextlib.ExitStack, overwrite: bool = False, splits=None,
                 hint: str = "pass --overwrite to replace it", kind: str = "train") -> None:  # fmt: skip
    """Lock ``run_dir`` (the lock joins ``locks``, held until the caller closes it) and create
    it atomically (replacing it under ``overwrite``) with config.json and run.json (and, for text,
    vocab.json: the token strings). Called only once the config, data and model have passed
    their checks; by process 0 only. ``kind``: ``train`` (a model's run) or ``cv`` (a
    cross-validation's: results, no model), recorded in run.json."""
    locks.enter_context(lock(run_dir))  # a second writer is refused here, overwrite or not
    files = {"config.json": cfg.to_json_best_effort(indent=2) + "\n",
             "run.json": json.dumps(run_info() | {"kind": kind} | _data_note(cfg, splits), indent=2)
             + "\n"}  # fmt: skip
    if splits is not None and splits.vocab is not None:
        files["vocab.json"] = json.dumps({"tokens": splits.tokens, "vocab": list(splits.vocab)}) + "\n"
    try:
        create(run_dir, files, overwrite=overwrite)
    except RunFolderError as e:
        raise RunFolderError(f"{e} {hint[0].upper()}{hint[1:]}.") from None


def _data_note(cfg, splits) -> dict:
    """``{"data": name}`` when the splits are not what ``cfg.data.name`` loads (arrays or text
    handed over in memory): ``genjax.load`` then asks for them instead of loading other data."""
    return {"data": splits.name} if splits is not None and splits.name != str(cfg.data.name) else {}


def is_cv_folder(run_dir: Path) -> bool:
    """A ``genjax cv`` folder (run.json's kind, or the cv.json of a folder from before kinds)."""
    try:
        kind = json.loads((run_dir / "run.json").read_text()).get("kind")
    except (OSError, ValueError):
        kind = None
    return kind == "cv" or (kind is None and (run_dir / "cv.json").is_file())


__all__ = ["RunFolderError", "create", "holds_run", "is_cv_folder", "lock", "new_run_dir", "open_run_dir",
           "record_changes", "run_info", "versions"]  # fmt: skip


def _replace(path: Path, text: str) -> None:
    """Write ``path`` atomically (a kill leaves the old file or the new one, never half of one)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def record_changes(run_dir: Path, cfg, changes: dict, command: str) -> None:
    """A resumed run whose config changed (``genjax train --resume RUN --config.train.epochs=N``):
    config.json becomes the new config, and run.json's ``changes`` list records what changed,
    from what, by which command and when."""
    import datetime

    _replace(run_dir / "config.json", cfg.to_json_best_effort(indent=2) + "\n")
    info_path = run_dir / "run.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info.setdefault("changes", []).append({
        "command": command,
        "at": datetime.datetime.now().isoformat(timespec="seconds"),
        "fields": {k: {"from": old, "to": new} for k, (old, new) in changes.items()},
    })  # fmt: skip
    _replace(info_path, json.dumps(info, indent=2, default=str) + "\n")
