"""The local files and folders an env's packages came from: listed after its build, checked when it is reused.

The key covers what a spec names. What the install itself found is known only
after it: an editable project's own path dependencies (``[tool.uv.sources]``,
``lib @ file:///...`` in its dependencies), a dependency group's ``file:`` entries,
a wheel picked from a find-links folder of the user's configuration. Each
installed distribution says where it came from in its ``direct_url.json``
(PEP 610); one installed from a find-links folder says nothing, and is matched
to the archives there by name and version. :func:`local_sources` lists them
with their content's digest for the completion record, and
:func:`changed_source` tells, on reuse, the first one that changed, whatever
route named it: the env is then built anew.

A source counts as the key counts it: a wheel or sdist by its content, a
project folder by its files (:meth:`FileHashes.tree`), an editable project by
what a new install of it could change (:func:`editable_material`). Reading them
is cheap on a warm run: :class:`FileHashes` hashes a file again only when its
``stat`` changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.material import editable_material, local_path

#: One source of an env: ``kind`` (``file``, ``tree`` or ``editable``), its absolute ``path``, and ``sha256``.
Source = dict[str, str | None]


def local_sources(
    origins: Mapping[str, Mapping[str, Any]],
    packages: Mapping[str, str],
    find_links: Iterable[str],
    hashes: FileHashes,
    *,
    base: Path | None = None,
) -> list[Source]:
    """The local sources of an env's distributions, each with the digest of its content now.

    *origins* are the distributions' ``direct_url.json`` by canonical name, *packages* every
    distribution's version by canonical name; a distribution without an origin is matched to the
    archives of the local *find_links* folders (relative ones resolve against *base*). What lies
    inside the isoenv cache (a snapshot a build made) is the cache's own, not a user's source.
    """
    found: dict[tuple[str, str], None] = {}
    for origin in origins.values():
        path = _origin_path(origin)
        if path is not None:
            dir_info = origin.get("dir_info")
            if "archive_info" in origin or path.is_file():
                found["file", str(path)] = None
            elif isinstance(dir_info, dict):
                found["editable" if dir_info.get("editable") else "tree", str(path)] = None
    unplaced = {name: version for name, version in packages.items() if name not in origins}
    if unplaced:
        for folder in dict.fromkeys(p for link in find_links if (p := local_path(link, base)) is not None):
            for archive in _archives_of(folder, unplaced):
                found["file", str(archive)] = None
    cache = hashes.cache_root
    return [
        {"kind": kind, "path": path, "sha256": digest(kind, Path(path), hashes)}
        for kind, path in sorted(found)
        if cache is None or not Path(path).is_relative_to(cache)
    ]


def changed_source(sources: Sequence[Source], hashes: FileHashes) -> str | None:
    """The first of *sources* whose content is not what it was when they were listed, as a phrase; else ``None``."""
    for source in sources:
        kind, path = str(source.get("kind")), Path(str(source.get("path")))
        if digest(kind, path, hashes) != source.get("sha256"):
            what = {"file": "the file", "tree": "the project", "editable": "the editable project"}.get(kind, "")
            return f"{what} {path} it was installed from changed since it was built"
    return None


def digest(kind: str, path: Path, hashes: FileHashes) -> str | None:
    """The digest of the source *path* of *kind* as it is now; ``None`` when it is gone or unreadable."""
    if kind == "file":
        return hashes.file_or_none(path)
    if not path.is_dir():
        return None
    if kind == "tree":
        return hashes.tree(path)
    material = json.dumps(editable_material(path, hashes), sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


def _origin_path(origin: Mapping[str, Any]) -> Path | None:
    """The local path a ``direct_url.json`` names, or ``None`` for a remote URL or a VCS checkout."""
    url = origin.get("url")
    if not isinstance(url, str) or not url.startswith("file:") or "vcs_info" in origin:
        return None
    parsed = urllib.parse.urlsplit(url)
    return Path(os.path.abspath(urllib.request.url2pathname(parsed.path)))


def _archives_of(folder: Path, packages: Mapping[str, str]) -> list[Path]:
    """The wheels and sdists in *folder* of one of *packages* (canonical name to version) at its version."""
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
    except OSError:
        return []
    found = []
    for name in names:
        try:
            if name.endswith(".whl"):
                project, version = parse_wheel_filename(name)[:2]
            elif name.endswith((".tar.gz", ".zip")):
                project, version = parse_sdist_filename(name)
            else:
                continue
            if project in packages and version == Version(packages[project]):
                found.append(folder / name)
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
    return found
