"""PEP 735 dependency groups: the requirements a ``[dependency-groups]`` table of a pyproject.toml names.

An env asks for groups by name (``groups=["test"]``, read from the rootdir's
pyproject.toml) or by file and name (``groups=["sub/pyproject.toml:test"]``,
the spelling uv uses). Groups are resolved here, ``{include-group = ...}``
entries included, into plain requirements: what every installer can install,
and what the env is keyed by.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_isoenv.errors import SpecError
from pytest_isoenv.tomlfile import read_toml

_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def normalize_group(name: str) -> str:
    """A group name as PEP 735 compares them: like a package name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split_group(text: str, rootdir: Path) -> tuple[Path, str]:
    """The pyproject.toml and the group name a ``groups=`` entry names (``"test"`` or ``"path:test"``)."""
    path, _, name = text.strip().rpartition(":")
    if not path:
        return rootdir / "pyproject.toml", name.strip()
    file = Path(os.path.abspath(rootdir / os.path.expanduser(path.strip())))
    return (file / "pyproject.toml" if file.is_dir() else file), name.strip()


def resolve(pyproject: Path, name: str, *, where: str | None = None, given: str | None = None) -> tuple[str, ...]:
    """The requirement strings of group *name* of *pyproject*, included groups expanded, in the order written.

    Raises :class:`SpecError` for a missing file, group or include, a cycle, or
    an entry that is neither a requirement nor an include.
    """
    given = given or name
    if not _NAME.match(name):
        raise SpecError(
            f"groups entry {given!r} does not name a dependency group",
            where=where,
            fix='Use a group name such as "test", or "path/to/pyproject.toml:test" for another project\'s group',
        )
    table = _read_table(pyproject, where=where, given=given)
    return tuple(_expand(table, normalize_group(name), pyproject, where, given, ()))


def _read_table(pyproject: Path, *, where: str | None, given: str) -> Mapping[str, Any]:
    try:
        data = read_toml(pyproject)
    except FileNotFoundError:
        raise SpecError(
            f"groups entry {given!r}: {pyproject} does not exist",
            where=where,
            fix='Groups are read from the rootdir\'s pyproject.toml; name another with "path/to/pyproject.toml:group"',
        ) from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"groups entry {given!r}: cannot read {pyproject} ({exc})", where=where) from None
    table = data.get("dependency-groups", {})
    if not isinstance(table, dict):
        raise SpecError(f"groups entry {given!r}: [dependency-groups] of {pyproject} is not a table", where=where)
    return {normalize_group(key): value for key, value in table.items()}


def _expand(
    table: Mapping[str, Any], name: str, pyproject: Path, where: str | None, given: str, seen: tuple[str, ...]
) -> list[str]:
    if name in seen:
        cycle = " -> ".join([*seen, name])
        raise SpecError(f"groups entry {given!r}: the groups of {pyproject} include each other ({cycle})", where=where)
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise SpecError(
            f"groups entry {given!r}: {pyproject} has no dependency group {name!r} (it has: {known})",
            where=where,
            fix="Add the group to [dependency-groups], or fix the name",
        )
    entries = table[name]
    if not isinstance(entries, list):
        raise SpecError(f"groups entry {given!r}: group {name!r} of {pyproject} is not a list", where=where)
    requirements: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            requirements.append(entry)
        elif isinstance(entry, dict) and set(entry) == {"include-group"} and isinstance(entry["include-group"], str):
            included = normalize_group(entry["include-group"])
            requirements += _expand(table, included, pyproject, where, given, (*seen, name))
        else:
            raise SpecError(
                f"groups entry {given!r}: group {name!r} of {pyproject} has an entry {entry!r} that is neither a "
                'requirement string nor {include-group = "..."}',
                where=where,
            )
    return requirements
