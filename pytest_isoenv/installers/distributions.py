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
from typing import Any


def canonical_name(name: str) -> str:
    """*name* as PEP 503 compares names: what ``packaging.utils.canonicalize_name`` gives, without packaging."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(site_dirs: Iterable[str] | None = None) -> Iterator[tuple[str, metadata.Distribution]]:
    """Every named distribution in *site_dirs* (default: ``sys.path``) with its canonical name, in import order.

    A name can come more than once (two metadata folders of one project); the first is the one imports use.
    """
    found = metadata.distributions() if site_dirs is None else metadata.distributions(path=[*dict.fromkeys(site_dirs)])
    for dist in found:
        name = dist.metadata["Name"]
        if name:
            yield canonical_name(name), dist


def inventory(site_dirs: Iterable[str] | None = None) -> tuple[dict[str, str], list[str]]:
    """The distributions in *site_dirs* (default: ``sys.path``): canonical name to version, and metadata folders.

    The version is the first distribution's of each name, the one imports use; the folders are all of them.
    Both sorted.
    """
    packages: dict[str, str] = {}
    folders: list[str] = []
    for name, dist in distributions(site_dirs):
        packages.setdefault(name, dist.version)
        path = getattr(dist, "_path", None)  # a PathDistribution's folder; importlib.metadata has no public name
        if path is not None:
            folders.append(str(path))
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
    }


if __name__ == "__main__":  # the source run by an env's interpreter: see pytest_isoenv.run.env.introspect
    print(json.dumps(report()))
