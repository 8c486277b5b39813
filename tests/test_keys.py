"""Key material: the stat cache of file hashes, project files, requirements files, editable inputs, settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import MakeProject

from pytest_isoenv import keys
from pytest_isoenv.errors import SpecError
from pytest_isoenv.keys import FileHashes


def aged(path: Path, text: str) -> Path:
    """Write *path* and date it back, so the stat cache trusts it (fresh files may still change in their tick)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


def test_hashes_are_remembered_across_sessions_by_stat(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "hashes"
    folder.parent.mkdir()
    wheel = aged(tmp_path / "a.whl", "one")
    first = FileHashes(folder)
    digest = first.file(wheel)
    first.save()
    assert (folder / "files.tsv").is_file()
    assert folder.stat().st_mode & 0o777 == 0o700

    second = FileHashes(folder)
    assert second._entries[str(wheel)][4] == digest  # loaded, not hashed again
    assert second.file(wheel) == digest
    aged(wheel, "two")  # same size, new content: mtime and ctime move
    assert second.file(wheel) != digest


def test_fresh_files_are_hashed_but_not_remembered(tmp_path: Path) -> None:
    hashes = FileHashes(tmp_path / "hashes")
    fresh = tmp_path / "fresh.txt"
    fresh.write_text("x")
    hashes.file(fresh)
    assert str(fresh) not in hashes._entries


def test_corrupt_hash_file_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    folder = tmp_path / "hashes"
    folder.mkdir()
    (folder / "files.tsv").write_bytes(b"\xff\x00garbage")
    wheel = aged(tmp_path / "a.whl", "one")
    hashes = FileHashes(folder)
    assert hashes.file(wheel) == keys.sha256_file(wheel)
    hashes.save()
    assert str(wheel) in FileHashes(folder)._entries


def test_damaged_lines_and_stale_entries_are_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "hashes"
    folder.mkdir()
    today = int(time.time() // 86400)
    good = "\t".join(["/gone/old.whl", "1", "2", "3", "4", "a" * 64, str(today - 31)])
    (folder / "files.tsv").write_text(f"isoenv-hashes 1\n{good}\nnot\tenough\n")
    hashes = FileHashes(folder)
    assert list(hashes._entries) == ["/gone/old.whl"]
    hashes.file(aged(tmp_path / "new.whl", "x"))
    hashes.save()
    assert list(FileHashes(folder)._entries) == [str(tmp_path / "new.whl")]


def test_without_a_cache_root_hashing_works_uncached(tmp_path: Path) -> None:
    hashes = FileHashes(tmp_path / "no-cache" / "hashes")
    assert hashes.file(aged(tmp_path / "a.whl", "x")) == keys.sha256_file(tmp_path / "a.whl")
    hashes.save()
    assert not (tmp_path / "no-cache").exists()


def test_project_files_skip_tool_folders_at_the_top_only(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for rel in ("pyproject.toml", "src/build/__init__.py", "src/dist/x.py", "build/lib/x.py", ".tox/x", "a.egg-info/x"):
        aged(root / rel, "x")
    aged(root / "src" / "__pycache__" / "m.pyc", "x")
    aged(root / ".isoenv" / "envs" / "k" / "f", "x")

    files = keys.project_files(root, cache_root=root / ".isoenv")

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

    assert keys.project_files(root) == [".gitignore", "pkg/__init__.py", "pyproject.toml"]
    before = FileHashes().tree(root)
    aged(root / "run.log", "changed")
    assert FileHashes().tree(root) == before


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("-r base.txt", ("include", "base.txt", "")),
        ("-rbase.txt", ("include", "base.txt", "")),
        ("--requirement=base.txt", ("include", "base.txt", "")),
        ("--requirement base.txt", ("include", "base.txt", "")),
        ("-c c.txt", ("constraint", "c.txt", "")),
        ("--constraint=c.txt", ("constraint", "c.txt", "")),
        ("-e .", ("editable", ".", "")),
        ("-e ./proj[dev]", ("editable", "./proj[dev]", "")),
        ("-f ./wheels", ("find_links", "./wheels", "")),
        ("./pkg[cli] ; python_version > '3'", ("path", "./pkg", "[cli] ; python_version > '3'")),
        ("alpha-1.0-py3-none-any.whl", ("path", "alpha-1.0-py3-none-any.whl", "")),
        ("pkg @ file:///x/pkg", ("url", "file:///x/pkg", "pkg @ file:///x/pkg")),
        ("requests>=2", ("other", "requests>=2", "")),
        ("--index-url https://x.example", ("other", "--index-url https://x.example", "")),
    ],
)
def test_requirements_lines(line: str, parsed: tuple[str, str, str]) -> None:
    assert keys.parse_line(line) == parsed


def test_requirements_files_are_walked_recursively_and_cycles_end(tmp_path: Path) -> None:
    top = aged(tmp_path / "top.txt", "# comment\nalpha \\\n  >=1\n-r sub/a.txt\n")
    aged(tmp_path / "sub" / "a.txt", "-c ../top.txt\n--requirement=b.txt\n")
    aged(tmp_path / "sub" / "b.txt", "beta\n")

    lines = [(f.name, kind, value) for f, kind, value, _ in keys.walk_requirements(top)]

    assert lines == [
        ("top.txt", "other", "alpha   >=1"),
        ("top.txt", "include", str(tmp_path / "sub" / "a.txt")),
        ("a.txt", "constraint", str(tmp_path / "top.txt")),
        ("a.txt", "include", str(tmp_path / "sub" / "b.txt")),
        ("b.txt", "other", "beta"),
    ]


def test_missing_included_file_names_the_including_file(tmp_path: Path) -> None:
    top = aged(tmp_path / "top.txt", "-r missing.txt\n")
    with pytest.raises(SpecError, match=r"top.txt includes '-r missing.txt', which does not exist"):
        list(keys.walk_requirements(top))


def test_requirements_material_follows_included_files_and_named_projects(
    tmp_path: Path, make_project: MakeProject
) -> None:
    top = aged(tmp_path / "reqs" / "top.txt", "-r more.txt\n./lib\n")
    more = aged(tmp_path / "reqs" / "more.txt", "alpha\n")
    lib = make_project("lib", parent=tmp_path / "reqs")
    before = keys.requirements_material(top, FileHashes())
    aged(more, "beta\n")
    assert keys.requirements_material(top, FileHashes()) != before
    after = keys.requirements_material(top, FileHashes())
    (lib / "lib" / "__init__.py").write_text("CHANGED = 1\n")
    assert keys.requirements_material(top, FileHashes()) != after


def test_absolute_copies_resolve_paths_against_each_files_folder(tmp_path: Path) -> None:
    top = aged(tmp_path / "reqs" / "top.txt", "-e ./edit[dev]\n-r nested/more.txt\nalpha>=1\n")
    aged(tmp_path / "reqs" / "nested" / "more.txt", "../lib ; python_version > '3'\n-f ../wheels\n")
    out = tmp_path / "out"
    out.mkdir()
    assert keys.needs_rewrite(top)

    copies = keys.absolute_copies([top], out)

    reqs = tmp_path / "reqs"
    assert copies[top].read_text().splitlines() == [
        f"-e {reqs / 'edit'}[dev]",
        f"-r {copies[reqs / 'nested' / 'more.txt']}",
        "alpha>=1",
    ]
    assert copies[reqs / "nested" / "more.txt"].read_text().splitlines() == [
        f"{reqs / 'lib'} ; python_version > '3'",
        f"-f {reqs / 'wheels'}",
    ]
    assert not keys.needs_rewrite(aged(tmp_path / "plain.txt", "alpha\n-e git+https://x.example/r.git#egg=r\n"))


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        aged(root / rel, text)
    return root


def inputs(root: Path, environ: dict[str, str] | None = None) -> tuple[set[str], dict[str, object]]:
    files, variables = keys.editable_inputs(root, FileHashes(), environ or {})
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
                "notes.txt": "",
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


def test_uv_cache_keys_env_entries_count_by_value(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"pyproject.toml": '[tool.uv]\ncache-keys = [{ env = "FEATURES" }]\n'})
    assert inputs(root, {"FEATURES": "fast"})[1] == {"FEATURES": "fast"}


