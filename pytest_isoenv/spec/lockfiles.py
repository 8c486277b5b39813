"""Lock files an env is made of (``lock=``): a PEP 751 ``pylock.toml`` or a project's ``uv.lock``.

An env asked for with ``lock=`` holds exactly what the file pins: no resolution, hashes checked.
This module says which files are lock files, what packages a ``pylock.toml`` pins (for the check
after a build) and which local files and folders a lock names (for the key, by content: a wheel
in a find-links folder is named in a ``uv.lock`` by its file name alone, with no hash).
"""

from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_isoenv.errors import SpecError
from pytest_isoenv.tomlfile import read_toml

#: PEP 751's names of a lock file: ``pylock.toml`` or ``pylock.<name>.toml``.
PYLOCK_NAME = re.compile(r"^pylock\.([^.]+\.)?toml$")

#: The name of uv's project lock file.
UV_LOCK = "uv.lock"

#: The oldest uv that installs a ``pylock.toml`` and exports a ``uv.lock`` to one.
UV_FOR_LOCKS = (0, 6, 15)

#: What to do when the installer asked for cannot install a lock file.
LOCK_FIX = (
    'Install uv (pip install pytest-isoenv[uv]) and leave installer out of this env (or use installer="uv"), '
    "or drop --isoenv-installer pip"
)


def lock_needs_uv(given: str) -> str:
    """The problem of asking pip to install the lock file *given*."""
    return (
        f"lock={given!r} needs the uv installer: pip cannot install a uv.lock, and reads a pylock.toml only "
        "as an experiment (from pip 26.1), so lock files are installed by uv"
    )


def is_uv_lock(path: Path) -> bool:
    """Whether *path* is a project's ``uv.lock`` (else it is a ``pylock.toml``)."""
    return path.name == UV_LOCK


def check_lock(path: Path, given: str, where: str | None) -> Path:
    """*path* (an existing file, *given* as the user wrote it) if it is a lock file an env can be made of.

    Raises :class:`SpecError` for a file of another name, a ``uv.lock`` with no ``pyproject.toml``
    beside it (uv reads the project's default groups there), or one that is not TOML.
    """
    if not (PYLOCK_NAME.match(path.name) or is_uv_lock(path)):
        raise SpecError(
            f"lock={given!r} is not a lock file pytest-isoenv can install (resolved to {path})",
            where=where,
            fix="Give a PEP 751 pylock.toml (or pylock.<name>.toml) or a project's uv.lock; export other "
            "tools' locks to pylock.toml (poetry export, pdm export -f pylock, uv export --format pylock.toml)",
        )
    if is_uv_lock(path) and not (path.parent / "pyproject.toml").is_file():
        raise SpecError(
            f"lock={given!r} is a uv.lock with no pyproject.toml beside it (in {path.parent})",
            where=where,
            fix="Point lock= at the uv.lock of a project, next to its pyproject.toml",
        )
    read_lock(path, where)
    return path


def read_lock(path: Path, where: str | None = None) -> dict[str, Any]:
    """The parsed lock file *path*, or a :class:`SpecError` saying why it cannot be read."""
    try:
        return read_toml(path)
    except (OSError, ValueError) as exc:
        raise SpecError(
            f"lock file {str(path)!r} cannot be read as TOML ({exc})",
            where=where,
            fix="Write the lock file again with the tool that made it",
        ) from None


@dataclass(frozen=True)
class LockedPackage:
    """One package a ``pylock.toml`` pins."""

    name: str
    """Its name as the lock gives it."""
    version: str | None
    """The version pinned; ``None`` for a package from a folder or VCS, which PEP 751 lets go unversioned."""
    marker: str | None
    """The PEP 508 marker under which it is installed; ``None``: always."""


def locked_packages(path: Path) -> list[LockedPackage]:
    """The packages the ``pylock.toml`` *path* pins, in its order."""
    found = []
    for package in _tables(read_lock(path).get("packages")):
        name = package.get("name")
        if isinstance(name, str):
            version, marker = package.get("version"), package.get("marker")
            found.append(
                LockedPackage(
                    name, version if isinstance(version, str) else None, marker if isinstance(marker, str) else None
                )
            )
    return found


@dataclass(frozen=True)
class LocalSource:
    """A local file or folder a lock file names, which counts for the key by its content."""

    kind: str
    """``"file"`` (a wheel or sdist), ``"tree"`` (a project folder built into the env) or ``"editable"``."""
    path: Path
    """Its absolute path (relative paths in a lock mean the lock's folder)."""


def local_sources(path: Path) -> list[LocalSource]:
    """The local files and folders the lock file *path* installs from, each once, in the lock's order.

    A ``uv.lock``'s own project is left out: the env holds what it pins, not the project (ask
    for that with ``editable=``).
    """
    data = read_lock(path)
    found = _uv_sources(data, path.parent) if is_uv_lock(path) else _pylock_sources(data, path.parent)
    return list(dict.fromkeys(found))


def _pylock_sources(data: dict[str, Any], base: Path) -> Iterator[LocalSource]:
    for package in _tables(data.get("packages")):
        directory = package.get("directory")
        if isinstance(directory, dict) and isinstance(directory.get("path"), str):
            kind = "editable" if directory.get("editable") else "tree"
            yield LocalSource(kind, _local(directory["path"], base))
        for entry in [package.get("archive"), package.get("sdist"), *_tables(package.get("wheels"))]:
            if isinstance(entry, dict):
                target = entry.get("path") or entry.get("url")
                if isinstance(target, str) and (local := _local_file(target, base)) is not None:
                    yield LocalSource("file", local)


def _uv_sources(data: dict[str, Any], base: Path) -> Iterator[LocalSource]:
    for package in _tables(data.get("package")):
        source = package.get("source")
        if not isinstance(source, dict):
            continue
        for kind, key in (("editable", "editable"), ("tree", "directory"), ("file", "path")):
            value = source.get(key)
            if isinstance(value, str) and _local(value, base) != base:
                local = _local(value, base)
                yield LocalSource("file" if local.is_file() else "tree" if kind == "file" else kind, local)
        registry = source.get("registry")
        folder = _local_file(registry, base) if isinstance(registry, str) else None
        for entry in [package.get("sdist"), *_tables(package.get("wheels"))]:
            if isinstance(entry, dict):
                if isinstance(entry.get("path"), str):
                    # A wheel of a find-links folder: uv records its name and no hash.
                    yield LocalSource("file", _local(entry["path"], folder or base))
                elif isinstance(entry.get("url"), str) and (found := _local_file(entry["url"], base)) is not None:
                    yield LocalSource("file", found)


def _tables(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _local(text: str, base: Path) -> Path:
    """A lock's path, absolute: a relative one means *base* (links are not resolved, as elsewhere in the key)."""
    return Path(os.path.abspath(base / text))


def _local_file(text: str, base: Path) -> Path | None:
    """The local path of a lock's path or ``file:`` URL; ``None`` for a remote URL."""
    if text.startswith("file:"):
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(text).path))
    if "://" in text:
        return None
    return _local(text, base)
