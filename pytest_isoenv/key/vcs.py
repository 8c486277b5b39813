"""Versions from VCS state: whether a local project's build takes its version from git, and the state that decides it.

setuptools-scm, hatch-vcs and pdm-backend's ``scm`` source make a version from
the nearest tag, the commits since it and the commit itself, none of which is a
file of the project. For such a project the key also covers that state, read
cheaply as ``git describe`` gives it; the build sees the same state through the
snapshot's own git repository (:mod:`pytest_isoenv.installers.snapshot`).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from pytest_isoenv.tomlfile import as_table, read_toml_if_valid

# The build requirements that make a version from VCS state.
_VCS_BACKENDS = re.compile(r"^\s*(setuptools[-_]scm|hatch[-_]vcs|vcs[-_]versioning)\b", re.IGNORECASE)


def version_from_vcs(project: Path) -> bool:
    """Whether *project*'s build takes its version from VCS state (setuptools-scm, hatch-vcs, pdm's ``scm``)."""
    pyproject = read_toml_if_valid(project / "pyproject.toml")
    tool = as_table(pyproject.get("tool"))
    requires = as_table(pyproject.get("build-system")).get("requires")
    if isinstance(requires, list) and any(isinstance(r, str) and _VCS_BACKENDS.match(r) for r in requires):
        return True
    if "setuptools_scm" in tool or as_table(as_table(tool.get("hatch")).get("version")).get("source") == "vcs":
        return True
    if as_table(as_table(tool.get("pdm")).get("version")).get("source") == "scm":
        return True
    try:
        return "use_scm_version" in (project / "setup.py").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``git -C root *args``, reading only: optional locks off, so not even git's index is refreshed in place."""
    return subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        check=False,
    )


def vcs_material(project: Path) -> Any:
    """The VCS state a version is made from, for a project whose build takes one (else ``None``).

    ``git describe --tags --long`` with the full commit: the nearest tag, the commits since it and the
    commit. Whether the tree is dirty counts through the project's files. ``None`` outside git, where a
    VCS version has no state to read.
    """
    if not version_from_vcs(project):
        return None
    try:
        proc = git(project, "describe", "--tags", "--long", "--always", "--abbrev=40")
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None
