"""pip in every env, at the cost of a few links: one compiled image of pip per interpreter, linked into each env.

Every env has pip, whichever installer built it (``python -m pip`` and ``env.pip`` work in each).
But pip is some thousand files, 14 MB once compiled to bytecode (as everything in a shared env
is, so that nothing run from it writes into it): nearly all of a small env. So the pip wheel
virtualenv bundles is unpacked and compiled once per interpreter into the cache's ``seeds/``
folder, an *image*, and each env gets two symbolic links to it in its site-packages (the ``pip``
package and its metadata folder) and its own ``pip`` scripts, which name the env's interpreter.
This is virtualenv's ``--symlink-app-data`` seeding, made for both installers:

- The image's files are read-only, so nothing writes into them in place; its folders stay
  writable, so that deleting the cache (``rm -rf``) works as for any folder.
- The image's ``RECORD`` lists the links and the scripts, not the files behind the links: pip
  uninstalling or upgrading itself in an env (a private env) removes that env's links and scripts
  and installs real files in their place, leaving the image to every other env.
- An image is made whole under a temporary name and renamed into place, so no build sees half of
  one; a build that loses the race to make it uses the one that won.
- uv does not see a linked distribution: it lists only real folders. Installing pip (asked for, or
  a dependency of a package) it would write the new pip's files through the ``pip`` link, into the
  image of every env. So uv builds install first and link pip after, unless they installed a pip of
  their own (:func:`link_pip`), and uv installs into an env that has the links take them out while
  they run (:func:`detached_pip`).

Where symbolic links cannot be made (Windows without the privilege), the installers copy pip into
each env as they used to (:attr:`pytest_isoenv.installers.api.Installer.links_pip`).
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_isoenv.errors import BuildError

#: What the env's interpreter says of itself: where packages and scripts go, and what its bytecode is for.
_PROBE = (
    "import json, sys, sysconfig; print(json.dumps({"
    "'purelib': sysconfig.get_path('purelib'), 'scripts': sysconfig.get_path('scripts'), "
    "'version': list(sys.version_info[:2]), 'identity': [sys.base_prefix, sys.version, "
    "sys.implementation.cache_tag]}))"
)

#: A console script as pip writes it, after its ``#!`` line.
_SCRIPT = """\
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {function}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({function}())
"""


def links_supported() -> bool:
    """Whether envs can link pip from an image here (Windows needs a privilege for symbolic links)."""
    return sys.platform != "win32" and hasattr(os, "symlink")


@dataclass(frozen=True)
class EnvLayout:
    """Where the env's interpreter puts packages and scripts, and what it compiles bytecode for."""

    purelib: Path
    scripts: Path
    version: tuple[int, int]
    identity: str
    """The interpreter and its bytecode (base prefix, full version, cache tag), with the env's layout."""

    @classmethod
    def probe(cls, python: Path, environ: Mapping[str, str]) -> EnvLayout:
        """Ask the env's interpreter *python*."""
        cmd = [str(python), "-I", "-c", _PROBE]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(environ), check=False)
        if proc.returncode:
            raise BuildError(
                "the new env cannot report its package folders",
                cmd=cmd,
                returncode=proc.returncode,
                output=proc.stderr or proc.stdout,
            )
        data = json.loads(proc.stdout)
        purelib, scripts = Path(data["purelib"]), Path(data["scripts"])
        # The image's RECORD names the scripts relative to site-packages: envs laid out alike share it.
        identity = json.dumps([*data["identity"], os.path.relpath(scripts, purelib)])
        return cls(purelib, scripts, (data["version"][0], data["version"][1]), identity)


def pip_wheel(version: tuple[int, int]) -> Path:
    """The pip wheel virtualenv bundles for Python *version*, the pip every env gets."""
    from virtualenv.seed.wheels.embed import get_embed_wheel

    wheel = get_embed_wheel("pip", "{}.{}".format(*version))
    if wheel is None:  # pragma: no cover - Installer.unsupported refuses such interpreters first
        raise BuildError(f"virtualenv bundles no pip for Python {version[0]}.{version[1]}")
    return Path(wheel.path)


def image_path(seeds: Path, wheel: Path, layout: EnvLayout) -> Path:
    """The image of *wheel* for envs of *layout*'s interpreter, in the folder *seeds*."""
    digest = hashlib.sha256(layout.identity.encode()).hexdigest()[:16]
    return seeds / f"{wheel.stem.split('-')[0]}-{wheel.stem.split('-')[1]}-{digest}"


