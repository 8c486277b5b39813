"""The installer interface: the stages every build runs in one order, and what both installers share.

:meth:`Installer.build` is the one place a build's stages run: create the
env, seed pip into it, install the spec's packages, compile them to bytecode,
and verify that what was asked for is there (:mod:`pytest_isoenv.installers.verify`).
An installer differs in its stages, never in their order. pip's installer
(virtualenv and the env's own pip) is in :mod:`pytest_isoenv.installers.pip`, uv's in :mod:`pytest_isoenv.installers.uv`,
and which one a build uses is chosen in :mod:`pytest_isoenv.installers.choice`.
Installer commands run through :mod:`pytest_isoenv.installers.processes`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_isoenv.environ import isolated_environ
from pytest_isoenv.errors import BuildError, SpecError
from pytest_isoenv.installers import seed
from pytest_isoenv.installers.processes import InstallerProcesses
from pytest_isoenv.installers.snapshot import Snapshots
from pytest_isoenv.installers.verify import env_site_dirs, missing, missing_locked
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.settings import PipConfig
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.index import IndexOptions
from pytest_isoenv.spec.lockfiles import LOCK_FIX, is_uv_lock, lock_needs_uv
from pytest_isoenv.spec.reqfiles import absolute_copies, names_url, needs_rewrite
from pytest_isoenv.text import LineSink

if TYPE_CHECKING:
    from pytest_isoenv.discovery import Interpreter


@dataclass(frozen=True)
class InstallerDirs:
    """The folders of the cache root an installer keeps its own data in."""

    app_data: Path
    """virtualenv's app-data: the seed wheels' images it creates envs from."""
    uv_cache: Path
    """uv's cache when uv's own is on another filesystem than the envs (uv links files from its cache)."""
    root: Path | None = None
    """The cache root: never part of a local project's snapshot, as it is never part of its key."""
    seeds: Path | None = None
    """Where the compiled images of pip that envs link to are kept (``None``: each env gets a copy of pip)."""


