"""The cache key: :func:`compute_key` makes it, from key material this module reads.

An env's key must change whenever a fresh build could differ: a wheel rebuilt
under the same name, a file a requirements file includes, a dynamic-metadata
source of an editable project, a constraints file named by pip's or uv's
configuration. The factory gathers the material of one env (its spec's
:meth:`~pytest_isoenv.spec.envspec.EnvSpec.key_material`, its interpreter's and its
installer's) and :func:`compute_key` hashes it into the key: the one function
that produces it.

This module turns what those name into material by content: local projects,
archives and find-links folders, requirements files with what they include,
editable projects by what their metadata reads. It keeps a warm run cheap with
:class:`FileHashes`, which hashes a file only when its ``stat`` changed. Which
files those are is found elsewhere: the lines of requirements files in
:mod:`pytest_isoenv.spec.reqfiles`, a project's files and an editable project's inputs in
:mod:`pytest_isoenv.key.projects`, and which pip and uv settings count in
:mod:`pytest_isoenv.key.settings`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement

from pytest_isoenv.errors import SpecError
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.projects import editable_inputs
from pytest_isoenv.key.vcs import vcs_material
from pytest_isoenv.spec.envspec import normalize_requirement
from pytest_isoenv.spec.lockfiles import is_uv_lock, local_sources
from pytest_isoenv.spec.reqfiles import ARCHIVE_SUFFIXES, is_url, names_local_files, variables, walk_requirements

if TYPE_CHECKING:
    from pytest_isoenv.spec.envspec import EnvSpec
    from pytest_isoenv.spec.index import IndexOptions

#: Bump when the layout of the key material changes, so old entries are never matched.
KEY_FORMAT = 2


def compute_key(material: Mapping[str, Any]) -> str:
    """The cache key for a complete key material: a hex SHA-256 of its canonical JSON."""
    blob = json.dumps({"format": KEY_FORMAT, **material}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def location_material(link: str, hashes: FileHashes, base: Path | None = None) -> Any:
    """A find-links location as it counts for the key: a local folder by the content of its archives."""
    path = local_path(link, base)
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


def local_path(link: str, base: Path | None) -> Path | None:
    """The local path a find-links entry or ``file:`` URL names, absolute; ``None`` for a remote URL."""
    if link.startswith("file:"):
        parsed = urllib.parse.urlsplit(link)
        text = urllib.request.url2pathname(parsed.path if not parsed.netloc else f"//{parsed.netloc}{parsed.path}")
    elif is_url(link):
        return None
    else:
        text = link
    path = Path(os.path.expanduser(text))
    return Path(os.path.abspath((base or Path.cwd()) / path))


def absolute_link(link: str, base: Path | None = None) -> str:
    """A find-links entry as the key reads it: a path made absolute against *base* (default: the working
    directory, as pip reads it), a URL as given.

    For an installer that runs elsewhere: uv runs in the env's folder.
    """
    path = None if is_url(link) else local_path(link, base)
    return link if path is None else str(path)


def url_material(url: str, hashes: FileHashes, editable: bool = False) -> Any:
    """A ``file:`` URL requirement by what it points at (a project's tree or an archive's content)."""
    path = local_path(url.split("#", 1)[0], None) if url.startswith("file:") else None
    if path is None:
        return url
    if path.is_dir():
        if editable:
            return editable_material(path, hashes)
        material = {"tree": str(path), "sha256": hashes.tree(path)}
        vcs = hashes.once("vcs", path, vcs_material)
        return material if vcs is None else {**material, "vcs": vcs}
    return {"file": str(path), "sha256": hashes.file_or_none(path)}


def uses_local_files(spec: EnvSpec, find_links: Iterable[str], environ: Mapping[str, str]) -> bool:
    """Whether installing *spec* reads local projects, archives or find-links folders (which uv caches).

    *find_links* are every location the install sees, the user's configuration's included.
    """
    links = [*find_links, *environ.get("UV_FIND_LINKS", "").replace(",", " ").split()]
    # An editable project's own path dependencies are local projects uv would otherwise take from its cache.
    return bool(
        spec.local
        or spec.editable
        or any(local_path(link, None) for link in links)
        or any("@ file:" in r for r in (*spec.requirements, *(r for _, group in spec.groups for r in group)))
        or any(
            names_local_files(p) for p in (*spec.requirements_files, *([spec.constraints] if spec.constraints else []))
        )
        or (spec.lock is not None and bool(local_sources(spec.lock)))
    )


def local_material(path: Path, hashes: FileHashes) -> dict[str, Any]:
    """A local project (its tree, and the VCS state its version is made from) or archive (its content)."""
    material = {"path": str(path), "sha256": hashes.tree(path) if path.is_dir() else hashes.file_or_none(path)}
    vcs = hashes.once("vcs", path, vcs_material) if path.is_dir() else None
    if vcs is not None:  # only then: the keys of other projects stay what they were
        material["vcs"] = vcs
    return material


def requirements_material(path: Path, hashes: FileHashes, environ: Mapping[str, str] | None = None) -> list[Any]:
    """A requirements (or constraints) file by its content, the files it includes, and the projects it names.

    Its lines are read with their variables expanded from *environ* (default: the host environment
    builds run with), and the values of the variables they name count.
    """
    material: list[Any] = []
    current = None
    for file, kind, value, _ in walk_requirements(path, environ=environ):
        if file != current:  # by content, not path: a copy elsewhere keys the same (its paths are in its lines)
            current = file
            named = variables(file, environ)
            # Only when it names some: the keys of files without variables stay what they were.
            material.append(["file", hashes.file_or_none(file), *([named] if named else [])])
        if kind == "editable" and (project := editable_project(value)) is not None:
            material.append(["-e", editable_material(project, hashes)])
        elif kind == "path":
            material.append(["path", local_material(Path(value), hashes)])
        elif kind == "find_links":
            material.append(["-f", location_material(value, hashes)])
        elif kind == "url":
            material.append(["url", url_material(value, hashes)])
    return material


def editable_project(value: str) -> Path | None:
    """The local project folder of an ``-e`` value (a path or ``file:`` URL, with any extras or fragment)."""
    if not is_url(value) and Path(value).is_dir():
        return Path(value)
    text = re.sub(r"\[[^\]]*\]$", "", value.split("#", 1)[0] if is_url(value) else value)
    path = local_path(text, None) if text.startswith("file:") or not is_url(text) else None
    return path if path is not None and path.is_dir() else None


def constraints_material(value: str, hashes: FileHashes, base: Path | None = None) -> Any:
    """A constraints file a pip or uv setting names, by its content and what it includes; else the text as given.

    A relative path means *base* (default: the working directory).
    """
    path = local_path(value, base)
    try:
        return requirements_material(path, hashes) if path and path.is_file() else value
    except SpecError as exc:  # the installer will refuse it too; the key still sees the broken file
        return str(exc)


def editable_material(project: Path, hashes: FileHashes, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An editable project by what a new install of it could change: its metadata and what that reads.

    Its Python sources are live in the env and stay out. In: every ``*.py``, ``*.cfg``, ``*.toml``,
    ``*.txt`` and ``*.in`` file at its top (``pyproject.toml``, ``setup.py``, ``hatch_build.py``,
    ``MANIFEST.in``...), the files the common backends' dynamic metadata reads, ``[tool.uv] cache-keys``,
    for a project with compiled extensions their sources and build configuration, and for one versioned
    from git (setuptools-scm, hatch-vcs) the git state its version is made from.
    """
    files, variables = editable_inputs(project, hashes, os.environ if environ is None else environ)
    material = {
        "path": str(project),
        "files": {os.path.relpath(f, project): hashes.file_or_none(f) for f in sorted(set(files))},
        "env": variables,
    }
    # An editable install writes its version into the env's metadata once: a new tag needs a new install.
    vcs = hashes.once("vcs", project, vcs_material)
    if vcs is not None:  # only then: the keys of other editable projects stay what they were
        material["vcs"] = vcs
    return material


