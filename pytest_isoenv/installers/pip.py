"""The pip installer: virtualenv creates the env and seeds its pip, which installs the spec."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pytest_isoenv.errors import BuildError
from pytest_isoenv.installers.api import Installer, virtualenv_version
from pytest_isoenv.installers.localdeps import file_folder, project_name, static_requirements
from pytest_isoenv.installers.processes import BuildInterrupted
from pytest_isoenv.installers.snapshot import Snapshots
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.material import index_material
from pytest_isoenv.key.settings import pip_environ
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.index import IndexOptions

# virtualenv's cli_run is made for one call at a time per process: its option parser, creator and
# seeder plugins are found through process-wide registries and it keeps module-level caches. Creating
# takes a fraction of a build (installing is the slow part, in a subprocess), so builds running in
# threads create one env at a time and install in parallel.
_VIRTUALENV_LOCK = threading.Lock()


class PipInstaller(Installer):
    """virtualenv (through its Python API) and the env's own pip, seeded as every installer seeds it."""

    name = "pip"

    def key_material(self, index: IndexOptions, hashes: FileHashes | None = None) -> dict[str, Any]:
        # virtualenv pins the pip it seeds, so its version names the pip that installs.
        hashes = FileHashes() if hashes is None else hashes
        return {
            "installer": self.name,
            "virtualenv": virtualenv_version(),
            "index": index_material(index, hashes),
            "settings": self.pip_config.resolution_settings(hashes),
        }

    def environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """*environ* with the user's pip configuration restated, less what would send installs elsewhere."""
        return pip_environ(environ, self.pip_config.settings)

    def create(self, path: Path, interpreter: Path, *, log: Path, environ: Mapping[str, str]) -> Path:
        args = [
            str(path),
            "--python", str(interpreter),
            "--app-data", str(self._dirs.app_data),
            "--no-periodic-update",
            # The seed stage links pip into the env where it can; virtualenv copies it in where not.
            *(["--no-seed"] if self.links_pip else ["--pip", "bundle", "--no-setuptools"]),
            "--no-vcs-ignore",
            "--quiet",
        ]  # fmt: skip
        with log.open("a", encoding="utf-8") as stream:
            stream.write(f"$ virtualenv {subprocess.list2cmdline(args)}\n")
        if self.processes.stopped:
            raise BuildInterrupted
        try:
            with _VIRTUALENV_LOCK:
                import virtualenv  # only when creating: importing it slows every pytest start

                session = virtualenv.cli_run(args, setup_logging=False, env=dict(environ))
        except (Exception, SystemExit) as exc:
            with log.open("a", encoding="utf-8") as stream:
                stream.write(f"# virtualenv failed: {exc!r}\n")
            raise BuildError(f"virtualenv could not create an env from {interpreter}: {exc}", log=log) from exc
        return Path(session.creator.exe)

    def install_command(self, python: Path, spec: EnvSpec, index: IndexOptions) -> list[str]:
        return [
            str(python), "-m", "pip", "install",
            "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
            *self.index_arguments(index),
            *self.package_arguments(spec),
        ]  # fmt: skip

    def install_commands(
        self, python: Path, spec: EnvSpec, index: IndexOptions, snapshots: Snapshots
    ) -> list[list[str]]:
        """One install, or, for editable projects whose ``[project]`` dependencies name local folders, two.

        pip builds a folder a ``name @ file:`` dependency names where it is (it prepares the link
        eagerly, even when a constraint or an installed distribution would do) and takes no other
        URL for it. So such a project is installed first without its dependencies, and they are
        installed next, with the rest of *spec*, each folder naming its snapshot. Not when the
        project's metadata does not list them, nor when another of *spec*'s requirements or editable
        projects requires it (pip would read its dependencies again): those build in place.
        """
        requirements = {p: static_requirements(p, dict(spec.extras).get(p, ())) for p in spec.editable}
        required = {canonicalize_name(Requirement(r).name) for r in spec.requirements}
        required |= {canonicalize_name(Requirement(r).name) for _, group in spec.groups for r in group}
        required |= {canonicalize_name(r.name) for found in requirements.values() for r in found or ()}
        split = {
            project: found
            for project, found in requirements.items()
            if found and any(file_folder(r) for r in found) and project_name(project) not in required
        }
        if not split:
            return [self.install_command(python, spec, index)]
        # First: installed after, the project would be read with its dependencies, folders and all.
        first = EnvSpec(editable=tuple(split), extras=spec.extras)
        rest = dataclasses.replace(
            spec,
            editable=tuple(p for p in spec.editable if p not in split),
            requirements=(*spec.requirements, *(snapshots.requirement(str(r)) for rs in split.values() for r in rs)),
        )
        return [[*self.install_command(python, first, index), "--no-deps"], self.install_command(python, rest, index)]
