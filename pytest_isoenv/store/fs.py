"""File-system safety for the cache: ownership, symlinks, modes, atomic writes, and removal by renaming first.

Everything here refuses rather than follows: a cache path that is a symlink, that
someone else owns or can write to, is an error, never a place to write into.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pytest_isoenv.errors import CacheError


def write_atomic(path: Path, text: str) -> None:
    """Write *text* to *path* so that readers see the old content or the new, never a part of it."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def make_private_dir(path: Path) -> None:
    """Create *path* (and its parents) private to the user; a symlink is left for :func:`check_owned` to refuse."""
    if not path.is_symlink():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)


def check_owned(path: Path, *, mode: bool = True) -> None:
    """Refuse a cache path that someone else could swap (a symlink) or put code in (theirs, or writable).

    *mode* also refuses group- or world-writable folders; envs are left out of that,
    as virtualenv creates them with the user's umask inside the private root.
    Raises :class:`FileNotFoundError` if *path* does not exist.
    """
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise CacheError(
            f"the isoenv cache path {path} is a symlink; refusing it (another user could redirect it). "
            "Point --isoenv-cache-dir at a real directory of your own, or remove the link"
        )
    if sys.platform == "win32":
        return
    if info.st_uid != os.getuid():
        raise CacheError(
            f"the isoenv cache path {path} is owned by uid {info.st_uid}, not by you (uid {os.getuid()}); "
            "refusing to run code from it. Point --isoenv-cache-dir at a directory of your own"
        )
    if mode and stat.S_IMODE(info.st_mode) & 0o022:
        raise CacheError(
            f"the isoenv cache path {path} is writable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"refusing to run code from it. Fix it with: chmod go-w {path}"
        )


def check_not_link(path: Path, what: str) -> None:
    """Refuse a file the cache is about to write or lock if it is a symlink (it would write through it)."""
    if path.is_symlink():
        raise CacheError(
            f"the {what} {path} is a symlink; refusing to follow it. Remove the link "
            "(nothing but pytest-isoenv should write into the cache dir)"
        )


def file_signature(path: Path) -> list[int] | None:
    """What changes when a file is replaced or rewritten (inode, size, mtime), or ``None`` if it is gone."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def tree_size(path: Path) -> int:
    """Bytes used by the files under *path*, a file with several hard links counted once; links not followed."""
    seen: set[tuple[int, int]] = set()
    total = 0
    if path.is_symlink():
        return 0
    folders = [os.fspath(path)]
    while folders:  # scandir: its entries carry what lstat says of each, without a Path per file
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(entry.path)
                            continue
                        if entry.is_symlink():
                            continue
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if (info.st_dev, info.st_ino) not in seen:
                        seen.add((info.st_dev, info.st_ino))
                        total += info.st_size
        except OSError:
            continue
    return total


def move_aside(path: Path, trash: Path) -> Path | None:
    """Rename *path* into *trash*, so no reader ever sees it half-deleted; where it is now, or ``None``."""
    if not path.exists() and not path.is_symlink():
        return None
    target = trash / f"{path.name}-{uuid.uuid4().hex[:8]}"
    try:
        path.rename(target)
    except OSError:
        target = path
    return target


def delete(target: Path) -> None:
    """Delete a file, folder or link; a link is removed itself, never followed."""
    if target.is_symlink() or target.is_file():
        with contextlib.suppress(OSError):
            target.unlink()
    else:
        shutil.rmtree(target, ignore_errors=True)


#: Removals run at once: deleting a folder waits on the disk (a journal, a discard) more than on a CPU,
#: so a prune of hundreds of envs overlaps those waits rather than adding them up.
DELETE_WORKERS = 16


class Deletions:
    """Deletes each path it is given as :func:`delete` does, in the background, several at a time.

    A ``with`` block waits for every deletion at its end. A prune hands over each env as soon as it is
    in the trash, so the disk's waits overlap the listing and moving of the next ones.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Deletions:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def add(self, target: Path) -> None:
        """Start deleting *target* (a thread pool starts with the first)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=DELETE_WORKERS, thread_name_prefix="isoenv-delete")
        self._pool.submit(delete, target)


def delete_all(targets: Iterable[Path]) -> None:
    """Delete every one of *targets* as :func:`delete` does, several at a time."""
    with Deletions() as deletions:
        for target in targets:
            deletions.add(target)
