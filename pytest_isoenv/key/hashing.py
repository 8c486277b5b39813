"""File content hashes for the key, remembered by ``stat`` so that a warm run hashes only what changed."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pytest_isoenv.key.files import project_files

#: A file changed this recently may change again within the same timestamp tick: hash it, but do not remember it.
_RACY_NS = 2_000_000_000
_STALE_DAYS = 30
_HASHES_FILE = "files.tsv"
_HASHES_VERSION = "isoenv-hashes 1"

_T = TypeVar("_T")


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FileHashes:
    """File content hashes, remembered by ``stat`` (size, mtime, inode, ctime) in ``<cache root>/hashes/``.

    One instance serves a session: trees and folders are listed once per
    instance, until :meth:`forget`. :meth:`save` merges what it learnt into the file on disk (written
    atomically; a corrupt file is ignored and rebuilt; entries unused for
    30 days are dropped). Without a *folder* nothing is remembered between sessions.
    """

    def __init__(self, folder: Path | None = None, *, cache_root: Path | None = None) -> None:
        self.folder = folder
        #: Never part of any project's files, even inside the project (the CI recipe puts it there).
        self.cache_root = cache_root
        self._today = int(time.time() // 86400)
        self._entries = self._load()
        self._dirty: set[str] = set()
        self._memo: dict[tuple[str, str], Any] = {}

    def _load(self) -> dict[str, tuple[int, int, int, int, str, int]]:
        entries: dict[str, tuple[int, int, int, int, str, int]] = {}
        if self.folder is None:
            return entries
        try:
            lines = (self.folder / _HASHES_FILE).read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError):
            return entries
        if lines[0] != _HASHES_VERSION:
            return entries
        for line in lines[1:]:
            parts = line.split("\t")
            try:
                size, mtime, ino, ctime, day = (int(p) for p in parts[1:5] + parts[6:7])
            except ValueError:
                continue  # a damaged line: that file is hashed again
            if len(parts) == 7 and len(parts[5]) == 64:
                entries[parts[0]] = (size, mtime, ino, ctime, parts[5], day)
        return entries

    def file(self, path: Path) -> str:
        """SHA-256 of *path*'s content (raises :class:`OSError` if it cannot be read)."""
        name = str(path)
        st = path.stat()
        signature = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        entry = self._entries.get(name)
        if entry is not None and entry[:4] == signature:
            if entry[5] != self._today:
                self._entries[name] = (*signature, entry[4], self._today)
                self._dirty.add(name)
            return entry[4]
        digest = sha256_file(path)
        if time.time_ns() - st.st_mtime_ns > _RACY_NS and "\t" not in name and "\n" not in name:
            self._entries[name] = (*signature, digest, self._today)
            self._dirty.add(name)
        return digest

    def file_or_none(self, path: Path) -> str | None:
        """SHA-256 of *path*, or ``None`` when it is missing or not a readable file."""
        try:
            return self.file(path)
        except OSError:
            return None

    def tree(self, root: Path) -> str:
        """SHA-256 over a project's files (see :func:`~pytest_isoenv.key.projects.project_files`): paths and contents."""
        return self.once("tree", root, self._tree)

    def _tree(self, root: Path) -> str:
        digest = hashlib.sha256()
        for rel in project_files(root, self.cache_root):
            digest.update(f"{rel}\0{self.file_or_none(root / rel) or '-'}\0".encode())
        return digest.hexdigest()

    def once(self, kind: str, path: Path, compute: Callable[[Path], _T]) -> _T:
        """``compute(path)``, worked out once per instance for each *kind*: a session lists a folder once."""
        if (kind, str(path)) not in self._memo:
            self._memo[kind, str(path)] = compute(path)
        result: _T = self._memo[kind, str(path)]
        return result

    def forget(self, kind: str) -> None:
        """Forget what :meth:`once` worked out for *kind*: its next call for each path computes again."""
        self._memo = {key: value for key, value in self._memo.items() if key[0] != kind}

    def save(self) -> None:
        """Merge the hashes learnt into the file in :attr:`folder`; best effort (a cache, never an error)."""
        if self.folder is None or not self._dirty:
            return
        # Builds running in threads hash their envs' sources meanwhile: work on a copy of what is due.
        dirty = list(self._dirty)
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            on_disk = self._load()  # another process may have saved meanwhile
            merged = {**on_disk, **{n: self._entries[n] for n in dirty if n in self._entries}}
            oldest = self._today - _STALE_DAYS
            lines = [_HASHES_VERSION]
            lines += ["\t".join(map(str, (n, *e))) for n, e in merged.items() if e[5] >= oldest]
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".files-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as stream:
                    stream.write("\n".join(lines))
                os.replace(tmp, self.folder / _HASHES_FILE)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            return
        self._entries.update(merged)
        self._dirty.difference_update(dirty)
