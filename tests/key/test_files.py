"""A project's files: what git lists, a submodule's files, what symlinked folders hold."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import aged

from pytest_isoenv.key.files import project_files
from pytest_isoenv.key.hashing import FileHashes

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs symlinks")


def git(*args: str | Path, cwd: Path) -> None:
    """Run git in *cwd* as a user with a name, allowing submodules from local folders."""
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "protocol.file.allow=always"]
        + [str(a) for a in args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def committed(root: Path) -> Path:
    """*root* made a git repository with everything in it committed."""
    git("init", "-q", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "init", cwd=root)
    return root


@needs_git
def test_a_submodules_files_are_listed_and_count(tmp_path: Path) -> None:
    lib = committed(aged(tmp_path / "lib" / "vendored.py", "A = 1\n").parent)
    root = tmp_path / "proj"
    aged(root / "pyproject.toml", "x")
    committed(root)
    git("submodule", "add", "-q", lib, "third_party/lib", cwd=root)
    before = FileHashes().tree(root)

    assert project_files(root) == [".gitmodules", "pyproject.toml", "third_party/lib/vendored.py"]
    (root / "third_party" / "lib" / "vendored.py").write_text("A = 2\n")
    assert FileHashes().tree(root) != before


@needs_git
def test_an_uninitialised_submodule_lists_nothing(tmp_path: Path) -> None:
    lib = committed(aged(tmp_path / "lib" / "vendored.py", "A = 1\n").parent)
    root = tmp_path / "proj"
    aged(root / "pyproject.toml", "x")
    committed(root)
    git("submodule", "add", "-q", lib, "lib", cwd=root)
    git("commit", "-q", "-m", "sub", cwd=root)
    clone = tmp_path / "clone"
    git("clone", "-q", root, clone, cwd=tmp_path)

    assert project_files(clone) == [".gitmodules", "pyproject.toml"]


@needs_symlinks
@pytest.mark.parametrize("in_git", [False, True], ids=["no-git", "git"])
def test_what_a_symlinked_folder_holds_is_listed_and_counts(tmp_path: Path, in_git: bool) -> None:
    if in_git and shutil.which("git") is None:
        pytest.skip("needs git")
    shared = aged(tmp_path / "shared" / "common.py", "A = 1\n")
    aged(tmp_path / "shared" / "__pycache__" / "common.cpython-311.pyc", "x")
    root = tmp_path / "proj"
    aged(root / "pyproject.toml", "x")
    (root / "pkg").mkdir()
    (root / "pkg" / "common").symlink_to(shared.parent, target_is_directory=True)
    if in_git:
        committed(root)
    before = FileHashes().tree(root)

    assert project_files(root) == ["pkg/common/common.py", "pyproject.toml"]
    shared.write_text("A = 2\n")
    assert FileHashes().tree(root) != before


@needs_symlinks
def test_a_symlink_cycle_is_listed_once(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    aged(root / "pyproject.toml", "x")
    aged(root / "pkg" / "m.py", "x")
    (root / "pkg" / "loop").symlink_to(root / "pkg", target_is_directory=True)

    assert project_files(root) == ["pkg/m.py", "pyproject.toml"]