class Installer(ABC):
    """Creates envs and installs into them. One instance serves a whole session.

    :meth:`build` runs the stages in order, the same for every installer:
    :meth:`create` an env, :meth:`seed` pip into it (linked from the cache, see
    :mod:`pytest_isoenv.installers.seed`), :meth:`install` the spec's
    packages, :meth:`compile` everything to bytecode, and :meth:`verify` that
    what was asked for is installed. Installers differ in the stages, never in
    the order.
    """

    name: ClassVar[str]

    def __init__(self, dirs: InstallerDirs, pip: PipConfig | None = None) -> None:
        self._dirs = dirs
        #: The user's pip configuration (read from ``os.environ`` unless given): pip follows it, uv what carries over.
        self.pip_config = PipConfig.read(os.environ) if pip is None else pip
        #: The installer processes running for this installer's builds; :meth:`stop` stops them.
        self.processes = InstallerProcesses()

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this installer cannot be used on this machine, or ``None`` if it can."""
        return None

    @abstractmethod
    def key_material(self, index: IndexOptions, hashes: FileHashes | None = None) -> dict[str, Any]:
        """The installer's identity and every setting of it that can change what gets installed.

        *hashes* reads the files those settings name (see :mod:`pytest_isoenv.key.material`).
        """

    def unsupported(self, interpreter: Interpreter) -> str | None:
        """Why this installer cannot make envs from *interpreter*, and what to do, or ``None`` if it can.

        Every env gets its pip from virtualenv's bundled wheels, whichever tool creates it, so
        virtualenv's oldest bundled Python is every installer's limit.
        """
        oldest = oldest_seeded_python()
        if oldest is None or interpreter.version_info[:2] >= oldest:
            return None
        wanted, limit = "{}.{}".format(*interpreter.version_info[:2]), "{}.{}".format(*oldest)
        return (
            f"virtualenv {virtualenv_version()} creates envs for Python >= {limit} only (it bundles no pip for "
            f"older ones). Test on Python {limit} or newer, or install an older virtualenv release that still "
            f"supports Python {wanted}"
        )

    def stop(self) -> None:
        """Stop every build in progress: kill its installer processes, so the build ends and leaves nothing."""
        self.processes.stop()

    def build(
        self,
        path: Path,
        interpreter: Path,
        spec: EnvSpec,
        index: IndexOptions,
        *,
        log: Path,
        environ: Mapping[str, str],
        echo: LineSink | None = None,
    ) -> Path:
        """Build an env at *path* from the base *interpreter* with pip and *spec*'s packages; its interpreter.

        *environ* is the session's environment, which the env's own runs are
        isolated from. Raises :class:`BuildError` when a stage fails or the env
        lacks what *spec* asked for, and :class:`BuildInterrupted` when the
        session stopped the build.
        """
        python = self.create(path, interpreter, log=log, environ=environ)
        inside = isolated_environ(path, python.parent, environ)
        if self.sees_linked_pip:
            self.seed(python, log=log, environ=inside)
            self.install(python, spec, index, log=log, environ=inside, echo=echo)
        else:  # links it would write through are made after it, unless it installed a pip itself
            self.install(python, spec, index, log=log, environ=inside, echo=echo)
            self.seed(python, log=log, environ=inside)
        site = env_site_dirs(python, inside)
        self.compile(python, site, log=log, environ=inside)
        self.verify(python, spec, site, log=log, environ=inside)
        return python

    @abstractmethod
    def create(self, path: Path, interpreter: Path, *, log: Path, environ: Mapping[str, str]) -> Path:
        """Create an env at *path* from the base *interpreter*; the env's interpreter."""

    @property
    def links_pip(self) -> bool:
        """Whether envs get pip as links to the cache's compiled image of it (see :mod:`.seed`), not a copy."""
        return self._dirs.seeds is not None and seed.links_supported()

    #: Whether this installer sees pip linked from the cache's image as installed, and so replaces the
    #: links rather than writing through them (pip does: its own ``RECORD`` lists them; uv does not).
    sees_linked_pip = True

    def keeping_pip_image(self, site_packages: Path) -> contextlib.AbstractContextManager[None]:
        """Around an install into an existing env (a private one): what keeps the pip image out of its reach."""
        return contextlib.nullcontext() if self.sees_linked_pip else seed.detached_pip(site_packages)

    def seed(self, python: Path, *, log: Path, environ: Mapping[str, str]) -> None:
        """Put pip into the env of *python*: links to the cache's image of it, or else a copy (:meth:`copy_pip`)."""
        if not self.links_pip:
            self.copy_pip(python, log=log, environ=environ)
            return
        assert self._dirs.seeds is not None

        def compile_image(folder: Path) -> None:
            self._compile(python, [folder], what="compiling pip for the cache failed", log=log, environ=environ)

        try:
            seed.link_pip(python, self._dirs.seeds, environ=environ, compile_image=compile_image)
        except OSError as exc:
            raise BuildError(f"seeding pip into the env failed: {exc}", log=log) from exc

    def copy_pip(self, python: Path, *, log: Path, environ: Mapping[str, str]) -> None:  # noqa: B027 - a hook
        """Put a copy of pip into the env of *python*, where it cannot be linked, if :meth:`create` did not."""

    @abstractmethod
    def install_command(self, python: Path, spec: EnvSpec, index: IndexOptions) -> list[str]:
        """The command that installs *spec*'s packages into the env of *python*."""

    def install(
        self,
        python: Path,
        spec: EnvSpec,
        index: IndexOptions,
        *,
        log: Path,
        environ: Mapping[str, str],
        echo: LineSink | None = None,
    ) -> None:
        """Install *spec*'s packages into the env of *python*. Installs nothing for an empty spec."""
        if not self._has_packages(spec):
            return
        # Local projects are built from snapshots in the env's own folder (python is <env>/bin/python), so
        # that a failed build goes with the env, and the snapshots with the install.
        sources = Path(tempfile.mkdtemp(prefix=".isoenv-sources-", dir=python.parent.parent))
        try:
            snapshots = Snapshots(sources, self._dirs.root)
            with tempfile.TemporaryDirectory(prefix="isoenv-requirements-") as folder:
                commands = self.install_commands(
                    python, with_absolute_paths(spec, Path(folder), snapshots), index, snapshots
                )
                what = f"installing {spec.describe()} failed"
                if snapshots.made:
                    what += (
                        f" ({', '.join(map(str, snapshots.made))} built from a copy of the files that count for "
                        "its key: a build that reads a file outside the project, or one git ignores, does not find "
                        "it; move the file into the project, or install the project editable)"
                    )
                for command in commands:
                    self.processes.run(
                        command, what=what, log=log, env=self.environ(environ), echo=echo, cwd=self.workdir(python)
                    )
            snapshots.restore_urls(env_site_dirs(python, environ) if snapshots.made else ())
        finally:
            shutil.rmtree(sources, ignore_errors=True)

    def install_commands(
        self, python: Path, spec: EnvSpec, index: IndexOptions, snapshots: Snapshots
    ) -> list[list[str]]:
        """The commands, run in order, that install *spec*, whose local folders already name their *snapshots*.

        One :meth:`install_command`, unless the installer points an editable project's own local
        dependencies at their snapshots (:mod:`pytest_isoenv.installers.localdeps`) another way.
        """
        return [self.install_command(python, spec, index)]

    def compile(self, python: Path, site: Sequence[Path], *, log: Path, environ: Mapping[str, str]) -> None:
        """Compile every module of the env to bytecode, so that nothing run from it writes into it.

        A shared env is imported from by many tests and must stay as built, and
        under ``PYTHONDONTWRITEBYTECODE`` every start would compile again.
        Timestamp-based, as the import system writes them. A file that does not
        compile (test data, another Python's syntax) is skipped, as pip skips it.
        *site* are the env's package folders.
        """
        self._compile(python, site, what="compiling the env to bytecode failed", log=log, environ=environ)

    def _compile(
        self, python: Path, folders: Sequence[Path], *, what: str, log: Path, environ: Mapping[str, str]
    ) -> None:
        """Compile *folders* with the env's interpreter, timestamp-based; a file that does not compile is skipped."""
        self.processes.run(
            [
                str(python),
                "-I",
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "timestamp",
                *map(str, folders),
            ],
            what=what,
            log=log,
            env=self.environ(environ),
            check=False,
        )

    def verify(
        self, python: Path, spec: EnvSpec, site: Sequence[Path], *, log: Path, environ: Mapping[str, str]
    ) -> None:
        """Raise :class:`BuildError` naming what *spec* asked for and the env of *python* lacks."""
        problems = missing(spec, python, tuple(site), environ)
        if spec.lock is not None:
            problems += missing_locked(installed_lock(python, spec.lock), python, tuple(site), environ)
        if problems:
            raise BuildError(
                f"installing {spec.describe()} did not install it into the env: {'; '.join(problems)}. "
                "Check the pip or uv configuration (a target, prefix or user setting sends installs elsewhere) "
                "and the build log",
                log=log,
            )

    def environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The variables the installer's commands run with, made from *environ*."""
        return dict(environ)

    def workdir(self, python: Path) -> Path | None:
        """Where the installer's commands run for the env of *python* (``None``: where pytest runs)."""
        return None

    @staticmethod
    def _has_packages(spec: EnvSpec) -> bool:
        return bool(
            spec.requirements
            or spec.local
            or spec.editable
            or spec.requirements_files
            or spec.lock
            or any(r for _, r in spec.groups)
        )

    def check_lock(self, spec: EnvSpec) -> None:
        """Raise :class:`SpecError` if this installer cannot install *spec*'s lock file (pip cannot)."""
        if spec.lock is not None:
            raise SpecError(lock_needs_uv(str(spec.lock)), fix=LOCK_FIX)

    def resolution_arguments(self, resolution: str) -> list[str]:
        """The arguments that make the installer pick versions by *resolution* (one of ``RESOLUTIONS``)."""
        if resolution != "highest":
            raise SpecError(resolution_needs_uv(resolution))
        return []

    def package_arguments(self, spec: EnvSpec) -> list[str]:
        """The requirement arguments pip and ``uv pip`` share, and the resolution strategy's.

        Dependency groups are passed as the requirements they resolved to,
        which every installer version understands.
        """
        args = [*spec.requirements, *(str(path) + spec.extras_of(path) for path in spec.local)]
        for _, requirements in spec.groups:
            args += requirements
        args += self.resolution_arguments(spec.resolution)
        for project in spec.editable:
            args += ["-e", str(project) + spec.extras_of(project)]
        for path in spec.requirements_files:
            args += ["-r", str(path)]
        if spec.constraints is not None:
            args += ["-c", str(spec.constraints)]
        return args

    def find_links(self, index: IndexOptions) -> list[str]:
        """Every find-links location an install sees: the plugin's, then those of the user's configuration.

        A distribution installed from one of them records no origin of its own (no ``direct_url.json``):
        these are where its archive is looked for (see :mod:`pytest_isoenv.key.sources`).
        """
        configured = self.pip_config.settings.get("find-links")
        return [*index.find_links, *(configured.values if configured else [])]

    def index_arguments(self, index: IndexOptions) -> list[str]:
        """The index arguments of the install command (what pip and ``uv pip`` share)."""
        args = ["--index-url", index.index_url] if index.index_url else []
        for link in index.find_links:
            args += ["--find-links", link]
        if index.offline:
            args.append("--no-index")
        return args


