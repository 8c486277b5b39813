"""Versions from VCS state: which projects take one, and the git state that counts for their key."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import aged

from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.material import editable_material, local_material
from pytest_isoenv.key.vcs import vcs_material, version_from_vcs


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pyproject.toml": '[build-system]\nrequires = ["setuptools>=64", "setuptools_scm[toml]>=8"]\n'}, True),
        ({"pyproject.toml": '[build-system]\nrequires = ["hatchling", "hatch-vcs"]\n'}, True),
        ({"pyproject.toml": "[tool.setuptools_scm]\n"}, True),
        ({"pyproject.toml": '[tool.hatch.version]\nsource = "vcs"\n'}, True),
        ({"pyproject.toml": '[tool.pdm.version]\nsource = "scm"\n'}, True),
        ({"setup.py": "from setuptools import setup\nsetup(use_scm_version=True)\n"}, True),
        ({"pyproject.toml": '[build-system]\nrequires = ["setuptools>=64"]\n[project]\nversion = "1"\n'}, False),
        ({"pyproject.toml": "not toml ["}, False),
    ],
    ids=["setuptools-scm", "hatch-vcs", "scm-table", "hatch-source", "pdm-scm", "setup.py", "static", "broken"],
)
def test_which_projects_take_their_version_from_vcs(tmp_path: Path, files: dict[str, str], expected: bool) -> None:
    for name, text in files.items():
        aged(tmp_path / name, text)
    assert version_from_vcs(tmp_path) is expected


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_new_tag_changes_the_key_of_a_vcs_versioned_project_only(tmp_path: Path) -> None:
    scm, static = tmp_path / "scm", tmp_path / "static"
    aged(scm / "pyproject.toml", "[tool.setuptools_scm]\n")
    aged(static / "pyproject.toml", '[project]\nversion = "1"\n')
    for project in (scm, static):
        git("init", "-q", cwd=project)
        git("add", "-A", cwd=project)
        git("commit", "-q", "-m", "init", cwd=project)
        git("tag", "v1.0", cwd=project)
    before = {p: local_material(p, FileHashes()) for p in (scm, static)}
    assert "vcs" not in before[static], "the keys of other projects stay what they were"
    assert vcs_material(tmp_path / "outside") is None

    for project in (scm, static):
        git("tag", "v1.1", cwd=project)
        git("commit", "-q", "--allow-empty", "-m", "next", cwd=project)
        git("tag", "v1.2", cwd=project)

    assert local_material(scm, FileHashes()) != before[scm]
    assert local_material(static, FileHashes()) == before[static]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_new_tag_changes_the_key_of_an_editable_vcs_versioned_project_only(tmp_path: Path) -> None:
    scm, static = tmp_path / "scm", tmp_path / "static"
    aged(scm / "pyproject.toml", '[build-system]\nrequires = ["setuptools", "hatch-vcs"]\n')
    aged(static / "pyproject.toml", '[project]\nversion = "1"\n')
    for project in (scm, static):
        git("init", "-q", cwd=project)
        git("add", "-A", cwd=project)
        git("commit", "-q", "-m", "init", cwd=project)
        git("tag", "v1.0", cwd=project)
    before = {p: editable_material(p, FileHashes()) for p in (scm, static)}
    assert "vcs" not in before[static], "the keys of other editable projects stay what they were"

    for project in (scm, static):
        git("commit", "-q", "--allow-empty", "-m", "next", cwd=project)  # no file changes
        git("tag", "v1.1", cwd=project)

    assert editable_material(scm, FileHashes()) != before[scm]
    assert editable_material(static, FileHashes()) == before[static]
