"""When the cache was last pruned at a session's end, kept as the modification time of one file in its root.

A session that asked for no env reads it with one ``stat`` and leaves the
prune to a later session while the last one is recent, instead of loading
the cache's code and listing every env at the end of every run. This module
imports nothing else of the package, for that reason.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

#: The file in the cache root whose modification time is when a session's end last pruned the cache.
PRUNED_NAME = "pruned"


def pruned_at(root: Path) -> float | None:
    """When a session's end last pruned the cache at *root*, or ``None`` if it never did (or cannot tell)."""
    try:
        return (root / PRUNED_NAME).stat().st_mtime
    except OSError:
        return None


def note_pruned(root: Path) -> None:
    """Say that the cache at *root* was pruned now. Best effort: a cache that cannot be written is pruned again."""
    # O_NOFOLLOW: a link put in the cache's place is not followed to write elsewhere.
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    with contextlib.suppress(OSError):
        os.close(os.open(root / PRUNED_NAME, flags, 0o600))
        now = time.time()
        os.utime(root / PRUNED_NAME, (now, now), follow_symlinks=False)
