"""Lock files as ``lock=``: which files are lock files, what they may be combined with, what they name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import MakeProject, uv_lock, write_pylock, write_versions

from pytest_isoenv.errors import SpecError
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.lockfiles import LocalSource, local_sources, locked_packages


def spec(*requirements: object, rootdir: Path, **kwargs: Any) -> EnvSpec:
    return EnvSpec.from_arguments(requirements, rootdir=rootdir, where="tests/test_x.py::test_y", **kwargs)


@pytest.mark.parametrize("name", ["pylock.toml", "pylock.dev.toml"])
def test_pep_751_names_are_lock_files(tmp_path: Path, name: str) -> None:
    lock = write_pylock(tmp_path, name=name)
    assert spec(rootdir=tmp_path, lock=name).lock == lock


@pytest.mark.parametrize("name", ["requirements.txt", "poetry.lock", "pylock.a.b.toml", "lock.toml"])
def test_other_files_are_refused_naming_the_formats_and_the_export(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("")
    with pytest.raises(SpecError) as info:
        spec(rootdir=tmp_path, lock=name)
    message = str(info.value)
    assert f"lock={name!r} is not a lock file" in message
    assert "pylock.toml" in message
    assert "uv.lock" in message
    assert "poetry export" in message
    assert "tests/test_x.py::test_y" in message


def test_a_missing_lock_file_is_named_with_where_it_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"lock file 'sub/pylock.toml' does not exist \(resolved to .*sub"):
        spec(rootdir=tmp_path, lock="sub/pylock.toml")


def test_a_uv_lock_needs_its_project(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("version = 1\n")
    with pytest.raises(SpecError, match=r"uv\.lock with no pyproject\.toml beside it"):
        spec(rootdir=tmp_path, lock="uv.lock")


def test_a_lock_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pylock.toml").write_text("[[packages]\n")
    with pytest.raises(SpecError, match="cannot be read as TOML"):
        spec(rootdir=tmp_path, lock="pylock.toml")


@pytest.mark.parametrize(
    ("requirements", "options", "named"),
    [
        (("alpha",), {}, "requirements"),
        ((), {"groups": "test"}, "groups="),
        ((), {"requirements_files": "reqs.txt"}, "requirements_files="),
        ((), {"constraints": "reqs.txt"}, "constraints="),
    ],
)
def test_a_lock_refuses_what_would_need_a_resolution(
    tmp_path: Path, requirements: tuple[str, ...], options: dict[str, Any], named: str
) -> None:
    write_pylock(tmp_path)
    (tmp_path / "reqs.txt").write_text("alpha\n")
    (tmp_path / "pyproject.toml").write_text('[dependency-groups]\ntest = ["alpha"]\n')
    with pytest.raises(SpecError) as info:
        spec(*requirements, rootdir=tmp_path, lock="pylock.toml", **options)
    message = str(info.value)
    assert f"cannot be combined with {named}" in message
    assert "lock again" in message
    assert "editable=" in message


def test_a_lock_takes_editable_projects_on_top(tmp_path: Path, make_project: MakeProject) -> None:
    write_pylock(tmp_path)
    project = make_project("app")
    made = spec(rootdir=tmp_path, lock="pylock.toml", editable=["app"])
    assert made.editable == (project,)
    assert made.describe() == f"lock {tmp_path.name}/pylock.toml, -e app"


def test_asking_pip_for_a_lock_is_a_usage_error(tmp_path: Path) -> None:
    write_pylock(tmp_path)
    with pytest.raises(SpecError) as info:
        spec(rootdir=tmp_path, lock="pylock.toml", installer="pip")
    message = str(info.value)
    assert "lock='pylock.toml' needs the uv installer" in message
    assert "pytest-isoenv[uv]" in message


def test_the_packages_a_pylock_pins_and_the_files_it_names(tmp_path: Path) -> None:
    wheels = write_versions(tmp_path / "wheels", "alpha", "1.0")
    lock = write_pylock(tmp_path, wheels / "alpha-1.0-py3-none-any.whl")
    with lock.open("a") as stream:
        stream.write('[[packages]]\nname = "app"\nmarker = \'python_version < "3"\'\ndirectory = { path = "app" }\n')
    assert [(p.name, p.version, p.marker) for p in locked_packages(lock)] == [
        ("alpha", "1.0", None),
        ("app", None, 'python_version < "3"'),
    ]
    assert local_sources(lock) == [
        LocalSource("file", wheels / "alpha-1.0-py3-none-any.whl"),
        LocalSource("tree", tmp_path / "app"),
    ]


def test_a_uv_lock_names_the_wheels_of_its_find_links_folder_but_not_its_project(
    tmp_path: Path, make_project: MakeProject
) -> None:
    wheels = write_versions(tmp_path / "wheels", "alpha", "1.0")
    project = make_project("app", dependencies=["alpha"])
    lock = uv_lock(project, wheels)
    assert local_sources(lock) == [LocalSource("file", wheels / "alpha-1.0-py3-none-any.whl")]
