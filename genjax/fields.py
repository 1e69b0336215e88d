"""Config fields, declared once: type, default, range or choices and a one-line description.

Every section of the config (``genjax.config``) and every family's block (``FIELDS`` in
``genjax/models/<family>.py``) is a dict ``{name: Field}``. The same declaration builds the
defaults (``defaults``), checks a value (``Field.problem``, used by ``genjax.config.validate``
for the config and for every ``cv.sweep`` value), and documents the field (``genjax config``,
``describe``). Cross-field and data-dependent rules (a U-Net needs images, a Bernoulli decoder
needs binary data) stay with the family that knows them.

Imports nothing of genjax.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

WHEN = ("sample", "eval", "resume", "train")  # each moment may change the fields of those before it
WHEN_COMMAND = {"sample": "genjax sample", "eval": "genjax eval", "resume": "genjax train --resume"}


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclasses.dataclass(frozen=True)
class Field:
    """One config field. ``kind``: int | float | bool | str | ints | floats (a tuple of numbers) |
    dict (a free-form section such as ``cv.sweep``, checked by its owner). Bounds: ``ge`` / ``gt`` /
    ``le`` / ``lt`` (for a tuple: every item); ``choices``: the allowed values (strings);
    ``check``: a last rule ``value -> problem or None``. ``when``: the earliest moment the field
    may still change (``WHEN``): ``train`` (it shapes the model or its training: fixed once a run
    has begun), ``resume`` (training's bookkeeping: ``genjax train --resume RUN --config...``),
    ``eval`` (read only by evaluation: ``genjax eval RUN --config...`` too), ``sample`` (read only
    when sampling: ``genjax sample RUN --config...`` too)."""

    kind: str
    default: Any
    doc: str
    choices: tuple = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    nonempty: bool = False
    check: Callable[[Any], str | None] | None = None
    when: str = "train"

    def rule(self) -> str:
        """The allowed values, in words: ``an integer >= 1``, ``one of 'a', 'b'``."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        what = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "str": "a string",
            "ints": "a tuple of integers",
            "floats": "a tuple of numbers",
            "dict": "a mapping",
        }[self.kind]
        bounds = [f"{op} {_fmt(v)}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                  if v is not None]  # fmt: skip
        if bounds:
            what += (", each " if self.kind in ("ints", "floats") else " ") + " and ".join(bounds)
        if self.nonempty:
            what = "a non-empty " + what[2:]
        return what

    def problem(self, v) -> str | None:
        """``None`` when ``v`` is allowed, else what is wrong (``"it must be an integer >= 1"``)."""
        bad = f"it must be {self.rule()}"
        if self.kind == "dict":
            return None if isinstance(v, Mapping | ml_collections.ConfigDict) else bad
        if self.kind == "bool":
            return None if isinstance(v, bool) else bad
        if self.kind == "str":
            if not isinstance(v, str) or (self.choices and v not in self.choices):
                return bad + _did_you_mean(v, self.choices)
            return self.check(v) if self.check else None
        if self.kind in ("ints", "floats"):
            if not isinstance(v, tuple | list):
                return bad
            items = list(v)
            if self.nonempty and not items:
                return bad
            for a in items:
                if not _number(a) or (self.kind == "ints" and not float(a).is_integer()) or self._out(a):
                    return bad
            return self.check(tuple(v)) if self.check else None
        if not _number(v) or (self.kind == "int" and not isinstance(v, int)) or not math.isfinite(v) or self._out(v):
            return bad
        return self.check(v) if self.check else None

    def _out(self, a) -> bool:
        a = float(a)
        return (
            (self.ge is not None and not a >= self.ge)
            or (self.gt is not None and not a > self.gt)
            or (self.le is not None and not a <= self.le)
            or (self.lt is not None and not a < self.lt)
        )


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _did_you_mean(v, options) -> str:
    if not isinstance(v, str) or not options:
        return ""
    close = difflib.get_close_matches(v, [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def did_you_mean(name: str, options) -> str:
    """`` (did you mean 'epochs'?)`` when one of ``options`` is close to ``name``, else ``""``."""
    return _did_you_mean(name, list(options))


# ---- constructors -----------------------------------------------------------------------------


def Int(default: int, doc: str, **bounds) -> Field:  # noqa: N802 - a declaration reads like a type
    return Field("int", default, doc, **bounds)


def Float(default: float, doc: str, **bounds) -> Field:  # noqa: N802
    return Field("float", default, doc, **bounds)


def Bool(default: bool, doc: str, **kw) -> Field:  # noqa: N802
    return Field("bool", default, doc, **kw)


def Choice(default: str, doc: str, choices, **kw) -> Field:  # noqa: N802
    return Field("str", default, doc, choices=tuple(choices), **kw)


def Str(default: str, doc: str, check=None, **kw) -> Field:  # noqa: N802
    return Field("str", default, doc, check=check, **kw)


def Ints(default: tuple, doc: str, **bounds) -> Field:  # noqa: N802
    return Field("ints", tuple(default), doc, **bounds)


def Floats(default: tuple, doc: str, **bounds) -> Field:  # noqa: N802
    return Field("floats", tuple(default), doc, **bounds)


def Dict(doc: str) -> Field:  # noqa: N802
    return Field("dict", {}, doc)


def changeable(when: str, fields: dict, *names: str) -> dict:
    """``fields`` with ``names`` marked as changeable ``when`` (``Field.when``): one line beside
    a block's declaration says which fields a later command may change."""
    if when not in WHEN:
        raise ValueError(f"when must be one of {WHEN}, got {when!r}.")
    missing = [n for n in names if n not in fields]
    if missing:
        raise KeyError(f"no field {missing[0]!r} to mark")
    return {k: dataclasses.replace(f, when=when) if k in names else f for k, f in fields.items()}


# ---- blocks ------------------------------------------------------------------------------------


def defaults(fields: Mapping[str, Field]) -> ml_collections.ConfigDict:
    """A ConfigDict of the fields' defaults (a ``Dict`` field: an empty ConfigDict)."""
    return ml_collections.ConfigDict(
        {k: (ml_collections.ConfigDict() if f.kind == "dict" else f.default) for k, f in fields.items()}
    )


def check_block(block, fields: Mapping[str, Field], prefix: str) -> None:
    """Raise ``ValueError`` (one sentence naming the field and its value) on the first unknown
    field of ``block`` or the first value its declaration does not allow."""
    for k in block.keys():
        if k not in fields:
            raise ValueError(f"config field {prefix}{k} does not exist{did_you_mean(k, fields)}; "
                             f"{prefix.rstrip('.') or 'the config'} has {', '.join(fields)}.")  # fmt: skip
    for k, f in fields.items():
        if k in block:
            why = f.problem(block[k])
            if why:
                raise ValueError(f"config field {prefix}{k} has the value {_show(block[k])}; {why}.")


def _show(v) -> str:
    return repr(tuple(v)) if isinstance(v, list) else repr(v)


def changed(block, fields: Mapping[str, Field]) -> list[str]:
    """The fields of ``block`` whose value differs from their declared default."""
    out = []
    for k, f in fields.items():
        if k in block and f.kind != "dict":
            v = block[k]
            same = tuple(v) == tuple(f.default) if f.kind in ("ints", "floats") and isinstance(v, tuple | list) else (
                v == f.default)  # fmt: skip
            if not same:
                out.append(k)
    return out


def describe(block, fields: Mapping[str, Field], prefix: str) -> list[str]:
    """One line per field: ``prefix.name = value   # description [allowed values]``."""
    lines = []
    for k, f in fields.items():
        v = block[k] if k in block else f.default
        if f.kind == "dict":
            v = v.to_dict() if isinstance(v, ml_collections.ConfigDict) else dict(v or {})
        value = _show(v) if f.kind != "dict" else repr(v)
        later = [WHEN_COMMAND[w] for w in WHEN[WHEN.index(f.when) : -1]]
        also = f"; may change at {', '.join(later)}" if later else ""
        lines.append(f"{prefix}{k} = {value}\n    {f.doc} [{f.rule()}{also}]")
    return lines
