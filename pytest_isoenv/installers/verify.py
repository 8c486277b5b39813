"""The last stage of every build: is each distribution the spec asked for installed in the env?

An installer that exits 0 has not always installed into the env it was given:
a setting can send the packages elsewhere (pip's ``target``, uv's ``[pip]
target``). An env is published only after this check, so a build that did not
deliver is a build error naming what is missing, never a cached env without
its packages. The env's package folders it reads (:func:`env_site_dirs`) are
also the ones the build compiles.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from pytest_isoenv.errors import BuildError, SpecError
from pytest_isoenv.installers.distributions import direct_url, distributions
from pytest_isoenv.key.material import editable_project
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.lockfiles import locked_packages
from pytest_isoenv.spec.reqfiles import logical_lines, parse_line, walk_requirements

_SITE_DIRS = "import json, sysconfig; print(json.dumps([sysconfig.get_path('purelib'), sysconfig.get_path('platlib')]))"

# The marker environment of an interpreter, printed by that interpreter (standard library only; what
# packaging.markers.default_environment() computes).
_MARKER_ENVIRONMENT = r"""
import json, os, platform, sys
info = sys.implementation.version
version = "{0.major}.{0.minor}.{0.micro}".format(info)
if info.releaselevel != "final":
    version += info.releaselevel[0] + str(info.serial)
print(json.dumps({
    "implementation_name": sys.implementation.name, "implementation_version": version, "os_name": os.name,
    "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
}))
"""


def env_site_dirs(python: Path, environ: Mapping[str, str]) -> tuple[Path, ...]:
    """The package folders of the env of *python* (purelib, and platlib when it differs), as it reports them."""
    proc = subprocess.run([str(python), "-I", "-c", _SITE_DIRS], capture_output=True, text=True, env=dict(environ))
    if proc.returncode:
        raise BuildError(
            "the new env cannot report its package folders",
            cmd=[str(python), "-I", "-c", _SITE_DIRS],
            returncode=proc.returncode,
            output=proc.stderr or proc.stdout,
        )
    return tuple(Path(d) for d in dict.fromkeys(json.loads(proc.stdout)))


@dataclass(frozen=True)
class Installed:
    """One distribution found in the env (the mapping :func:`installed_distributions` returns names it)."""

    version: str
    url: str | None
    editable: bool


def installed_distributions(*site_dirs: Path) -> dict[str, Installed]:
    """The distributions in *site_dirs* by canonical name, with the location ``direct_url.json`` records."""
    found: dict[str, Installed] = {}
    for name, dist, _ in distributions(str(d) for d in site_dirs):
        if name in found:
            continue  # a second metadata folder of the name: imports use the first
        url, editable = None, False
        direct = direct_url(dist)
        if direct is not None:
            url = direct.get("url") if isinstance(direct.get("url"), str) else None
            dir_info = direct.get("dir_info")
            editable = isinstance(dir_info, dict) and bool(dir_info.get("editable"))
        found[name] = Installed(dist.version, url, editable)
    return found


def marker_environment(python: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The values PEP 508 markers are evaluated against, for the interpreter *python*."""
    proc = subprocess.run(
        [str(python), "-I", "-c", _MARKER_ENVIRONMENT], capture_output=True, text=True, env=dict(environ), check=True
    )
    result: dict[str, str] = json.loads(proc.stdout)
    return result


