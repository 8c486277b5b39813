"""What one session was told to do: its choices from command-line options and ini keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_isoenv.spec.index import IndexOptions


@dataclass(frozen=True)
class Settings:
    """The session's choices, from command-line options and ini keys."""

    cache_dir: Path
    rootdir: Path
    run_id: str
    index: IndexOptions = field(default_factory=IndexOptions)
    installer: str | None = None
    rebuild: bool = False
    lock_timeout: float = -1
    worker: str | None = None  # the xdist worker id, when this session is one
    with_requirements: tuple[str, ...] = ()
    """Canonical requirements every env gets in place of its own of the same names (``--isoenv-with``)."""
    resolution: str = "highest"
    """Which versions installers pick (``--isoenv-resolution``)."""
