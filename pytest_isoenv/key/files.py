"""The files a local project holds: what git lists in a work tree, else every file, without tool folders."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pytest_isoenv.spec.arguments import PROJECT_FILES

# Left out of a project's files only at its top: what tools and VCSs keep there. Deeper folders of these names
# are ordinary sources (pypa/build's own package is src/build/).
_TOP_LEVEL_SKIP = frozenset(
    {
        ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".venv", "venv", "build", "dist", "node_modules", ".eggs",
        ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".idea", ".vscode",
    }
)  # fmt: skip


def project_files(root: Path, cache_root: Path | None = None) -> list[str]:
    """The files of a local project that count for its key, as sorted POSIX paths relative to *root*.

    In a git work tree, what ``git ls-files`` lists (tracked and untracked, without what
    ``.gitignore`` leaves out); elsewhere every file. Either way not VCS and tool folders at the top
    (``.git``, ``.tox``, ``build``, ``dist``, ``*.egg-info``...), ``__pycache__``, bytecode, nor *cache_root*.
    """
    listed = _git_files(root)
    if listed is None:
        listed = []
        for dirpath, dirnames, filenames in os.walk(root):
            top = dirpath == str(root)
            dirnames[:] = [d for d in dirnames if not (d == "__pycache__" or (top and _skipped_at_top(d)))]
            rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
            listed += [name if top else f"{rel}/{name}" for name in filenames]
    skip = None
    if cache_root is not None and cache_root.is_relative_to(root) and cache_root != root:
        skip = cache_root.relative_to(root).as_posix() + "/"
    return sorted(
        rel
        for rel in listed
        if not _skipped_at_top(rel.split("/", 1)[0])
        and not rel.endswith((".pyc", ".pyo"))
        and "__pycache__/" not in rel
        and not (skip and rel.startswith(skip))
    )


def _skipped_at_top(name: str) -> bool:
    return name in _TOP_LEVEL_SKIP or name.endswith(".egg-info")


def _git_files(root: Path) -> list[str] | None:
    """``git ls-files -co --exclude-standard`` in *root*, or ``None`` outside a git work tree (or without git)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        return None
    files = [f for f in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if f]
    # A project git ignores as a whole (inside an ignored folder of another repository) is walked instead.
    if proc.returncode != 0 or not any(name in files for name in PROJECT_FILES):
        return None
    return [f for f in files if (root / f).is_file() or not (root / f).exists()]
