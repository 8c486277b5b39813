"""A project's files, and what an editable install of it depends on (dynamic metadata, extensions, cache-keys)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import aged

from pytest_isoenv.key import projects
from pytest_isoenv.key.files import project_files
from pytest_isoenv.key.hashing import FileHashes


def test_project_files_skip_tool_folders_at_the_top_only(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for rel in ("pyproject.toml", "src/build/__init__.py", "src/dist/x.py", "build/lib/x.py", ".tox/x", "a.egg-info/x"):
        aged(root / rel, "x")
    aged(root / "src" / "__pycache__" / "m.pyc", "x")
    aged(root / ".isoenv" / "envs" / "k" / "f", "x")

    files = project_files(root, cache_root=root / ".isoenv")

    assert files == ["pyproject.toml", "src/build/__init__.py", "src/dist/x.py"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_project_files_leave_out_what_git_ignores(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    aged(root / "pyproject.toml", "x")
    aged(root / "pkg" / "__init__.py", "x")
    aged(root / ".gitignore", "*.log\ngenerated/\n")
    aged(root / "run.log", "x")
    aged(root / "generated" / "big.bin", "x")
    subprocess.run(["git", "init", "-q", str(root)], check=True)

    assert project_files(root) == [".gitignore", "pkg/__init__.py", "pyproject.toml"]
    before = FileHashes().tree(root)
    aged(root / "run.log", "changed")
    assert FileHashes().tree(root) == before


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        aged(root / rel, text)
    return root


def inputs(root: Path, environ: dict[str, str] | None = None) -> tuple[set[str], dict[str, object]]:
    files, variables = projects.editable_inputs(root, FileHashes(), environ or {})
    return {os.path.relpath(f, root) for f in files if f.exists()}, variables


BASE = {"setup.cfg", "pyproject.toml"}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "pyproject.toml": "[tool.setuptools.dynamic]\n"
                'dependencies = {file = ["requirements.txt"]}\n'
                'optional-dependencies.cli = {file = "cli.txt"}\n'
                'version = {attr = "pkg.about.VERSION"}\n'
                'readme = {file = ["README.md"]}\n',
                "requirements.txt": "",
                "cli.txt": "",
                "README.md": "",
                "src/pkg/about.py": "",
            },
            {"requirements.txt", "cli.txt", "README.md", "src/pkg/about.py"},
            id="setuptools-dynamic",
        ),
        pytest.param(
            {
                "setup.cfg": "[metadata]\nversion = attr: pkg.__version__\nlong_description = file: README.rst, CHANGES.rst\n"
                "[options]\npackage_dir =\n    =lib\ninstall_requires = file: reqs.in\n",
                "lib/pkg/__init__.py": "",
                "README.rst": "",
                "CHANGES.rst": "",
                "reqs.in": "",
            },
            {"lib/pkg/__init__.py", "README.rst", "CHANGES.rst", "reqs.in"},
            id="setup.cfg",
        ),
        pytest.param(
            {"pyproject.toml": '[tool.hatch.version]\npath = "src/pkg/__about__.py"\n', "src/pkg/__about__.py": ""},
            {"src/pkg/__about__.py"},
            id="hatchling",
        ),
        pytest.param(
            {
                "pyproject.toml": '[build-system]\nbuild-backend = "flit_core.buildapi"\n'
                '[project]\nname = "my-pkg"\ndynamic = ["version", "description"]\n',
                "my_pkg/__init__.py": "",
            },
            {"my_pkg/__init__.py"},
            id="flit-core",
        ),
        pytest.param(
            {"pyproject.toml": '[tool.pdm.version]\nsource = "file"\npath = "pkg/v.py"\n', "pkg/v.py": ""},
            {"pkg/v.py"},
            id="pdm-backend",
        ),
        pytest.param(
            {
                "pyproject.toml": '[tool.uv]\ncache-keys = [{ file = "deps/*.in" }, { git = { commit = true } }, "x.cfg"]\n',
                "deps/a.in": "",
                "deps/b.in": "",
                "x.cfg": "",
            },
            {"deps/a.in", "deps/b.in", "x.cfg"},
            id="uv-cache-keys",
        ),
        pytest.param(
            {
                "setup.py": "from setuptools import Extension, setup\n",
                "src/fast.c": "",
                "src/fast.h": "",
                "docs/notes.txt": "",
            },
            {"setup.py", "src/fast.c", "src/fast.h"},
            id="setup.py-extension",
        ),
        pytest.param(
            {"meson.build": "", "pkg/_speed.pyx": "", "pkg/__init__.py": ""},
            {"meson.build", "pkg/_speed.pyx"},
            id="meson-cython",
        ),
    ],
)
def test_editable_inputs_of_common_backends(tmp_path: Path, files: dict[str, str], expected: set[str]) -> None:
    found, _ = inputs(write(tmp_path / "p", files))
    assert found == expected | (BASE & set(files)) | ({"setup.py"} & set(files))


def test_editable_inputs_are_every_file_at_the_top_a_backend_may_run_or_read(tmp_path: Path) -> None:
    top = ["hatch_build.py", "setup.py", "MANIFEST.in", "requirements.txt", "tox.ini.cfg", "uv.toml"]
    root = write(tmp_path / "p", {"pyproject.toml": "", **dict.fromkeys(top, ""), "README.md": "", "pkg/x.py": ""})
    (root / "folder.py").mkdir()  # a folder, whatever its name, is no file a backend runs
    assert inputs(root)[0] == {"pyproject.toml", *top}


def test_an_editable_project_with_workspace_sources_counts_its_workspace_roots_file(tmp_path: Path) -> None:
    root = write(
        tmp_path / "ws",
        {
            "pyproject.toml": '[tool.uv.workspace]\nmembers = ["packages/*"]\nexclude = ["packages/out"]\n',
            "packages/lib/pyproject.toml": "",
            "packages/out/pyproject.toml": "[tool.uv.sources]\nlib = { workspace = true }\n",
            "packages/app/pyproject.toml": "[tool.uv.sources]\nlib = [{ workspace = true, marker = \"os_name == 'posix'\" }]\n",
            "packages/plain/pyproject.toml": '[tool.uv.sources]\nlib = { path = "../lib" }\n',
        },
    )

    assert inputs(root / "packages" / "app")[0] == {"pyproject.toml", str(Path("..", "..", "pyproject.toml"))}
    assert inputs(root / "packages" / "plain")[0] == {"pyproject.toml"}, "only with a workspace source"
    assert inputs(root / "packages" / "out")[0] == {"pyproject.toml"}, "excluded: in no workspace"
    members = [root / "packages" / name for name in ("app", "lib", "plain")]
    assert projects.uv_workspace(root / "packages" / "app") == [root, *members]


def test_uv_cache_keys_env_entries_count_by_value(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"pyproject.toml": '[tool.uv]\ncache-keys = [{ env = "FEATURES" }]\n'})
    assert inputs(root, {"FEATURES": "fast"})[1] == {"FEATURES": "fast"}


def test_editable_sources_stay_out_without_extensions(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"pyproject.toml": "", "pkg/__init__.py": "", "pkg/data.c.txt": ""})
    assert inputs(root)[0] == {"pyproject.toml"}


@pytest.mark.parametrize("content", [b"[project\n", b"[project]\nname = '\xff'\n"], ids=["not-toml", "not-utf-8"])
def test_an_unreadable_pyproject_counts_by_itself(tmp_path: Path, content: bytes) -> None:
    root = write(tmp_path / "p", {"pkg/__init__.py": ""})
    (root / "pyproject.toml").write_bytes(content)
    assert inputs(root) == ({"pyproject.toml"}, {})