def with_absolute_paths(spec: EnvSpec, folder: Path, snapshots: Snapshots | None = None) -> EnvSpec:
    """*spec* with its requirements and constraints files replaced by copies in *folder* whose paths are absolute.

    Paths in a requirements file mean the file's folder, whichever installer runs and wherever (see
    :func:`pytest_isoenv.spec.reqfiles.absolute_copies`). Files without local paths are used as they are.
    With *snapshots*, every local project folder the spec names, directly, by a ``file:`` URL or in a
    requirements file, is replaced by its snapshot: the one place every route to a local build passes.
    """
    if snapshots is not None:
        spec = snapshots.spec(spec)
    files = [*spec.requirements_files, *([spec.constraints] if spec.constraints else [])]
    if not any(needs_rewrite(path) or (snapshots is not None and names_url(path)) for path in files):
        return spec
    copies = absolute_copies(files, folder, relocate=None if snapshots is None else snapshots.relocate)
    return dataclasses.replace(
        spec,
        requirements_files=tuple(copies[p] for p in spec.requirements_files),
        constraints=None if spec.constraints is None else copies[spec.constraints],
    )


def installed_lock(python: Path, lock: Path) -> Path:
    """The ``pylock.toml`` the env of *python* was installed from: *lock* itself, or the one a ``uv.lock`` became.

    The export of a ``uv.lock`` stays in the env's folder, a record of what it holds.
    """
    return python.parent.parent / EXPORTED_LOCK if is_uv_lock(lock) else lock


