"""The test matrix: which interpreters and which alternative dependencies a test that uses ``isoenv`` runs on.

The Python matrix
-----------------

The session's list (``--isoenv-pythons`` / ``isoenv_pythons``) is the set of
Pythons a run may use. A test's marker ``python=`` narrows it to the
interpreters that satisfy the marker. A test whose marker matches none of them
is skipped with a reason rather than run on an interpreter the run did not ask
for, so in a CI matrix of one Python per job each test runs in the job(s) for
its Pythons. Without a session list, a marker that lists several Pythons runs
the test once on each.

The dependency matrix
---------------------
A list or tuple in the marker in place of a requirement (or inside
``editable=``, in place of a path) is a set of alternatives: the test runs
once per alternative, several lists cross, and the Python matrix crosses
with them. An alternative that is itself a list stands for several
requirements together. Ids name the chosen alternatives as written, after the
Python: ``test_x[py3.12-attrs==22.*]``.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_isoenv.discovery import Discovery, Interpreter, spec_label
from pytest_isoenv.errors import InterpreterNotFound, IsoEnvError, SpecError
from pytest_isoenv.installers.api import Installer
from pytest_isoenv.plugin.reporting import fit_lines
from pytest_isoenv.run.env import IsolatedEnv
from pytest_isoenv.spec.envspec import normalize_python

_OPERATORS = ("<", ">", "=", "!", "~")


@dataclass(frozen=True)
class PythonParam:
    """One interpreter a test runs on: its spec, its id, and why it is skipped, if it is."""

    spec: str
    label: str
    skip: str | None = None


def split_specs(values: Iterable[str], base: Path) -> list[str]:
    """The specs in repeated and comma-separated *values*, each once by label, paths absolute against *base*.

    A range such as ``>=3.10,<3.13`` stays one spec: a part that starts with
    a comparison joins a previous part that has one.
    """
    specs: list[str] = []
    for value in values:
        parts: list[str] = []
        for part in (p.strip() for p in value.split(",")):
            if part.startswith(_OPERATORS) and parts and any(op in parts[-1] for op in _OPERATORS):
                parts[-1] += f",{part}"
            elif part:
                parts.append(part)
        specs += parts
    return _unique(specs, base)


def _unique(specs: Iterable[str], base: Path, where: str | None = None) -> list[str]:
    """*specs* with paths made absolute, each once by its label: ``3.12`` and ``py312`` are one Python."""
    unique: dict[str, str] = {}
    for spec in (normalize_python(spec, base, where) for spec in specs):
        unique.setdefault(spec_label(spec), spec)
    return list(unique.values())


def marker_pythons(value: object, rootdir: Path, where: str) -> list[str] | None:
    """A marker's ``python=`` as a list of specs (``None``: not given); a single spec is a list of one."""
    if value is None:
        return None
    specs: list[str] = []
    for item in value if isinstance(value, (list, tuple)) else [value]:
        text = os.fspath(item).strip() if isinstance(item, (str, os.PathLike)) else ""
        if not text:
            raise SpecError(
                f"python={value!r} is not an interpreter spec or a list of them",
                where=where,
                fix='Use a version such as "3.12", a list such as ["3.12", "3.13"], or a path to an interpreter',
            )
        specs.append(text)
    return _unique(specs, rootdir, where)


def params_for(
    session: Sequence[str], marker: object, covers: Callable[[str, str], bool], *, rootdir: Path, where: str
) -> list[PythonParam] | None:
    """The interpreters the test *where* runs on, or ``None`` when it is not parametrised over any.

    *session* is the run's list of specs and *marker* the value of the
    test's marker ``python=`` (a spec, a list of them, or ``None``).
    ``covers(spec, wanted)`` says whether a spec of the list satisfies one of
    the marker (:meth:`Discovery.covers`); it is only asked when both are given.
    """
    wanted = marker_pythons(marker, rootdir, where)
    if not session:
        if wanted is None or not isinstance(marker, (list, tuple)):
            return None
        return [PythonParam(spec, spec_label(spec)) for spec in wanted]
    if wanted is None:
        return [PythonParam(spec, spec_label(spec)) for spec in session]
    chosen = [spec for spec in session if any(covers(spec, want) for want in wanted)]
    if chosen:
        return [PythonParam(spec, spec_label(spec)) for spec in chosen]
    # The test id is left out: pytest shows it with the reason, and folds identical reasons into one line.
    reason = f"python={marker!r} is none of this run's Pythons (--isoenv-pythons={','.join(session)})"
    return [PythonParam(spec, spec_label(spec), skip=reason) for spec in wanted]


