"""Checking single marker and factory arguments: paths resolved against the rootdir, lists of paths, module names.

:meth:`pytest_isoenv.spec.envspec.EnvSpec.from_arguments` validates a whole set of
arguments; these are the checks it repeats for several of them. Each either
returns the value in its normalised form or raises :class:`SpecError` naming the
argument, the value and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pytest_isoenv.errors import SpecError
from pytest_isoenv.spec.reqfiles import ARCHIVE_SUFFIXES, is_url

#: A path as the marker and ``get()`` take it.
PathArg = str | os.PathLike[str]

#: The files that make a folder a Python project.
PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")


def as_paths(value: object, name: str, where: str | None) -> list[PathArg]:
    """Argument *name*: one path or a list of them (``None``: none)."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [as_path(v, name, where) for v in value]
    raise SpecError(f"{name}={value!r} is not a path or a list of paths", where=where)


def as_path(value: object, name: str, where: str | None) -> PathArg:
    """One entry of argument *name*, which must be a path."""
    if isinstance(value, (str, os.PathLike)):
        return value
    raise SpecError(f"{name} entry {value!r} is a {type(value).__name__}, not a path", where=where)


def resolve(value: PathArg, rootdir: Path) -> Path:
    """*value* with ``~`` expanded, made absolute against *rootdir* (``abspath``: links are not resolved)."""
    path = Path(os.path.expanduser(os.fspath(value)))
    return Path(os.path.abspath(rootdir / path))


def find_link(value: PathArg, rootdir: Path) -> str:
    """A find-links location: URLs as given, paths made absolute against *rootdir*."""
    text = os.fspath(value).strip()
    if is_url(text):
        return text
    return str(resolve(text, rootdir))


def local_source(value: PathArg, rootdir: Path, where: str | None) -> Path:
    """A local requirement: a wheel or sdist, or a project folder (see :func:`project_dir`)."""
    path = resolve(value, rootdir)
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        return path
    return project_dir(value, rootdir, where, "local requirement")


def project_dir(value: PathArg, rootdir: Path, where: str | None, what: str) -> Path:
    """*value* resolved: a folder with ``pyproject.toml``, ``setup.py`` or ``setup.cfg``; *what* names it in errors."""
    path = _existing(value, rootdir, where, f"{what} path", Path.exists)
    if not path.is_dir() or not any((path / name).is_file() for name in PROJECT_FILES):
        raise SpecError(
            f"{what} path {os.fspath(value)!r} is not a Python project (resolved to {path})",
            where=where,
            fix="Point it at a directory holding pyproject.toml, setup.py or setup.cfg, or at a wheel or sdist",
        )
    return path


def existing_file(value: PathArg, rootdir: Path, where: str | None, what: str) -> Path:
    """*value* resolved: a file that exists; *what* names it in errors."""
    return _existing(value, rootdir, where, what, Path.is_file)


def _existing(value: PathArg, rootdir: Path, where: str | None, what: str, exists: Callable[[Path], bool]) -> Path:
    path = resolve(value, rootdir)
    if not exists(path):
        raise SpecError(
            f"{what} {os.fspath(value)!r} does not exist (resolved to {path})",
            where=where,
            fix="Relative paths resolve against pytest's rootdir; check the path",
        )
    return path


def module_names(value: object, where: str | None) -> tuple[str, ...]:
    """``preload=``: one dotted module name or a list of them, each checked, in the order given."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)):
        raise SpecError(f"preload={value!r} is not a module name or a list of them", where=where)
    for name in names:
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise SpecError(
                f"preload entry {name!r} is not a module name",
                where=where,
                fix='Use importable dotted names such as "requests" or "mypkg.cli"',
            )
    return tuple(dict.fromkeys(names))
