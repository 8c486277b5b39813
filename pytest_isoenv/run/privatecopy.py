"""Private envs made by copying a cached env: its files copied or linked, its own paths fixed.

A venv hard-codes its location in a few places: the shebangs of its scripts,
its activation scripts, ``pyvenv.cfg`` and, in some layouts, symlinks. Those
are rewritten in the copy. Everything else (the installed packages) is the same
wherever the env lives.

What may be hardlinked: an installer changes an env by removing files and
writing new ones, never by writing into an installed package file. pip unlinks
a file before writing it (so that a running process keeps its copy), moves
uninstalled files aside and writes new ``.dist-info`` folders; Python writes
``.pyc`` files to a temporary name and renames it. So the files of installed
packages are hardlinked: a change the copy's installer makes never reaches the
cached env. Plain copies are made of everything an installer may rewrite in
place (``.pth`` files, which pip rewrites when uninstalling a legacy develop
install), the package metadata folders (few files; copying them costs nothing)
and whatever lies outside site-packages, scripts and ``pyvenv.cfg`` among them
(they are rewritten here anyway). A private env is changed by installing into
it; writing into an installed module file in place would reach the cached env,
exactly as it reaches uv's cache in any env uv builds.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pytest_isoenv.store.record import RECORD_NAME

_METADATA_SUFFIXES = (".dist-info", ".egg-info", ".egg-link")


def unsupported() -> str | None:
    """Why private envs cannot be made by copying on this platform, or ``None`` where they can.

    On Windows the scripts are ``.exe`` launchers that embed the interpreter's
    path (uv's store its length too), so rewriting them byte by byte breaks
    them; and a hard-linked file a running process holds cannot be replaced.
    """
    if sys.platform == "win32":
        return (
            "private envs are not available on Windows: they are copies of the cached env with its paths "
            "rewritten, and the .exe launchers in Scripts cannot be rewritten safely"
        )
    return None


def copy_env(source: Path, target: Path, *, bin_dir: Path, site_packages: Path) -> None:
    """Copy the env at *source* (scripts in *bin_dir*, packages in *site_packages*) to *target*.

    The copy is independent: installing into it or uninstalling from it leaves
    *source* as it was, and its scripts run its own interpreter.
    """
    packages = os.fspath(site_packages) + os.sep

    def link_or_copy(src: str, dst: str) -> str:
        rest = src[len(packages) :] if src.startswith(packages) else None
        if rest is not None and not rest.endswith(".pth") and not rest.split(os.sep, 1)[0].endswith(_METADATA_SUFFIXES):
            try:
                os.link(src, dst)
                return dst
            except OSError:  # another filesystem, or links not supported: a copy is always right
                pass
        return str(shutil.copy2(src, dst))

    shutil.copytree(
        source,
        target,
        symlinks=True,
        copy_function=link_or_copy,
        ignore=lambda folder, names: [RECORD_NAME] if Path(folder) == source else [],
    )
    _fix_paths(source, target, target / bin_dir.relative_to(source), target / site_packages.relative_to(source))


def _fix_paths(source: Path, target: Path, bin_dir: Path, site_packages: Path) -> None:
    """Point what names *source* in the copy at *target*: script contents, ``pyvenv.cfg``, symlinks."""
    olds = {os.fspath(source), os.path.realpath(source)}
    replacements = [(o.encode(), os.fspath(target).encode()) for o in sorted(olds, key=len, reverse=True)]
    files = [target / "pyvenv.cfg", *(p for p in bin_dir.iterdir() if p.is_file() and not p.is_symlink())]
    for path in files:
        data = path.read_bytes()
        fixed = data
        for old_bytes, new_bytes in replacements:
            fixed = fixed.replace(old_bytes, new_bytes)
        if fixed != data:
            path.write_bytes(fixed)
    links = []
    for folder, dirnames, filenames in os.walk(target):
        if Path(folder) == site_packages.parent:
            dirnames[:] = [d for d in dirnames if folder + os.sep + d != os.fspath(site_packages)]
        links += [Path(folder, name) for name in dirnames + filenames]
    # Of site-packages, only its top: where pip's links to the cache's seeds/ are (its packages hold no links).
    links += site_packages.iterdir()
    for link in links:
        if not link.is_symlink():
            continue
        pointee = str(link.readlink())
        if not Path(pointee).is_absolute():
            # A relative link out of the env (pip, linked from the cache's seeds/) must still find what it
            # found from the cached env: it is made absolute. One inside the env stays as it is.
            original = os.path.normpath(source / link.parent.relative_to(target) / pointee)
            if not _inside(original, source):
                link.unlink()
                link.symlink_to(original)
            continue
        for old in olds:
            if pointee == old or pointee.startswith(old + os.sep):
                link.unlink()
                link.symlink_to(os.fspath(target) + pointee[len(old) :])
                break


def _inside(path: str, folder: Path) -> bool:
    return path == os.fspath(folder) or path.startswith(os.fspath(folder) + os.sep)
