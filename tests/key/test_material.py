"""Key material: the stat cache of file hashes, requirements files and find-links folders by content, settings."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import isoenv_testbackend as backend
import pytest
from helpers import MakeProject, aged, uv_lock, write_pylock, write_versions

from pytest_isoenv.key import material as keys
from pytest_isoenv.key.hashing import FileHashes, sha256_file
from pytest_isoenv.key.settings import PipConfig
from pytest_isoenv.key.uvconfig import uv_resolution_settings
from pytest_isoenv.spec.envspec import EnvSpec


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
    assert hashes.file(wheel) == sha256_file(wheel)
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
    assert hashes.file(aged(tmp_path / "a.whl", "x")) == sha256_file(tmp_path / "a.whl")
    hashes.save()
    assert not (tmp_path / "no-cache").exists()


def test_trees_and_folders_are_listed_once_per_session(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    aged(project / "pyproject.toml", "x")
    house = tmp_path / "house"
    aged(house / "a-1.0-py3-none-any.whl", "one")
    session = FileHashes()
    tree, folder = session.tree(project), keys.location_material(str(house), session)

    aged(project / "added.py", "y")  # new files: a session that listed the folders keeps its listing
    aged(house / "b-1.0-py3-none-any.whl", "two")

    assert session.tree(project) == tree
    assert keys.location_material(str(house), session) == folder
    assert FileHashes().tree(project) != tree
    assert keys.location_material(str(house), FileHashes()) != folder


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


def test_requirements_material_reads_lines_with_their_variables(tmp_path: Path) -> None:
    top = aged(tmp_path / "top.txt", "alpha==${V}\n")
    one = keys.requirements_material(top, FileHashes(), {"V": "1.0"})
    assert keys.requirements_material(top, FileHashes(), {"V": "2.0"}) != one
    # pip leaves an empty variable as written, uv expands it to nothing: not the same env as an unset one.
    assert keys.requirements_material(top, FileHashes(), {"V": ""}) != keys.requirements_material(top, FileHashes(), {})
    plain = aged(tmp_path / "plain.txt", "alpha==1.0\n")
    assert keys.requirements_material(plain, FileHashes(), {"V": "1.0"}) == [["file", sha256_file(plain)]]


def test_file_url_with_a_variable_counts_by_the_content_it_names(tmp_path: Path) -> None:
    top = aged(tmp_path / "top.txt", "alpha @ file://${HOUSE}/alpha-1.0-py3-none-any.whl\n")
    wheel = aged(tmp_path / "house" / "alpha-1.0-py3-none-any.whl", "one")
    environ = {"HOUSE": str(tmp_path / "house")}
    before = keys.requirements_material(top, FileHashes(), environ)
    assert ["url", {"file": str(wheel), "sha256": sha256_file(wheel)}] in before
    aged(wheel, "two")
    assert keys.requirements_material(top, FileHashes(), environ) != before


@pytest.mark.parametrize("line", ["-e {uri}", "-e {path}[cli]", "--editable={uri}#egg=edit"])
def test_editable_lines_count_the_projects_metadata(tmp_path: Path, make_project: MakeProject, line: str) -> None:
    project = make_project("edit")
    top = aged(tmp_path / "top.txt", line.format(uri=project.as_uri(), path=project) + "\n")
    before = keys.requirements_material(top, FileHashes())
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = []", 'dependencies = ["alpha"]'))
    assert keys.requirements_material(top, FileHashes()) != before


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_a_symlinked_folder_inside_a_local_project_counts_by_its_files(
    tmp_path: Path, make_project: MakeProject
) -> None:
    project = make_project("linked")
    shared = aged(tmp_path / "shared" / "data.py", "VALUE = 1\n").parent
    (project / "linked" / "shared").symlink_to(shared, target_is_directory=True)
    before = keys.local_material(project, FileHashes())
    aged(shared / "data.py", "VALUE = 2\n")
    assert keys.local_material(project, FileHashes()) != before


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
    pip = PipConfig.read(environ)

    def read() -> dict[str, object]:
        # pip's configuration is read once, per installer choice: the files it names count as they are now.
        return (
            uv_resolution_settings(environ, FileHashes()) if source[0] == "U" else pip.resolution_settings(FileHashes())
        )

    before = read()
    aged(nested, "beta<3\n")
    assert read() != before


def test_a_lock_counts_by_its_content(tmp_path: Path, wheelhouse: Path) -> None:
    lock = write_pylock(tmp_path, wheelhouse / "alpha-1.0-py3-none-any.whl")
    before = keys.spec_material(EnvSpec(lock=lock))
    assert keys.spec_material(EnvSpec(lock=lock)) == before
    write_pylock(tmp_path, wheelhouse / "alpha-2.0-py3-none-any.whl")
    assert keys.spec_material(EnvSpec(lock=lock)) != before
    assert "lock" not in keys.spec_material(EnvSpec(requirements=("alpha",))), "other keys stay what they were"


def test_a_uv_lock_counts_its_find_links_wheels_and_its_projects_settings(
    tmp_path: Path, make_project: MakeProject
) -> None:
    wheels = write_versions(tmp_path / "wheels", "alpha", "1.0")
    project = make_project("app", dependencies=["alpha"])
    lock = uv_lock(project, wheels)
    before = keys.spec_material(EnvSpec(lock=lock))
    # uv.lock names a find-links wheel by file name only: a rebuilt wheel of the same name is a new env.
    backend.write_wheel(wheels, "alpha", "1.0", files={"alpha/__init__.py": "VERSION = 'rebuilt'\n"})
    rebuilt = keys.spec_material(EnvSpec(lock=lock))
    assert rebuilt != before
    # The project's pyproject.toml says which dependency groups an export takes.
    with (project / "pyproject.toml").open("a") as stream:
        stream.write("\n[tool.uv]\ndefault-groups = []\n")
    assert keys.spec_material(EnvSpec(lock=lock)) != rebuilt


def test_a_pylock_counts_the_project_folders_it_names_by_content(tmp_path: Path, make_project: MakeProject) -> None:
    project = make_project("app")
    lock = write_pylock(tmp_path)
    with lock.open("a") as stream:
        stream.write('[[packages]]\nname = "app"\ndirectory = { path = "app" }\n')
    before = keys.spec_material(EnvSpec(lock=lock))
    (project / "app" / "__init__.py").write_text("VALUE = 'changed'\n")
    assert keys.spec_material(EnvSpec(lock=lock)) != before