#: The name, in an env's folder, of the ``pylock.toml`` a ``uv.lock`` was exported to.
EXPORTED_LOCK = "pylock.isoenv.toml"


def resolution_needs_uv(resolution: str) -> str:
    """The error for a resolution strategy other than ``highest`` asked of pip."""
    return (
        f"--isoenv-resolution {resolution} needs the uv installer: pip always installs the highest versions "
        "allowed and has no option to pick the lowest. Install uv (pip install pytest-isoenv[uv]) and use "
        "--isoenv-installer uv (or auto), or use --isoenv-resolution highest"
    )


@functools.cache
def virtualenv_version() -> str:
    """The installed virtualenv's version, read without importing it."""
    return importlib.metadata.version("virtualenv")


def bundled_wheels() -> Path:
    """The folder of the pip (and setuptools) wheels virtualenv bundles, which seed every env's pip."""
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER

    return Path(BUNDLE_FOLDER)


def oldest_seeded_python() -> tuple[int, int] | None:
    """The oldest Python the installed virtualenv bundles pip for, so can create a working env for."""
    try:
        from virtualenv.seed.wheels.embed import BUNDLE_SUPPORT
    except ImportError:  # pragma: no cover - a virtualenv laid out differently; it will say so itself
        return None
    major, minor = min(tuple(int(part) for part in version.split(".")) for version in BUNDLE_SUPPORT)[:2]
    return major, minor