def index_material(index: IndexOptions, hashes: FileHashes | None = None) -> dict[str, Any]:
    """The plugin's own index options: local find-links folders by the content of their archives."""
    hashes = FileHashes() if hashes is None else hashes
    return {
        "index_url": index.index_url,
        "find_links": [location_material(link, hashes) for link in index.find_links],
        "offline": index.offline,
    }


def spec_material(spec: EnvSpec, hashes: FileHashes | None = None) -> dict[str, Any]:
    """What *spec* contributes to the cache key: its requirements and the content of what they name.

    Reads local files through *hashes* when given, so a warm run hashes only what changed. Raises
    :class:`SpecError` for a requirements file that includes a missing one.
    """
    hashes = FileHashes() if hashes is None else hashes
    urls = {r: url_material(u, hashes) for r in spec.requirements if (u := _file_url(r))}
    material: dict[str, Any] = {
        "requirements": sorted({normalize_requirement(Requirement(r), for_key=True) for r in spec.requirements}),
        "file_urls": urls,
        "local": [local_material(p, hashes) for p in spec.local],
        "editable": [editable_material(p, hashes) for p in spec.editable],
        "constraints": None if spec.constraints is None else requirements_material(spec.constraints, hashes),
        "requirements_files": [requirements_material(p, hashes) for p in spec.requirements_files],
        # Only while measuring: an env that is not measured keeps the key it always had.
        **({"coverage": spec.coverage} if spec.coverage else {}),
    }
    # Only when used, so that the keys of envs without them stay what they were. The per-env
    # index options count through the installer's index material (see IndexOptions.for_spec).
    if spec.extras:
        material["extras"] = [[str(path), list(names)] for path, names in spec.extras]
    if spec.groups:
        material["groups"] = sorted({r for _, requirements in spec.groups for r in requirements})
        # A group's "name @ file:..." counts by what it points at, as the same requirement given directly does.
        group_urls = {r: url_material(u, hashes) for r in material["groups"] if (u := _file_url(r))}
        if group_urls:
            material["group_file_urls"] = group_urls
    if spec.resolution != "highest":
        material["resolution"] = spec.resolution
    if spec.lock is not None:
        material["lock"] = lock_material(spec.lock, hashes)
    return material


def lock_material(path: Path, hashes: FileHashes) -> dict[str, Any]:
    """A lock file by its content and that of the local files and folders it names.

    A ``uv.lock`` names a find-links folder's wheels by file name, with no hash, so their content
    counts here; its project's ``pyproject.toml`` says which dependency groups an export takes.
    """
    material: dict[str, Any] = {"sha256": hashes.file_or_none(path)}
    if is_uv_lock(path):
        material["pyproject"] = hashes.file_or_none(path.parent / "pyproject.toml")
    sources = []
    for source in local_sources(path):
        if source.kind == "editable" and source.path.is_dir():
            sources.append(["-e", editable_material(source.path, hashes)])
        else:
            sources.append([source.kind, local_material(source.path, hashes)])
    material["sources"] = sources
    return material


def _file_url(requirement: str) -> str | None:
    url = Requirement(requirement).url
    return url if url and url.startswith("file:") else None
