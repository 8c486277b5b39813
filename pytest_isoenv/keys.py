"""The cache key: :func:`compute_key` makes it, from key material this module reads.

An env's key must change whenever a fresh build could differ: a wheel rebuilt
under the same name, a file a requirements file includes, a dynamic-metadata
source of an editable project, a constraints file named by pip's or uv's
configuration. The factory gathers the material of one env (its spec's
:meth:`~pytest_isoenv.spec.EnvSpec.key_material`, its interpreter's and its
installer's) and :func:`compute_key` hashes it into the key: the one function
that produces it.

This module turns what those name into material by content: local projects,
archives and find-links folders, requirements files with what they include,
editable projects by what their metadata reads. It keeps a warm run cheap with
:class:`FileHashes`, which hashes a file only when its ``stat`` changed. Which
files those are is found elsewhere: the lines of requirements files in
:mod:`pytest_isoenv.reqfiles`, a project's files and an editable project's inputs in
:mod:`pytest_isoenv.projects`, and which pip and uv settings count in
:mod:`pytest_isoenv.toolconfig`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import SpecError
from .projects import editable_inputs, project_files
from .reqfiles import ARCHIVE_SUFFIXES, needs_rewrite, walk_requirements

if TYPE_CHECKING:
    from .index import IndexOptions
    from .spec import EnvSpec

#: Bump when the layout of the key material changes, so old entries are never matched.
KEY_FORMAT = 2

#: A file changed this recently may change again within the same timestamp tick: hash it, but do not remember it.
_RACY_NS = 2_000_000_000
_STALE_DAYS = 30
_HASHES_FILE = "files.tsv"
_HASHES_VERSION = "isoenv-hashes 1"

_T = TypeVar("_T")


def compute_key(material: Mapping[str, Any]) -> str:
    """The cache key for a complete key material: a hex SHA-256 of its canonical JSON."""
    blob = json.dumps({"format": KEY_FORMAT, **material}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


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
    instance. :meth:`save` merges what it learnt into the file on disk (written
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
        """SHA-256 over a project's files (see :func:`~pytest_isoenv.projects.project_files`): paths and contents."""
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

    def save(self) -> None:
        """Merge the hashes learnt into the file in :attr:`folder`; best effort (a cache, never an error)."""
        if self.folder is None or not self._dirty:
            return
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            on_disk = self._load()  # another process may have saved meanwhile
            merged = {**on_disk, **{n: self._entries[n] for n in self._dirty if n in self._entries}}
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
        self._entries = merged
        self._dirty.clear()


def location_material(link: str, hashes: FileHashes, base: Path | None = None) -> Any:
    """A find-links location as it counts for the key: a local folder by the content of its archives."""
    path = _local_path(link, base)
    if path is None:
        return link

    def content(location: Path) -> dict[str, Any]:
        if location.is_dir():
            try:
                names = sorted(
                    e.name for e in os.scandir(location) if e.name.endswith(ARCHIVE_SUFFIXES) and e.is_file()
                )
            except OSError:
                names = []
            return {"dir": str(location), "files": {n: hashes.file_or_none(location / n) for n in names}}
        if location.is_file():
            return {"file": str(location), "sha256": hashes.file_or_none(location)}
        return {"missing": str(location)}

    return hashes.once("dir", path, content)


def _local_path(link: str, base: Path | None) -> Path | None:
    """The local path a find-links entry or ``file:`` URL names, absolute; ``None`` for a remote URL."""
    if link.startswith("file:"):
        parsed = urllib.parse.urlsplit(link)
        text = urllib.request.url2pathname(parsed.path if not parsed.netloc else f"//{parsed.netloc}{parsed.path}")
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", link):
        return None
    else:
        text = link
    path = Path(os.path.expanduser(text))
    return Path(os.path.abspath((base or Path.cwd()) / path))


def url_material(url: str, hashes: FileHashes, editable: bool = False) -> Any:
    """A ``file:`` URL requirement by what it points at (a project's tree or an archive's content)."""
    path = _local_path(url.split("#", 1)[0], None) if url.startswith("file:") else None
    if path is None:
        return url
    if path.is_dir():
        return editable_material(path, hashes) if editable else {"tree": str(path), "sha256": hashes.tree(path)}
    return {"file": str(path), "sha256": hashes.file_or_none(path)}


def uses_local_files(spec: EnvSpec, find_links: Iterable[str], environ: Mapping[str, str]) -> bool:
    """Whether installing *spec* reads local projects, archives or find-links folders (which uv caches)."""
    links = [*find_links, *environ.get("UV_FIND_LINKS", "").replace(",", " ").split()]
    return bool(
        spec.local
        or any(_local_path(link, None) for link in links)
        or any("@ file:" in r for r in spec.requirements)
        or any(needs_rewrite(p) for p in (*spec.requirements_files, *([spec.constraints] if spec.constraints else [])))
    )


def local_material(path: Path, hashes: FileHashes) -> dict[str, Any]:
    """A local project (its tree) or archive (its content), installed non-editable."""
    return {"path": str(path), "sha256": hashes.tree(path) if path.is_dir() else hashes.file_or_none(path)}


def requirements_material(path: Path, hashes: FileHashes) -> list[Any]:
    """A requirements (or constraints) file by its content, the files it includes, and the projects it names."""
    material: list[Any] = []
    current = None
    for file, kind, value, _ in walk_requirements(path):
        if file != current:  # by content, not path: a copy elsewhere keys the same (its paths are in its lines)
            current = file
            material.append(["file", hashes.file_or_none(file)])
        if kind == "editable" and Path(value).is_dir():
            material.append(["-e", editable_material(Path(value), hashes)])
        elif kind == "path":
            material.append(["path", local_material(Path(value), hashes)])
        elif kind == "find_links":
            material.append(["-f", location_material(value, hashes)])
        elif kind == "url":
            material.append(["url", url_material(value, hashes)])
    return material


def constraints_material(value: str, hashes: FileHashes) -> Any:
    """A constraints file a pip or uv setting names, by its content and what it includes; else the text as given."""
    path = _local_path(value, None)
    try:
        return requirements_material(path, hashes) if path and path.is_file() else value
    except SpecError as exc:  # the installer will refuse it too; the key still sees the broken file
        return str(exc)


def editable_material(project: Path, hashes: FileHashes, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An editable project by what a new install of it could change: its metadata and what that reads.

    Its Python sources are live in the env and stay out. In: ``pyproject.toml``, ``setup.py``,
    ``setup.cfg``, the files the common backends' dynamic metadata reads, ``[tool.uv] cache-keys``,
    and, for a project with compiled extensions, their sources and build configuration.
    """
    files, variables = editable_inputs(project, hashes, os.environ if environ is None else environ)
    return {
        "path": str(project),
        "files": {os.path.relpath(f, project): hashes.file_or_none(f) for f in sorted(set(files))},
        "env": variables,
    }


def index_material(index: IndexOptions, hashes: FileHashes) -> dict[str, Any]:
    """The plugin's own index options: local find-links folders by the content of their archives."""
    return {
        "index_url": index.index_url,
        "find_links": [location_material(link, hashes) for link in index.find_links],
        "offline": index.offline,
    }
