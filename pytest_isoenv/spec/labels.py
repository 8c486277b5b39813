"""Names people recognise for what an env is made of: a project by its name and version, a wheel as
``name==version``, a file by its path from the rootdir.

Used by :meth:`~pytest_isoenv.spec.envspec.EnvSpec.describe`, which the progress lines, the
summary, ``--isoenv-list`` and the errors show.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

from pytest_isoenv.tomlfile import read_toml


def source_label(path: Path, extras: str = "") -> str:
    """A local project, wheel or sdist as people name it, with its *extras*: ``greeter[cli] 0.1``, ``alpha==1.0``."""
    if path.is_dir():
        return project_label(path, extras)
    try:
        if path.name.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(path.name)
        else:
            name, version = parse_sdist_filename(path.name)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return path.name + extras
    return f"{name}{extras}=={version}"


def project_label(path: Path, extras: str = "") -> str:
    """The project in the folder *path*, with its *extras*, by the name and version its metadata gives."""
    name, version = _project_metadata(path)
    return f"{name}{extras} {version}" if version else f"{name}{extras}"


@functools.cache
def _project_metadata(path: Path) -> tuple[str, str | None]:
    """The project in the folder *path* by the name and version its ``pyproject.toml`` gives.

    A version the build works out (``dynamic``) is not known before a build: the name alone. A
    project without ``[project]`` metadata (``setup.py`` only) goes by its folder's name. Read once
    per process: a name for people, not a part of any key.
    """
    try:
        project = read_toml(path / "pyproject.toml").get("project", {})
    except (OSError, ValueError):
        return path.name, None
    if not isinstance(project, dict):
        return path.name, None
    name, version = project.get("name"), project.get("version")
    if not isinstance(name, str) or not name.strip():
        return path.name, None
    return name.strip(), version.strip() if isinstance(version, str) and version.strip() else None


def file_label(path: Path, rootdir: Path | None) -> str:
    """A requirements, constraints or lock file by its path relative to *rootdir* (``requirements/dev.txt``).

    A file outside the rootdir keeps its full path: ``../`` chains read worse than the path itself.
    """
    if rootdir is not None and path.is_relative_to(rootdir):
        return os.path.relpath(path, rootdir)
    return str(path)
