"""The verify stage: what a spec asked for that an env's site dirs do not hold."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import MakeProject, aged

from pytest_isoenv.installers.verify import missing, missing_locked
from pytest_isoenv.spec.envspec import EnvSpec


def site_with(site: Path, **versions: str) -> Path:
    for name, version in versions.items():
        aged(
            site / f"{name}-{version}.dist-info" / "METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        )
    return site


def test_a_continued_requirement_is_verified_whole(tmp_path: Path) -> None:
    site = site_with(tmp_path / "site", alpha="2.0", beta="1.0")
    reqs = aged(tmp_path / "reqs.txt", "alpha \\\n  >2\nbeta  # the one we need\n--pre\n-r other.txt\n")
    spec = EnvSpec(requirements_files=(reqs,))
    assert missing(spec, Path(sys.executable), (site,), {}) == ["alpha   >2 is installed at version 2.0"]


def test_a_wheel_named_by_its_file_name_is_not_taken_for_a_requirement(tmp_path: Path) -> None:
    site = site_with(tmp_path / "site", gamma="1.0")
    reqs = aged(tmp_path / "reqs.txt", "gamma-1.0-py3-none-any.whl\n")
    assert missing(EnvSpec(requirements_files=(reqs,)), Path(sys.executable), (site,), {}) == []


def test_a_requirement_with_a_variable_is_verified_as_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = site_with(tmp_path / "site", alpha="1.0")
    reqs = aged(tmp_path / "reqs.txt", "alpha==${ALPHA_VERSION}\n")
    monkeypatch.setenv("ALPHA_VERSION", "2.0")
    assert missing(EnvSpec(requirements_files=(reqs,)), Path(sys.executable), (site,), {}) == [
        "alpha==2.0 is installed at version 1.0"
    ]


def test_an_editable_line_of_a_requirements_file_is_verified(tmp_path: Path, make_project: MakeProject) -> None:
    project = make_project("edit")
    aged(tmp_path / "nested.txt", f"-e {project.as_uri()}\n")
    reqs = aged(tmp_path / "reqs.txt", "-r nested.txt\n")
    site = tmp_path / "site"
    site.mkdir()
    assert missing(EnvSpec(requirements_files=(reqs,)), Path(sys.executable), (site,), {}) == [
        f"{project} is not installed in editable mode"
    ]


def test_a_lock_is_verified_at_the_versions_it_pins_where_its_markers_hold(tmp_path: Path) -> None:
    site = site_with(tmp_path / "site", alpha="2.0", beta="1.0")
    lock = aged(
        tmp_path / "pylock.toml",
        'lock-version = "1.0"\ncreated-by = "tests"\n'
        '[[packages]]\nname = "alpha"\nversion = "1.0"\n'
        '[[packages]]\nname = "Beta"\nversion = "1.0.0"\n'
        '[[packages]]\nname = "gamma"\nversion = "1.0"\n'
        '[[packages]]\nname = "delta"\nversion = "1.0"\nmarker = \'python_version < "3"\'\n',
    )
    assert missing_locked(lock, Path(sys.executable), (site,), {}) == [
        "alpha is pinned at 1.0 but installed at 2.0",
        "gamma (pinned by pylock.toml) is not installed",
    ]