def missing(spec: EnvSpec, python: Path, site_dirs: tuple[Path, ...], environ: Mapping[str, str]) -> list[str]:
    """What *spec* asked for that is not installed in the env of *python*, one phrase each.

    Requirements (its own, its groups' and the plain ones of its requirements files) must be
    installed at a version their specifier allows, where their markers hold for
    the env's interpreter; local and editable projects must be installed from
    their folder (as their ``direct_url.json`` says), wheels and sdists at their
    name and version.
    """
    dists = installed_distributions(*site_dirs)
    environment: dict[str, str] | None = None
    problems: list[str] = []
    for text in _requirements(spec):
        requirement = Requirement(text)
        if requirement.marker is not None:
            if environment is None:
                environment = marker_environment(python, environ)
            if not requirement.marker.evaluate(environment):
                continue
        dist = dists.get(canonicalize_name(requirement.name))
        if dist is None:
            problems.append(f"{text} is not installed")
        elif requirement.specifier and not requirement.specifier.contains(dist.version, prereleases=True):
            problems.append(f"{text} is installed at version {dist.version}")
    for path in spec.local:
        if not _found_local(path, dists, editable=False):
            problems.append(f"{path} is not installed")
    for path in (*spec.editable, *_editable_lines(spec)):
        if not _found_local(path, dists, editable=True):
            problems.append(f"{path} is not installed in editable mode")
    return problems


def missing_locked(pylock: Path, python: Path, site_dirs: tuple[Path, ...], environ: Mapping[str, str]) -> list[str]:
    """What the ``pylock.toml`` *pylock* pins that the env of *python* lacks, or has at another version.

    Packages whose marker does not hold for the env's interpreter are not installed, so not looked for.
    """
    dists = installed_distributions(*site_dirs)
    environment: dict[str, str] | None = None
    problems: list[str] = []
    for package in locked_packages(pylock):
        if package.marker is not None:
            environment = environment or marker_environment(python, environ)
            try:
                if not Marker(package.marker).evaluate(environment):
                    continue
            except InvalidMarker:
                continue  # the installer read the marker; what it made of it is not verify's to say
        dist = dists.get(canonicalize_name(package.name))
        if dist is None:
            problems.append(f"{package.name} (pinned by {pylock.name}) is not installed")
        elif package.version is not None and _version(dist.version) != _version(package.version):
            problems.append(f"{package.name} is pinned at {package.version} but installed at {dist.version}")
    return problems


def _version(text: str) -> Version | str:
    try:
        return Version(text)
    except InvalidVersion:
        return text


def _editable_lines(spec: EnvSpec) -> Iterator[Path]:
    """The local projects the ``-e`` lines of *spec*'s requirements files name, the files they include too."""
    for path in spec.requirements_files:
        try:
            for _, kind, value, _ in walk_requirements(path):
                project = editable_project(value) if kind == "editable" else None
                if project is not None:
                    yield project
        except (OSError, SpecError):
            continue  # the installer read the files; what cannot be read now is not verify's to say


def _requirements(spec: EnvSpec) -> Iterator[str]:
    """The named requirements of *spec*: its own, its dependency groups', and the plain lines of its requirements
    files."""
    yield from spec.requirements
    for _, requirements in spec.groups:
        yield from requirements
    for path in spec.requirements_files:
        try:
            lines = list(logical_lines(path))
        except OSError:
            continue
        for line in lines:
            if parse_line(line)[0] != "other" or line.startswith("-"):
                continue  # options, nested files and local projects: the installer read them; not listed here
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue  # a path or URL line
            if requirement.url is None:
                yield line


def _found_local(path: Path, dists: Mapping[str, Installed], *, editable: bool) -> bool:
    wanted = _same_file_key(path)
    for dist in dists.values():
        if not dist.url or not dist.url.startswith("file:") or (editable and not dist.editable):
            continue
        if _same_file_key(Path(urllib.request.url2pathname(urllib.parse.urlparse(dist.url).path))) == wanted:
            return True
    if path.is_file() and not editable:
        # An archive whose installer recorded no URL: its file name says the name and version.
        try:
            name, version = (
                parse_wheel_filename(path.name)[:2] if path.name.endswith(".whl") else parse_sdist_filename(path.name)
            )
        except (InvalidWheelFilename, InvalidSdistFilename):
            return False
        found = dists.get(name)
        return found is not None and Version(found.version) == version
    return False


def _same_file_key(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))
