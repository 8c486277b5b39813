"""The Python matrix: which interpreters a test that uses ``isoenv`` runs on, and what its ids say.

The session's list (``--isoenv-python`` / ``isoenv_python``) is the set of
Pythons a run may use. A test's marker ``python=`` narrows it to the
interpreters that satisfy the marker. A test whose marker matches none of them
is skipped with a reason rather than run on an interpreter the run did not ask
for, so in a CI matrix of one Python per job each test runs in the job(s) for
its Pythons. Without a session list, a marker that lists several Pythons runs
the test once on each.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .discovery import Discovery, Interpreter, spec_label
from .errors import InterpreterNotFound, IsoEnvError, SpecError
from .installers import Installer
from .spec import normalize_python

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
    reason = (
        f"{where} asks for python={marker!r}, which none of this run's Pythons satisfy "
        f"(--isoenv-python: {', '.join(session)})"
    )
    return [PythonParam(spec, spec_label(spec), skip=reason) for spec in wanted]


def report(discovery: Discovery, installer: Installer, session: Sequence[str]) -> list[str]:
    """The lines ``pytest --isoenv-pythons`` prints: every interpreter found, then what the run's specs select."""
    found = discovery.available()
    rows = [("spec", "version", "implementation", "path", "found in")]
    rows += [(i.label, i.version_text, i.implementation, str(i.executable), i.found_in) for i in found]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [f"Python interpreters found ({len(found)}):"]
    for row in rows:
        lines.append("  " + "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[4]]))
    notes = [(i, installer.unsupported(i)) for i in found]
    lines += [f"  {i.label} at {i.executable}: {note}" for i, note in notes if note]
    if session:
        lines.append("--isoenv-python selects:")
        lines += [f"  {spec}: {describe(discovery, spec)}" for spec in session]
    return lines


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