def report(discovery: Discovery, installer: Installer, session: Sequence[str], width: int | None = None) -> list[str]:
    """The lines ``pytest --isoenv-list-pythons`` prints: every interpreter found, then what the run's specs select.

    Lines are cut to *width* (``None``: whole).
    """
    found = discovery.available()
    rows = [("spec", "version", "implementation", "path", "found in")]
    rows += [(i.label, i.version_text, i.implementation, str(i.executable), i.found_in) for i in found]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [f"Python interpreters found ({len(found)}):"]
    for row in rows:
        lines.append("  " + "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[4]]))
    notes = [(i, installer.unsupported(i)) for i in found]
    lines += [f"  {i.label} at {i.executable}: {note}" for i, note in notes if note]
    lines += [
        f"  too old: {exe} is Python {version}, which no env can be made from (python-discovery cannot query it)"
        for exe, version in sorted(discovery.too_old.items())
    ]
    if session:
        lines.append("--isoenv-pythons selects:")
        lines += [f"  {spec}: {describe(discovery, spec)}" for spec in session]
    return fit_lines(lines, width)


def describe(discovery: Discovery, spec: str) -> str:
    """What *spec* finds, in one line: ``CPython 3.12.1 at /usr/bin/python3.12 (PATH)`` or why nothing."""
    try:
        interpreter: Interpreter = discovery.find(spec)
    except InterpreterNotFound:
        return f"not found (looked in: {', '.join(discovery.looked_in(spec))})"
    except IsoEnvError as exc:
        return str(exc)
    return (
        f"{interpreter.implementation} {interpreter.version_text} at {interpreter.executable} ({interpreter.found_in})"
    )


@dataclass(frozen=True)
class Cell:
    """One combination of alternatives a test runs with: the alternative chosen per list, and its id."""

    chosen: tuple[object, ...]
    label: str


def _slots(args: Sequence[object], kwargs: Mapping[str, object]) -> list[Sequence[object]]:
    """The lists of alternatives of a marker, in order: positional ones, then those inside ``editable=``."""
    slots: list[Sequence[object]] = [arg for arg in args if isinstance(arg, (list, tuple))]
    editable = kwargs.get("editable")
    if isinstance(editable, (list, tuple)):
        slots += [entry for entry in editable if isinstance(entry, (list, tuple))]
    return slots


def alternative_label(value: object) -> str:
    """How an alternative reads in a test id: as written; several requirements joined by ``+``."""
    if isinstance(value, (list, tuple)):
        return "+".join(alternative_label(v) for v in value)
    return os.fspath(value).strip() if isinstance(value, (str, os.PathLike)) else repr(value)


def dependency_cells(args: Sequence[object], kwargs: Mapping[str, object], where: str) -> list[Cell] | None:
    """The cells of the marker's dependency matrix, crossed in order, or ``None`` when it has no lists.

    Raises :class:`SpecError` naming the test *where* for an empty list.
    """
    slots = _slots(args, kwargs)
    if not slots:
        return None
    for slot in slots:
        if not slot:
            raise SpecError(
                f"the isoenv marker has an empty list of alternatives ({slot!r}); a list in place of a "
                "requirement runs the test once per alternative, so an empty one would run it on none",
                where=where,
                fix='Give at least one alternative, as in ["attrs==22.*", "attrs==23.*"], or remove the list',
            )
        for value in slot:
            if isinstance(value, (list, tuple)) and not value:
                raise SpecError(
                    f"the isoenv marker's alternatives {slot!r} include an empty one",
                    where=where,
                    fix="Give each alternative a requirement (or several, as a list)",
                )
    return [
        Cell(tuple(chosen), "-".join(alternative_label(value) for value in chosen))
        for chosen in itertools.product(*slots)
    ]


def choose(
    args: Sequence[object], kwargs: Mapping[str, Any], chosen: Sequence[object] | None, where: str
) -> tuple[list[object], dict[str, Any]]:
    """The marker's arguments with each list of alternatives replaced by the alternative *chosen* for it.

    *chosen* is the test's cell (``None``: the test has none, which is only
    right for a marker without lists; otherwise the reason is raised).
    """
    if not _slots(args, kwargs):
        return list(args), dict(kwargs)
    if chosen is None or len(chosen) != len(_slots(args, kwargs)):
        dependency_cells(args, kwargs, where)  # raises for what made the cells impossible
        raise SpecError(
            "the isoenv marker has lists of alternatives, but the test was not run over them",
            where=where,
            fix="Request the isoenv fixture in the test itself, or remove the lists",
        )
    picks = iter(chosen)

    def flat(items: Iterable[object]) -> list[object]:
        out: list[object] = []
        for item in items:
            if isinstance(item, (list, tuple)):
                pick = next(picks)
                out += list(pick) if isinstance(pick, (list, tuple)) else [pick]
            else:
                out.append(item)
        return out

    new_args = flat(args)
    new_kwargs = dict(kwargs)
    if isinstance(kwargs.get("editable"), (list, tuple)):
        new_kwargs["editable"] = flat(kwargs["editable"])
    return new_args, new_kwargs


def cell_of(params: Mapping[str, Any]) -> str | None:
    """The matrix cell a test's parameters put it in (``py3.12-attrs==22.*``), or ``None`` outside any matrix."""
    parts = []
    if params.get("isoenv_python") is not None:
        parts.append(spec_label(params["isoenv_python"]))
    if params.get("isoenv_alternatives") is not None:
        parts.append("-".join(alternative_label(value) for value in params["isoenv_alternatives"]))
    return "-".join(parts) or None


#: The outcomes the per-cell summary counts, in the order it shows them.
OUTCOMES = ("passed", "failed", "skipped", "error", "xfailed", "xpassed")


def summary_lines(cells: Mapping[str, Counter[str]]) -> list[str]:
    """The per-cell summary: one line per matrix cell with its outcome counts, cells in natural order."""

    def natural(label: str) -> list[Any]:
        return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", label)]

    lines = [f"isoenv matrix: {len(cells)} cell(s)"]
    width = max(map(len, cells), default=0)
    for label in sorted(cells, key=natural):
        counts = cells[label]
        shown = [f"{counts[o]} {o}" for o in OUTCOMES if o in ("passed", "failed", "skipped") or counts[o]]
        lines.append(f"  {label.ljust(width)}  {', '.join(shown)}")
    return lines


def env_off_the_matrix(fixtures: Mapping[str, object], python: str, where: str) -> str | None:
    """Why a test the Python matrix runs on *python* must not use one of its *fixtures*' envs, if it must not.

    An env from ``isoenv_factory.get()`` without ``python=`` follows the
    test's Python only when a test or function-scoped fixture asks for it. One
    that a broader fixture made (for an earlier test off the matrix) is on the
    Python running pytest, which this test did not ask for.
    """
    for name, value in fixtures.items():
        if isinstance(value, IsolatedEnv) and value.spec.python is None:
            return (
                f"{where}: runs on {python} (the Python matrix), but fixture {name!r} gives it an env on the Python "
                f"running pytest ({value.spec.describe()}): a fixture broader than the test is made once for the "
                f"tests on every Python. Make {name!r} function-scoped so that its env follows each test's Python, "
                "or give its isoenv_factory.get() a python= (python=sys.executable to keep the Python running pytest)"
            )
    return None
