"""The files a local project holds: what git lists in a work tree, else every file, without tool folders."""

from __future__ import annotations

import os
import re
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
    ``.gitignore`` leaves out), the files of its submodules listed the same way; elsewhere every file.
    Either way the files inside symlinked folders too, under the link's path (a build reads them there),
    and not VCS and tool folders at the top (``.git``, ``.tox``, ``build``, ``dist``, ``*.egg-info``...),
    ``__pycache__``, bytecode, nor *cache_root*. A snapshot of exactly these files is what a local
    project is built from (:mod:`pytest_isoenv.installers.snapshot`).
    """
    listed = _git_files(root)
    if listed is None:
        listed = _walk(root, top=True)
    skip = None
    if cache_root is not None and cache_root.is_relative_to(root) and cache_root != root:
        skip = cache_root.relative_to(root).as_posix() + "/"
    return sorted(
        {
            rel
            for rel in listed
            if not _skipped_at_top(rel.split("/", 1)[0])
            and not rel.endswith((".pyc", ".pyo"))
            and "__pycache__/" not in rel
            and not (skip and rel.startswith(skip))
        }
    )


# A tracked entry of ``git ls-files -s``: mode, object name, stage, a tab, then the path.
_STAGED = re.compile(r"(\d{6}) [0-9a-f]{40,64} \d\t")
# The modes of regular files: neither a symbolic link (120000), which may name a folder, nor a submodule (160000).
_PLAIN_FILES = frozenset({"100644", "100755"})


def _skipped_at_top(name: str) -> bool:
    return name in _TOP_LEVEL_SKIP or name.endswith(".egg-info")


def _walk(root: Path, *, top: bool) -> list[str]:
    """Every file under *root*, symlinked folders followed (each real folder once, so link cycles end).

    With *top*, the tool folders at *root*'s top are not entered.
    """
    listed: list[str] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            info = Path(dirpath).stat()
        except OSError:
            dirnames[:] = []
            continue
        if (info.st_dev, info.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        at_top = dirpath == str(root)
        dirnames[:] = [d for d in dirnames if not (d == "__pycache__" or (top and at_top and _skipped_at_top(d)))]
        rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
        listed += [name if at_top else f"{rel}/{name}" for name in filenames]
    return listed


def _git_files(root: Path) -> list[str] | None:
    """The files git lists in *root* (see :func:`_git_list`), or ``None`` when *root* is no project git lists."""
    files = _git_list(root)
    # A project git ignores as a whole (inside an ignored folder of another repository) is walked instead.
    if files is None or not any(name in files for name in PROJECT_FILES):
        return None
    return files


def _git_list(root: Path) -> list[str] | None:
    """``git ls-files -co --exclude-standard`` in *root*, folders it names entered; ``None`` outside a work tree.

    git names a submodule (and an untracked repository inside) as one folder entry, and a symlinked
    folder as one link: the files in them are listed instead, a submodule's as git lists them there.
    """
    try:
        # -s: a tracked entry comes with its mode, so only links, submodules and untracked entries need a look.
        proc = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "-cos", "--exclude-standard"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    files = []
    for entry in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
        staged = _STAGED.match(entry)
        name = entry[staged.end() :] if staged else entry
        if not name:
            continue
        if staged and staged.group(1) in _PLAIN_FILES:
            files.append(name)  # a regular file git tracks (or one deleted since: it counts as missing)
            continue
        path = root / name.rstrip("/")
        if not path.is_dir():
            files.append(name)  # a file, or a tracked file deleted since: it counts as missing
            continue
        name = name.rstrip("/")
        # Only a folder with a repository of its own: in an uninitialised submodule git would list the outer one.
        inner = _git_list(path) if not path.is_symlink() and (path / ".git").exists() else None
        files += [f"{name}/{rel}" for rel in (_walk(path, top=False) if inner is None else inner)]
    return files