def link_pip(
    python: Path,
    seeds: Path,
    *,
    environ: Mapping[str, str],
    compile_image: Callable[[Path], None],
) -> None:
    """Give the env of *python* pip: links to the image in *seeds* (made first if missing), and its scripts.

    Nothing if the env has a pip already.

    *compile_image* compiles a folder to bytecode with the env's interpreter (an installer command).
    """
    layout = EnvLayout.probe(python, environ)
    if any(layout.purelib.glob("pip-*.dist-info")):  # the install put a pip of its own there
        return
    wheel = pip_wheel(layout.version)
    image = image_path(seeds, wheel, layout)
    if not image.is_dir():
        make_image(wheel, image, layout, compile_image)
    for entry in sorted(image.iterdir()):
        # Relative: a cache moved or restored whole elsewhere (a CI cache) keeps working envs.
        (layout.purelib / entry.name).symlink_to(os.path.relpath(entry, layout.purelib))
    for name, target in console_scripts(image, layout.version).items():
        write_script(layout.scripts / name, python, target)


@contextlib.contextmanager
def detached_pip(purelib: Path) -> Iterator[None]:
    """The env's links to a pip image taken out of *purelib* for the ``with`` block, then put back.

    Not put back if the block installed a pip of its own (then its folders are real). For an
    installer that does not see the links, which would write a new pip into the image through them.
    """
    links: dict[Path, Path] = {}
    with contextlib.suppress(OSError):
        for entry in purelib.iterdir():
            if entry.is_symlink() and (entry.name == "pip" or fnmatch.fnmatch(entry.name, "pip-*.dist-info")):
                links[entry] = entry.readlink()
    for link in links:
        link.unlink()
    try:
        yield
    finally:
        if not any(purelib.glob("pip-*.dist-info")):
            for link, target in links.items():
                if not os.path.lexists(link):
                    link.symlink_to(target)


def make_image(wheel: Path, image: Path, layout: EnvLayout, compile_image: Callable[[Path], None]) -> None:
    """Unpack and compile *wheel* into *image*, whole or not at all."""
    image.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = image.with_name(f".{image.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(work)  # virtualenv's own bundled wheel, checked by its digest
        compile_image(work)
        dist_info = next(work.glob("*.dist-info"))
        (dist_info / "INSTALLER").write_text("pip\n", encoding="utf-8")
        scripts = [
            os.path.relpath(layout.scripts / name, layout.purelib) for name in console_scripts(work, layout.version)
        ]
        # What pip removes when it uninstalls itself from an env: the env's links and scripts, never the image.
        rows = [[name, "", ""] for name in [*sorted(p.name for p in work.iterdir()), *scripts]]
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        (dist_info / "RECORD").write_text(text.getvalue(), encoding="utf-8")
        for folder, _, files in os.walk(work):
            for name in files:
                path = Path(folder, name)
                path.chmod(stat.S_IMODE(path.lstat().st_mode) & ~0o222)
        try:
            work.rename(image)
        except OSError:
            if not image.is_dir():  # else another build made it first: use theirs
                raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(work)


def console_scripts(image: Path, version: tuple[int, int]) -> dict[str, str]:
    """pip's console scripts, each with what it runs (``module:function``), and ``pipX.Y`` as pip adds for itself."""
    scripts: dict[str, str] = {}
    for dist_info in image.glob("*.dist-info"):
        entry_points = dist_info / "entry_points.txt"
        section = None
        for line in entry_points.read_text(encoding="utf-8").splitlines() if entry_points.is_file() else []:
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "console_scripts" and "=" in line:
                name, target = (part.strip() for part in line.split("=", 1))
                scripts[name] = target
    if "pip" in scripts:
        scripts["pip{}.{}".format(*version)] = scripts["pip"]
    return dict(sorted(scripts.items()))


def write_script(path: Path, python: Path, target: str) -> None:
    """Write the console script *path* that runs *target* (``module:function``) with *python*, as pip writes them."""
    interpreter = str(python)
    if " " in interpreter or len(interpreter) > 127:  # the kernel's limit on a #! line: a shell finds it
        head = f"#!/bin/sh\n'''exec' \"{interpreter}\" \"$0\" \"$@\"\n' '''\n"
    else:
        head = f"#!{interpreter}\n"
    module, _, function = target.partition(":")
    path.write_text(head + _SCRIPT.format(module=module, function=function), encoding="utf-8")
    path.chmod(0o755)
