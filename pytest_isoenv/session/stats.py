"""What a session did with envs: built, reused, failed, for the run's summary."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """One env a session built or failed to build, as the terminal summary names it."""

    description: str
    python: str
    installer: str
    seconds: float


@dataclass
class Stats:
    """What a session did with envs, by key, for the terminal summary.

    *reused* holds only envs built before this run: an env another test or
    xdist worker of the same run built is counted once, as built.
    """

    reused: set[str] = field(default_factory=set)
    built: dict[str, Outcome] = field(default_factory=dict)
    failed: dict[str, Outcome] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data, as an xdist worker sends it to the controller."""
        return {
            "reused": sorted(self.reused),
            "built": {key: dataclasses.asdict(outcome) for key, outcome in self.built.items()},
            "failed": {key: dataclasses.asdict(outcome) for key, outcome in self.failed.items()},
        }

    def merge(self, data: dict[str, Any]) -> None:
        """Add what another process of the same run (an xdist worker) did, from :meth:`to_json`."""
        self.built.update({key: Outcome(**value) for key, value in data["built"].items()})
        self.failed.update({key: Outcome(**value) for key, value in data["failed"].items()})
        self.reused.update(data["reused"])
        self.reused.difference_update(self.built)
