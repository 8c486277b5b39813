"""Local projects built from a snapshot: a copy, inside the env being built, of exactly the files their key covers.

A local project installed non-editable (a path, ``name @ file:`` to a folder, a path in a requirements
file) is built by its backend, which reads what it likes and writes ``build/`` and ``*.egg-info`` where
it builds. Built in the user's folder, it could read files the key never saw, and it would leave files
there that the next session sees as a change. :class:`Snapshots` copies each such project's files
(:func:`~pytest_isoenv.key.files.project_files`, the listing its key hashes) into a folder of the env,
the installer builds the copy, and :meth:`Snapshots.restore_urls` points each installed distribution's
``direct_url.json`` back at the user's folder, so the env records where its packages came from as an
install in place would. The folder is removed after the install. Editable projects are never copied:
an editable install must point at the user's tree. A copied project's ``[tool.uv.sources]`` paths are
made to name what they name in place (a project folder its own snapshot, a ``workspace = true``
source its member's), so uv resolves them as it would there. The local folders an editable project's
dependencies name are built from snapshots too (:mod:`pytest_isoenv.installers.localdeps`): the
installers point their install at them.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pytest_isoenv.installers.localdeps import find_workspace
from pytest_isoenv.key.files import project_files
from pytest_isoenv.key.vcs import git, version_from_vcs
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.reqfiles import is_url
from pytest_isoenv.tomlfile import read_toml, toml_document


class Snapshots:
    """Snapshots of local projects in *folder* (made and removed by the caller), each project copied once.

    *cache_root* is never part of a snapshot, as it is never part of a key.
    """

    def __init__(self, folder: Path, cache_root: Path | None = None) -> None:
        self.folder = folder
        self.cache_root = cache_root
        #: The user's project folder -> its snapshot.
        self.made: dict[Path, Path] = {}

    def of(self, project: Path) -> Path:
        """The snapshot of the project folder *project*, made on first use; any other path as it is."""
        if not project.is_dir():
            return project
        if project not in self.made:
            slot = self.folder / str(len(self.made))
            # The project's own folder name: some builds read it (a name or version fallback).
            in_git = _with_git(project, slot)
            target = in_git or slot / project.name
            target.mkdir(parents=True, exist_ok=True)
            self.made[project] = target  # before its path sources are: a cycle of them ends here
            # Copies, not hard links: a link shares the user's file, so a backend that rewrites a file in
            # place (setuptools' egg-info of a src layout, a version file) would write into the user's tree,
            # and making a link changes the file's ctime, which git's index and the stat cache of the key read.
            for rel in project_files(project, self.cache_root):
                destination = target / rel
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copy2(project / rel, destination)
                except FileNotFoundError:  # a tracked file deleted since: the build does not see it either
                    continue
            pointed = self._point_sources(project, target)
            if in_git is not None:
                _settle_git(in_git, unchanged=["pyproject.toml"] if pointed else [])
        return self.made[project]

    def _point_sources(self, project: Path, target: Path) -> bool:
        """Make the ``path`` sources of the copy *target* of *project* name what they name from *project*.

        uv reads a ``[tool.uv.sources]`` path against the folder of the ``pyproject.toml`` naming it,
        so the copy's relative paths would point inside the snapshot, at nothing, and the copy is in
        no workspace, so its ``workspace = true`` sources would name nothing: each becomes a path to
        the member it names in place (uv installs a member of a project installed non-editable
        non-editable, unless it says ``editable = true``). Each path is rewritten absolute: a project folder installed non-editable to its own snapshot (built from the files its
        key covers, and checked on reuse as the user's folder: :meth:`restore_urls`), an editable one
        or an archive to the user's path. Whether the copy's ``pyproject.toml`` was rewritten.
        """
        pyproject = target / "pyproject.toml"
        try:
            data = read_toml(pyproject)
        except (OSError, ValueError):  # the build reads and refuses it the same way
            return False
        sources = data.get("tool", {}).get("uv", {}).get("sources") if isinstance(data.get("tool"), dict) else None
        if not isinstance(sources, dict):
            return False
        pointed, members = False, None
        for name, entries in sources.items():
            for entry in entries if isinstance(entries, list) else [entries]:
                if isinstance(entry, dict) and entry.get("workspace") is True:
                    # The copy is in no workspace: the member becomes the path source it stands for.
                    members = find_workspace(project) if members is None else members
                    member = members[1].get(canonicalize_name(name)) if members else None
                    if member is not None:
                        del entry["workspace"]
                        entry["path"] = os.path.relpath(member, project)
                if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                    continue
                named = Path(os.path.abspath(project / entry["path"]))
                where = str(named if entry.get("editable") is True else self.of(named))
                if where != entry["path"]:
                    entry["path"], pointed = where, True
        if pointed:
            pyproject.write_text(toml_document(data), encoding="utf-8")
        return pointed

    def relocate(self, value: str) -> str:
        """A path or ``file:`` URL of a project folder, made to name its snapshot; anything else as it is."""
        if not is_url(value):
            return str(self.of(Path(value)))
        if not value.startswith("file:"):
            return value
        url, hash_, fragment = value.partition("#")
        path = _url_path(url)
        snapshot = self.of(path)
        return value if snapshot == path else snapshot.as_uri() + hash_ + fragment

    def requirement(self, text: str) -> str:
        """A requirement ``name @ file:...`` to a project folder, made to name its snapshot."""
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            return text
        if requirement.url is None or not requirement.url.startswith("file:"):
            return text
        relocated = self.relocate(requirement.url)
        if relocated == requirement.url:
            return text
        requirement.url = relocated
        return str(requirement)

    def spec(self, spec: EnvSpec) -> EnvSpec:
        """*spec* with its local project folders, and ``file:`` requirements to folders, naming their snapshots.

        Requirements files are left to :func:`~pytest_isoenv.installers.api.with_absolute_paths`, which
        writes their copies through :meth:`relocate`.
        """
        local = tuple(self.of(path) for path in spec.local)
        return dataclasses.replace(
            spec,
            local=local,
            extras=tuple((self.of(path) if path in spec.local else path, names) for path, names in spec.extras),
            requirements=tuple(self.requirement(r) for r in spec.requirements),
            groups=tuple((label, tuple(self.requirement(r) for r in reqs)) for label, reqs in spec.groups),
        )

    def restore_urls(self, site_dirs: Iterable[Path]) -> None:
        """Point the ``direct_url.json`` of distributions installed from a snapshot back at the user's folder.

        Its line in ``RECORD`` is updated with it, so the distribution's files still check out.
        """
        # By real path: installers spell and resolve the URL each their own way.
        projects = {os.path.realpath(target): project for project, target in self.made.items()}
        if not projects:
            return
        for site in site_dirs:
            for direct_url in site.glob("*.dist-info/direct_url.json"):
                try:
                    data = json.loads(direct_url.read_text(encoding="utf-8"))
                    url = data["url"]
                    original = projects.get(os.path.realpath(_url_path(url))) if url.startswith("file:") else None
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    continue
                if original is None:
                    continue
                data["url"] = original.as_uri()
                content = json.dumps(data, sort_keys=True).encode()
                direct_url.write_bytes(content)
                _record_file(direct_url.parent / "RECORD", f"{direct_url.parent.name}/direct_url.json", content)


def _with_git(project: Path, slot: Path) -> Path | None:
    """A git repository in *slot* in the state of *project*'s, for a build that takes its version from it.

    The snapshot has no ``.git``, so setuptools-scm or hatch-vcs would find no version there, and the
    version they find in place counts for the key (:mod:`pytest_isoenv.key.vcs`). The new repository
    borrows the user's objects (``objects/info/alternates``, read only), has the same commit checked out
    on the same branch, the same tags and a copy of the index, so a version made in the snapshot is
    the one made in place, dirty or not; nothing is written into the user's repository. Where the
    project's files go in it (its path inside the repository), or ``None`` for a project whose version
    does not come from git.
    """
    if not version_from_vcs(project):
        return None
    found = git(project, "rev-parse", "--show-toplevel", "--git-common-dir", "--git-path", "index", "--show-prefix")
    head = git(project, "rev-parse", "--verify", "-q", "HEAD")
    if found.returncode or head.returncode:
        return None  # not in git, or no commit yet: the build finds no VCS state in place either
    top, common, index, prefix = found.stdout.split("\n")[:4]
    common_dir = (project / common).resolve()
    branch = git(project, "symbolic-ref", "-q", "HEAD").stdout.strip()
    tags = git(project, "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags").stdout
    root = slot / Path(top).name
    root.mkdir(parents=True)
    if _snapshot_git(root, "init", "-q").returncode:
        return None
    meta = root / ".git"
    (meta / "objects" / "info" / "alternates").write_text(f"{common_dir / 'objects'}\n", encoding="utf-8")
    if (common_dir / "shallow").is_file():  # a shallow clone (as in CI): its history ends where the user's does
        shutil.copyfile(common_dir / "shallow", meta / "shallow")
    commit = head.stdout.strip()
    (meta / "packed-refs").write_text(tags + (f"{commit} {branch}\n" if branch else ""), encoding="utf-8")
    (meta / "HEAD").write_text(f"ref: {branch}\n" if branch else f"{commit}\n", encoding="utf-8")
    try:
        shutil.copyfile(project / index, meta / "index")
    except OSError:  # no index yet: the commit's tree
        _snapshot_git(root, "read-tree", "HEAD")
    return root / prefix


def _settle_git(target: Path, unchanged: Iterable[str] = ()) -> None:
    """Bring the snapshot's repository around *target* up to date with the files copied into it.

    The snapshot holds one project of the repository: the files outside it are marked as not in the
    work tree, as they would otherwise look deleted and make the version dirty. Then the index is
    refreshed against the copies, which differ from the user's files in their ``stat`` only. The
    files *unchanged* (relative to *target*), which the snapshot rewrote, are marked as unchanged:
    in place they are as committed, and the version must be the one made there.
    """
    root = next(p for p in (target, *target.parents) if (p / ".git").is_dir())
    if root != target:
        prefix = target.relative_to(root).as_posix() + "/"
        listed = _snapshot_git(root, "ls-files", "-z").stdout.split("\0")
        outside = "".join(f"{name}\0" for name in listed if name and not name.startswith(prefix))
        _snapshot_git(root, "update-index", "--skip-worktree", "-z", "--stdin", stdin=outside)
    _snapshot_git(root, "update-index", "-q", "--refresh")
    names = [(target / name).relative_to(root).as_posix() for name in unchanged]
    if names:
        _snapshot_git(root, "update-index", "-q", "--assume-unchanged", "--", *names)


def _snapshot_git(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """git in the snapshot's own repository *root* (made or changed there only)."""
    return subprocess.run(["git", "-C", str(root), *args], input=stdin, capture_output=True, text=True, check=False)


def _url_path(url: str) -> Path:
    """The local path a ``file:`` URL names."""
    parsed = urllib.parse.urlsplit(url)
    return Path(urllib.request.url2pathname(parsed.path if not parsed.netloc else f"//{parsed.netloc}{parsed.path}"))


def _record_file(record: Path, name: str, content: bytes) -> None:
    """Give the line of *name* in the wheel ``RECORD`` file *record* the hash and size of *content*."""
    try:
        rows = list(csv.reader(io.StringIO(record.read_text(encoding="utf-8"))))
    except OSError:
        return
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    for row in rows:
        if row and row[0] == name:
            row[1:] = [f"sha256={digest}", str(len(content))]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    record.write_text(out.getvalue(), encoding="utf-8")
