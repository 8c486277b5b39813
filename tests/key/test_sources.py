"""The local sources an env's distributions came from: found from their origins, checked by content."""

from __future__ import annotations

from pathlib import Path

import isoenv_testbackend as backend
from helpers import aged

from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.sources import changed_source, local_sources


def project(root: Path, body: str = "") -> Path:
    aged(root / "pyproject.toml", '[project]\nname = "p"\nversion = "0.1"\n')
    aged(root / "p" / "__init__.py", body)
    return root


def test_each_local_origin_is_a_source_of_its_kind_and_remote_or_vcs_ones_are_not(tmp_path: Path) -> None:
    wheel = aged(tmp_path / "w" / "alpha-1.0-py3-none-any.whl", "wheel")
    tree, editable = project(tmp_path / "tree"), project(tmp_path / "edit")
    origins = {
        "alpha": {"url": wheel.as_uri(), "archive_info": {}},
        "tree": {"url": tree.as_uri(), "dir_info": {}},
        "edit": {"url": editable.as_uri(), "dir_info": {"editable": True}},
        "remote": {"url": "https://example.org/remote-1.0.tar.gz", "archive_info": {}},
        "vcs": {"url": tree.as_uri(), "vcs_info": {"vcs": "git", "commit_id": "0" * 40}},
    }
    sources = local_sources(origins, dict.fromkeys(origins, "1.0"), [], FileHashes())

    assert [(s["kind"], s["path"]) for s in sources] == [
        ("editable", str(editable)),
        ("file", str(wheel)),
        ("tree", str(tree)),
    ]
    assert all(s["sha256"] for s in sources)
    assert changed_source(sources, FileHashes()) is None


def test_what_lies_inside_the_cache_is_no_source(tmp_path: Path) -> None:
    snapshot = project(tmp_path / "cache" / "envs" / "k" / "1" / "snapshot")
    hashes = FileHashes(cache_root=tmp_path / "cache")
    assert local_sources({"p": {"url": snapshot.as_uri(), "dir_info": {}}}, {"p": "0.1"}, [], hashes) == []


def test_a_distribution_without_origin_is_found_in_local_find_links_by_name_and_version(tmp_path: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    wheel = backend.write_wheel(house, "Gamma_Pkg", "1.0")
    backend.write_wheel(house, "Gamma_Pkg", "2.0")
    sdist = aged(house / "gamma_pkg-1.0.tar.gz", "sdist")
    aged(house / "notes.txt", "")
    aged(house / "bad-name.whl", "")
    packages = {"gamma-pkg": "1.0", "pip": "25.0"}

    sources = local_sources({}, packages, ["house", "https://example.org/links"], FileHashes(), base=tmp_path)

    assert [s["path"] for s in sources] == sorted([str(wheel), str(sdist)])


def test_a_changed_file_or_project_is_told_and_an_editable_project_only_by_what_its_install_reads(
    tmp_path: Path,
) -> None:
    wheel = aged(tmp_path / "alpha-1.0-py3-none-any.whl", "wheel")
    tree, editable = project(tmp_path / "tree"), project(tmp_path / "edit")
    origins = {
        "alpha": {"url": wheel.as_uri(), "archive_info": {}},
        "tree": {"url": tree.as_uri(), "dir_info": {}},
        "edit": {"url": editable.as_uri(), "dir_info": {"editable": True}},
    }
    sources = local_sources(origins, dict.fromkeys(origins, "1.0"), [], FileHashes())

    aged(editable / "p" / "__init__.py", "VALUE = 'live in the env'\n")  # an editable project's code is live
    assert changed_source(sources, FileHashes()) is None
    aged(tree / "p" / "__init__.py", "VALUE = 'new'\n")
    assert (
        changed_source(sources, FileHashes()) == f"the project {tree} it was installed from changed since it was built"
    )
    aged(tree / "p" / "__init__.py", "")
    aged(editable / "pyproject.toml", '[project]\nname = "p"\nversion = "0.2"\n')
    assert changed_source(sources, FileHashes()) == (
        f"the editable project {editable} it was installed from changed since it was built"
    )
    aged(editable / "pyproject.toml", '[project]\nname = "p"\nversion = "0.1"\n')
    wheel.unlink()
    assert changed_source(sources, FileHashes()) == f"the file {wheel} it was installed from changed since it was built"
