"""The local project folders a project's own dependencies name: uv's path and workspace sources, ``file:`` URLs.

An editable project is installed from the user's tree, but the projects its dependencies name by
path are built as any non-editable local project is: from a snapshot
(:mod:`pytest_isoenv.installers.snapshot`), so the build writes nothing into the user's folder. uv
reads ``[tool.uv.sources]``: a ``path`` to a folder, and ``workspace = true``, the member of that
name of the project's uv workspace (:func:`find_workspace`). Both installers read ``name @ file:``
requirements in the project's ``[project]`` table. Only static metadata is read: what a backend
computes is known to the build alone, which builds it where it is, as before.
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pytest_isoenv.key.projects import uv_workspace
from pytest_isoenv.tomlfile import as_table, read_toml_if_valid


def source_folders(project: Path, *, editable: bool) -> dict[str, Path | None]:
    """Each of *project*'s ``[tool.uv.sources]`` by canonical name: the folder it installs non-editable, else ``None``.

    A folder for a ``path`` source naming one, without ``editable = true``, and for a ``workspace =
    true`` source the member's when it is not editable: uv installs a member editable under an
    editable project (*editable*) unless it says ``editable = false``, and non-editable under one
    that is not. The sources of the project's workspace root count under its own, as uv reads them.
    ``None`` for any other source (an index, a git URL, an editable folder, one given as a list of
    tables for several markers): it is uv's, and a ``file:`` URL of the same name is not used.
    """
    workspace = find_workspace(project)
    tables = [(workspace[0], uv_sources(workspace[0])), (project, uv_sources(project))] if workspace else []
    found: dict[str, Path | None] = {}
    for base, sources in tables or [(project, uv_sources(project))]:
        for name, entry in sources.items():
            folder = None
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                named = Path(os.path.abspath(base / entry["path"]))
                folder = named if named.is_dir() and entry.get("editable") is not True else None
            elif isinstance(entry, dict) and entry.get("workspace") is True and workspace:
                folder = None if entry.get("editable", editable) else workspace[1].get(canonicalize_name(name))
            found[canonicalize_name(name)] = folder  # the project's own source replaces the root's
    return found


def uv_sources(project: Path) -> dict[str, Any]:
    """The ``[tool.uv.sources]`` table of *project*'s ``pyproject.toml`` (empty when it has none or is unreadable)."""
    return as_table(as_table(as_table(_pyproject(project).get("tool")).get("uv")).get("sources"))


def static_requirements(project: Path, extras: Iterable[str]) -> list[Requirement] | None:
    """*project*'s ``[project]`` dependencies and those of *extras*, or ``None`` if its metadata does not say them.

    An extra's requirement of the project itself (``app[cli]`` in ``app``'s ``all`` extra) adds that extra's.
    """
    table = as_table(_pyproject(project).get("project"))
    dynamic = _strings(table.get("dynamic"))
    if "dependencies" in dynamic or not isinstance(table.get("name"), str):
        return None
    own = canonicalize_name(table["name"])
    optional = {canonicalize_name(k): v for k, v in as_table(table.get("optional-dependencies")).items()}
    requirements: list[Requirement] = []
    pending, seen = [canonicalize_name(e) for e in extras], set()
    texts = _strings(table.get("dependencies"))
    while True:
        for text in texts:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                return None  # the build says what is wrong with it
            if canonicalize_name(requirement.name) == own:
                pending += [canonicalize_name(e) for e in requirement.extras]
            else:
                requirements.append(requirement)
        pending = [e for e in pending if e not in seen]
        if not pending:
            return requirements
        if "optional-dependencies" in dynamic:
            return None
        extra = pending.pop()
        seen.add(extra)
        texts = _strings(optional.get(extra))


def project_name(project: Path) -> str | None:
    """The canonical name ``[project]`` gives *project*, or ``None``."""
    name = as_table(_pyproject(project).get("project")).get("name")
    return canonicalize_name(name) if isinstance(name, str) else None


def file_folder(requirement: Requirement) -> Path | None:
    """The local folder a ``name @ file:`` requirement names, or ``None`` (another URL, an archive, none)."""
    if requirement.url is None or not requirement.url.startswith("file:"):
        return None
    parsed = urllib.parse.urlsplit(requirement.url)
    if parsed.fragment:  # a subdirectory of it: left to the installer, which builds it where it is
        return None
    path = Path(urllib.request.url2pathname(parsed.path if not parsed.netloc else f"//{parsed.netloc}{parsed.path}"))
    return path if path.is_dir() else None


def find_workspace(project: Path) -> tuple[Path, dict[str, Path]] | None:
    """The root of *project*'s uv workspace (:func:`~pytest_isoenv.key.projects.uv_workspace`) and its members
    by canonical project name; ``None`` outside one. The root is a member when it is a project."""
    found = uv_workspace(project)
    if found is None:
        return None
    members: dict[str, Path] = {}
    for member in found:
        name = as_table(_pyproject(member).get("project")).get("name")
        if isinstance(name, str):
            members.setdefault(canonicalize_name(name), member)
    return found[0], members


def _pyproject(folder: Path) -> dict[str, Any]:
    return read_toml_if_valid(folder / "pyproject.toml")  # missing or broken: the build says so


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
