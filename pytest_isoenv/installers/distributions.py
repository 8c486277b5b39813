"""What an env holds: its distributions by canonical name, with their versions and metadata folders.

One reader serves two places. Imported, it reads an env's package folders from
this process: the verify stage of a build, and the record of a new env. Its
source, run by an env's own interpreter (:func:`pytest_isoenv.run.env.introspect`),
reports what that interpreter sees, with the env's paths. So it uses only the
standard library, and runs on every Python an env may have (3.9 and newer).
"""

from __future__ import annotations

import json
import re
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

#: The names of the metadata of installed distributions (``importlib.metadata`` finds these).
_METADATA_SUFFIXES = (".dist-info", ".egg-info")


def canonical_name(name: str) -> str:
    """*name* as PEP 503 compares names: what ``packaging.utils.canonicalize_name`` gives, without packaging."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(site_dirs: Iterable[str] | None = None) -> Iterator[tuple[str, metadata.Distribution, str]]:
    """Every named distribution in *site_dirs* (default: ``sys.path``): its canonical name, itself and its metadata.

    The metadata is a ``.dist-info`` or ``.egg-info`` folder (or file) found in
    one of the folders, in import order. A name can come more than once (two
    metadata folders of one project); the first is the one imports use.
    """
    for folder in dict.fromkeys(sys.path if site_dirs is None else site_dirs):
        try:
            entries = sorted(Path(folder or ".").iterdir())
        except OSError:
            continue  # a zip archive or a missing folder: no env installs packages there
        for entry in entries:
            if entry.name.lower().endswith(_METADATA_SUFFIXES):
                dist = metadata.Distribution.at(entry)
                name = dist.metadata["Name"]
                if name:
                    yield canonical_name(name), dist, str(entry)


def direct_url(dist: metadata.Distribution) -> dict[str, Any] | None:
    """*dist*'s ``direct_url.json`` (PEP 610: where an install from a URL or a local path came from), or ``None``.

    ``None`` too when the file is unreadable or not a JSON object: the install then says nothing of its origin.
    """
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def origins(site_dirs: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """The ``direct_url.json`` of each distribution in *site_dirs* (default: ``sys.path``) that has one, by name.

    Of each name, the first distribution's: the one imports use.
    """
    found: dict[str, dict[str, Any] | None] = {}
    for name, dist, _ in distributions(site_dirs):
        if name not in found:
            found[name] = direct_url(dist)
    return {name: url for name, url in sorted(found.items()) if url is not None}


def inventory(site_dirs: Iterable[str] | None = None) -> tuple[dict[str, str], list[str]]:
    """The distributions in *site_dirs* (default: ``sys.path``): canonical name to version, and metadata folders.

    The version is the first distribution's of each name, the one imports use; the folders are all of them.
    Both sorted.
    """
    packages: dict[str, str] = {}
    folders: list[str] = []
    for name, dist, path in distributions(site_dirs):
        packages.setdefault(name, dist.version)
        folders.append(path)
    return dict(sorted(packages.items())), sorted(folders)


def report() -> dict[str, Any]:
    """What the running interpreter says of its env: where its scripts and packages live, and what is installed."""
    packages, dist_infos = inventory()
    paths = sysconfig.get_paths()
    return {
        "scripts": paths["scripts"],
        "purelib": paths["purelib"],
        "platlib": paths["platlib"],
        "executable": sys.executable,
        "version": ".".join(map(str, sys.version_info[:3])),
        "packages": packages,
        "dist_infos": dist_infos,
        "origins": origins(),
    }


if __name__ == "__main__":  # the source run by an env's interpreter: see pytest_isoenv.run.env.introspect
    print(json.dumps(report()))