def test_editable_sources_stay_out_without_extensions(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"pyproject.toml": "", "pkg/__init__.py": "", "pkg/data.c.txt": ""})
    assert inputs(root)[0] == {"pyproject.toml"}


def test_find_links_folder_counts_by_archive_content(tmp_path: Path) -> None:
    house = tmp_path / "house"
    aged(house / "a-1.0-py3-none-any.whl", "one")
    aged(house / "README", "not an archive")
    first = keys.location_material(str(house), FileHashes())
    assert list(first["files"]) == ["a-1.0-py3-none-any.whl"]
    aged(house / "README", "still not")
    assert keys.location_material(f"file://{house}", FileHashes()) == first
    aged(house / "a-1.0-py3-none-any.whl", "two")
    assert keys.location_material(str(house), FileHashes()) != first
    assert keys.location_material("https://x.example/simple", FileHashes()) == "https://x.example/simple"


def test_relative_find_links_resolve_against_the_base(tmp_path: Path) -> None:
    aged(tmp_path / "wheels" / "a-1.0-py3-none-any.whl", "x")
    assert keys.location_material("wheels", FileHashes(), base=tmp_path)["dir"] == str(tmp_path / "wheels")


@pytest.mark.parametrize("source", ["PIP_CONSTRAINT", "pip config", "UV_CONSTRAINT"])
def test_constraints_named_by_settings_count_by_content(tmp_path: Path, source: str) -> None:
    constraints = aged(tmp_path / "c.txt", "alpha<2\n-c nested.txt\n")
    nested = aged(tmp_path / "nested.txt", "beta<2\n")
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nconstraint = {constraints}\n")
    environ = {
        "PIP_CONSTRAINT": {"PIP_CONSTRAINT": str(constraints), "PIP_CONFIG_FILE": os.devnull},
        "pip config": {"PIP_CONFIG_FILE": str(config)},
        "UV_CONSTRAINT": {"UV_CONSTRAINT": str(constraints), "UV_NO_CONFIG": "1"},
    }[source]
    read = keys.uv_resolution_settings if source.startswith("UV") else keys.pip_resolution_settings
    before = read(environ, FileHashes())
    aged(nested, "beta<3\n")
    assert read(environ, FileHashes()) != before
