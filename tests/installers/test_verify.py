"""The verify stage: what a spec asked for that an env's site dirs do not hold."""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import aged

from pytest_isoenv.installers.verify import missing
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
