"""The dependency floors in pyproject.toml are the versions constraints/lowest.txt pins (and CI tests)."""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ROOT = Path(__file__).parent.parent


def test_lowest_constraints_pin_every_floor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    floors: dict[str, Version] = {}
    for text in declared:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate():
            [floor] = [s.version for s in requirement.specifier if s.operator == ">="]
            floors[requirement.name] = Version(floor)
    lines = (ROOT / "constraints" / "lowest.txt").read_text(encoding="utf-8").splitlines()
    pinned = {
        name: Version(version)
        for name, version in (line.split("==") for line in lines if line and not line.startswith("#"))
    }
    if "tomli" in floors:  # Python < 3.11 only, where pytest needs it too
        pinned.setdefault("tomli", floors["tomli"])
    assert pinned == floors
