"""The tools that create envs and install into them, behind one small interface, chosen by name."""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from packaging.requirements import Requirement

from . import keys
from .env import isolated_environ
from .errors import BuildError, SpecError
from .keys import FileHashes
from .processes import BuildInterrupted, Echo, Processes, run_logged
from .reqfiles import absolute_copies, needs_rewrite
from .spec import EnvSpec
from .toolconfig import (
    dropped_pip_settings,
    pip_config_files,
    pip_environ,
    pip_resolution_settings,
    pip_settings,
    uv_config,
    uv_config_files,
    uv_from_pip,
    uv_resolution_settings,
)
from .verify import missing

if TYPE_CHECKING:
    from .discovery import Interpreter


@dataclass(frozen=True)
class IndexOptions:
    """Where packages come from, as set by the plugin's own options."""

    index_url: str | None = None
    find_links: tuple[str, ...] = ()
    offline: bool = False

    def check_reachable(self, spec: EnvSpec, *, where: str | None = None) -> None:
        """Refuse, before anything is built, a requirement these options cannot fetch: a URL while offline."""
        if not self.offline:
            return
        if spec.index_url is not None:
            raise SpecError(
                f"index_url={spec.index_url!r} is an index, but installs are offline (--isoenv-offline)",
                where=where,
                fix="Put the packages in a find_links= folder instead, or run without --isoenv-offline",
            )
        for requirement in spec.requirements:
            url = Requirement(requirement).url
            if url and not url.startswith("file:"):
                raise SpecError(
                    f"requirement {requirement!r} needs the network, but installs are offline (--isoenv-offline)",
                    where=where,
                    fix="Put the package in an --isoenv-find-links folder and require it by name, or pass a local path",
                )

    def for_spec(self, spec: EnvSpec) -> IndexOptions:
        """These options with *spec*'s own added: its find-links besides the session's, its index instead."""
        if not spec.find_links and spec.index_url is None:
            return self
        return IndexOptions(
            index_url=spec.index_url or self.index_url,
            find_links=tuple(dict.fromkeys((*self.find_links, *spec.find_links))),
            offline=self.offline,
        )

    def key_material(self, hashes: FileHashes | None = None) -> dict[str, Any]:
        """These options as they count for the key (see :func:`pytest_isoenv.keys.index_material`)."""
        return keys.index_material(self, FileHashes() if hashes is None else hashes)


_SITE_DIRS = "import json, sysconfig; print(json.dumps([sysconfig.get_path('purelib'), sysconfig.get_path('platlib')]))"


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


def with_absolute_paths(spec: EnvSpec, folder: Path) -> EnvSpec:
    """*spec* with its requirements and constraints files replaced by copies in *folder* whose paths are absolute.

    Paths in a requirements file mean the file's folder, whichever installer runs and wherever (see
    :func:`pytest_isoenv.reqfiles.absolute_copies`). Files without local paths are used as they are.
    """
    files = [*spec.requirements_files, *([spec.constraints] if spec.constraints else [])]
    if not any(needs_rewrite(path) for path in files):
        return spec
    copies = absolute_copies(files, folder)
    return dataclasses.replace(
        spec,
        requirements_files=tuple(copies[p] for p in spec.requirements_files),
        constraints=None if spec.constraints is None else copies[spec.constraints],
    )


@dataclass(frozen=True)
class InstallerDirs:
    """The folders of the cache root an installer keeps its own data in."""

    app_data: Path
    """virtualenv's app-data: the seed wheels' images it creates envs from."""
    uv_cache: Path
    """uv's cache when uv's own is on another filesystem than the envs (uv links files from its cache)."""


class Installer(ABC):
    """Creates envs and installs into them. One instance serves a whole session.

    :meth:`build` runs the stages in order, the same for every installer:
    :meth:`create` an env, :meth:`seed` pip into it, :meth:`install` the spec's
    packages, :meth:`compile` everything to bytecode, then check that what was
    asked for is installed. Installers differ in the stages, never in the order.
    """

    name: ClassVar[str]

    def __init__(self, dirs: InstallerDirs) -> None:
        self._dirs = dirs
        #: The installer processes running for this installer's builds; :meth:`stop` stops them.
        self.processes = Processes()

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this installer cannot be used on this machine, or ``None`` if it can."""
        return None

    @abstractmethod
    def key_material(self, index: IndexOptions, hashes: FileHashes | None = None) -> dict[str, Any]:
        """The installer's identity and every setting of it that can change what gets installed.

        *hashes* reads the files those settings name (see :mod:`pytest_isoenv.keys`).
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
        echo: Echo | None = None,
    ) -> Path:
        """Build an env at *path* from the base *interpreter* with pip and *spec*'s packages; its interpreter.

        *environ* is the session's environment, which the env's own runs are
        isolated from. Raises :class:`BuildError` when a stage fails or the env
        lacks what *spec* asked for, and :class:`BuildInterrupted` when the
        session stopped the build.
        """
        python = self.create(path, interpreter, log=log, environ=environ)
        inside = isolated_environ(path, python.parent, environ)
        self.seed(python, log=log, environ=inside)
        self.install(python, spec, index, log=log, environ=inside, echo=echo)
        site = env_site_dirs(python, inside)
        self.compile(python, site, log=log, environ=inside)
        self.verify(python, spec, site, log=log, environ=inside)
        return python

    @abstractmethod
    def create(self, path: Path, interpreter: Path, *, log: Path, environ: Mapping[str, str]) -> Path:
        """Create an env at *path* from the base *interpreter*; the env's interpreter."""

    def seed(self, python: Path, *, log: Path, environ: Mapping[str, str]) -> None:  # noqa: B027 - a hook
        """Put pip into the env of *python*, if :meth:`create` did not."""

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
        echo: Echo | None = None,
    ) -> None:
        """Install *spec*'s packages into the env of *python*. Installs nothing for an empty spec."""
        if not self._has_packages(spec):
            return
        with tempfile.TemporaryDirectory(prefix="isoenv-requirements-") as folder:
            self._run(
                self.install_command(python, with_absolute_paths(spec, Path(folder)), index),
                what=f"installing {spec.describe()} failed",
                log=log,
                environ=environ,
                echo=echo,
                cwd=self.workdir(python),
            )

    def compile(self, python: Path, site: Sequence[Path], *, log: Path, environ: Mapping[str, str]) -> None:
        """Compile every module of the env to bytecode, so that nothing run from it writes into it.

        A shared env is imported from by many tests and must stay as built, and
        under ``PYTHONDONTWRITEBYTECODE`` every start would compile again.
        Timestamp-based, as the import system writes them. A file that does not
        compile (test data, another Python's syntax) is skipped, as pip skips it.
        *site* are the env's package folders.
        """
        self._run(
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
                *map(str, site),
            ],
            what="compiling the env to bytecode failed",
            log=log,
            environ=environ,
            check=False,
        )

    def verify(
        self, python: Path, spec: EnvSpec, site: Sequence[Path], *, log: Path, environ: Mapping[str, str]
    ) -> None:
        """Raise :class:`BuildError` naming what *spec* asked for and the env of *python* lacks."""
        problems = missing(spec, python, tuple(site), environ)
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

    def _run(
        self,
        cmd: Sequence[str],
        *,
        what: str,
        log: Path,
        environ: Mapping[str, str],
        echo: Echo | None = None,
        cwd: Path | None = None,
        check: bool = True,
    ) -> None:
        run_logged(
            cmd,
            what=what,
            log=log,
            env=self.environ(environ),
            echo=echo,
            cwd=cwd,
            processes=self.processes,
            check=check,
        )

    @staticmethod
    def _has_packages(spec: EnvSpec) -> bool:
        return bool(
            spec.requirements
            or spec.local
            or spec.editable
            or spec.requirements_files
            or any(r for _, r in spec.groups)
        )

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

    def index_arguments(self, index: IndexOptions) -> list[str]:
        """The index arguments of the install command (what pip and ``uv pip`` share)."""
        args = ["--index-url", index.index_url] if index.index_url else []
        for link in index.find_links:
            args += ["--find-links", link]
        if index.offline:
            args.append("--no-index")
        return args


def resolution_needs_uv(resolution: str) -> str:
    """The error for a resolution strategy other than ``highest`` asked of pip."""
    return (
        f"--isoenv-resolution {resolution} needs the uv installer: pip always installs the highest versions "
        "allowed and has no option to pick the lowest. Install uv (pip install pytest-isoenv[uv]) and use "
        "--isoenv-installer uv (or auto), or use --isoenv-resolution highest"
    )


# virtualenv's cli_run is made for one call at a time per process: its option parser, creator and
# seeder plugins are found through process-wide registries and it keeps module-level caches. Creating
# takes a fraction of a build (installing is the slow part, in a subprocess), so builds running in
# threads create one env at a time and install in parallel.
_VIRTUALENV_LOCK = threading.Lock()


class PipInstaller(Installer):
    """virtualenv (through its Python API, seeding pip from its app-data) and the env's own pip."""

    name = "pip"

    def __init__(self, dirs: InstallerDirs) -> None:
        super().__init__(dirs)
        self._settings = pip_settings(os.environ, pip_config_files(os.environ))

    def key_material(self, index: IndexOptions, hashes: FileHashes | None = None) -> dict[str, Any]:
        # virtualenv pins the pip it seeds, so its version names the pip that installs.
        hashes = FileHashes() if hashes is None else hashes
        return {
            "installer": self.name,
            "virtualenv": virtualenv_version(),
            "index": index.key_material(hashes),
            "settings": pip_resolution_settings(os.environ, hashes),
        }

    def environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """*environ* with the user's pip configuration restated, less what would send installs elsewhere."""
        return pip_environ(environ, self._settings)

    def create(self, path: Path, interpreter: Path, *, log: Path, environ: Mapping[str, str]) -> Path:
        args = [
            str(path),
            "--python", str(interpreter),
            "--app-data", str(self._dirs.app_data),
            "--no-periodic-update",
            "--pip", "bundle",
            "--no-setuptools",
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


def find_uv() -> Path | None:
    """The uv executable: the one the ``uv`` package ships (``pytest-isoenv[uv]``), else one on PATH."""
    found = _find_uv()
    return None if found is None else found[0]


@functools.cache
def _find_uv() -> tuple[Path, str | None] | None:
    """uv's executable and, when it is the ``uv`` package's, that package's version (no need to run it)."""
    try:
        from uv import find_uv_bin

        return Path(find_uv_bin()), f"uv {importlib.metadata.version('uv')}"
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        return (Path(found), None) if found else None


class UvInstaller(Installer):
    """``uv venv``, pip seeded from virtualenv's bundled wheels, and ``uv pip install``.

    uv sees exactly the configuration the key covers: the user's and the
    system's ``uv.toml`` (or ``UV_CONFIG_FILE``), never a project's (the cache
    may be inside one), and pip's index settings, carried over. uv links files
    from its cache into envs, so its cache must be on the envs' filesystem:
    when uv's own cache is on another device, uv gets one in the isoenv cache.
    """

    name = "uv"

    def __init__(self, dirs: InstallerDirs) -> None:
        super().__init__(dirs)
        uv = find_uv()
        if uv is None:
            raise RuntimeError(self.unavailable())
        self._uv = uv
        self._version: str | None = None
        self._cache_dir: str | None = None
        self._config: dict[str, str] | None = None
        self._config_dir: Path | None = None
        #: The user's pip settings, as uv arguments and variables.
        self.from_pip = uv_from_pip(pip_settings(os.environ, pip_config_files(os.environ)))

    @classmethod
    def unavailable(cls) -> str | None:
        if find_uv() is None:
            return "uv is not installed: install pytest-isoenv[uv] or put uv on PATH"
        return None

    @property
    def version(self) -> str:
        """uv's version: the ``uv`` package's, or ``uv --version`` for another uv, asked once."""
        if self._version is None:
            self._version = (_find_uv() or (None, None))[1]
        if self._version is None:
            proc = subprocess.run([str(self._uv), "--version"], capture_output=True, text=True, check=False)
            self._version = proc.stdout.strip() or f"unknown ({self._uv})"
        return self._version

    def key_material(self, index: IndexOptions, hashes: FileHashes | None = None) -> dict[str, Any]:
        # virtualenv's version names the pip wheel seeded into every env.
        hashes = FileHashes() if hashes is None else hashes
        return {
            "installer": self.name,
            "uv": self.version,
            "virtualenv": virtualenv_version(),
            "index": index.key_material(hashes),
            "settings": uv_resolution_settings(os.environ, hashes),
            # pip's settings are carried over to uv (see toolconfig): the files they name count by content.
            "pip_settings": pip_resolution_settings(os.environ, hashes),
            "pip": self.from_pip.key_material(),
        }

    def environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """*environ* for running uv: its own configuration only, and a cache on the envs' filesystem."""
        result = {**self.from_pip.environ, **environ, **self._configuration()}
        if self._cache_dir is None:
            self._cache_dir = ""
            user_cache: Path | None = Path(environ["UV_CACHE_DIR"]) if environ.get("UV_CACHE_DIR") else None
            if user_cache is None:  # uv knows its default and its config files' cache-dir
                proc = subprocess.run(
                    [str(self._uv), "cache", "dir"], capture_output=True, text=True, env=result, check=False
                )
                user_cache = Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None
            if user_cache is None or _device(user_cache) != _device(self._dirs.uv_cache.parent):
                self._cache_dir = str(self._dirs.uv_cache)
        if self._cache_dir:
            result["UV_CACHE_DIR"] = self._cache_dir
        return result

    def _configuration(self) -> dict[str, str]:
        """The variables that make uv read the user's and system's configuration and no project's.

        ``UV_NO_CONFIG`` stops uv looking for files; ``UV_CONFIG_FILE`` (which
        wins over it) names the one file made of what the key includes.
        """
        if self._config is None:
            files = uv_config_files(os.environ)
            try:
                text = uv_config(files)[0]
            except ValueError:  # unreadable: give uv the file itself, so uv says what is wrong
                self._config = {"UV_NO_CONFIG": "1", "UV_CONFIG_FILE": str(files[0])}
                return self._config
            self._config = {"UV_NO_CONFIG": "1"}
            if text is not None:
                self._config_dir = Path(tempfile.mkdtemp(prefix="isoenv-uv-config-"))
                weakref.finalize(self, shutil.rmtree, self._config_dir, True)
                config = self._config_dir / "uv.toml"
                config.write_text(text, encoding="utf-8")
                self._config["UV_CONFIG_FILE"] = str(config)
        return self._config

    def workdir(self, python: Path) -> Path:
        # Inside the env: an env shared by every project must not depend on where pytest started.
        return python.parent

    def create(self, path: Path, interpreter: Path, *, log: Path, environ: Mapping[str, str]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._run(
            [str(self._uv), "venv", "--quiet", "--no-project", "--python", str(interpreter), str(path)],
            what=f"uv could not create an env from {interpreter}",
            log=log,
            environ=environ,
            cwd=path.parent,
        )
        scripts = "Scripts" if sys.platform == "win32" else "bin"
        return path / scripts / ("python.exe" if sys.platform == "win32" else "python")

    def seed(self, python: Path, *, log: Path, environ: Mapping[str, str]) -> None:
        """pip from virtualenv's bundled wheels (no index needed), as every env has it.

        Before the spec's packages: a pip the spec asks for replaces it.
        """
        command = [
            str(self._uv), "pip", "install", "--quiet", "--python", str(python),
            "--no-index", "--find-links", str(bundled_wheels()), "pip",
        ]  # fmt: skip
        self._run(
            command,
            what="seeding pip into the env failed",
            log=log,
            environ=environ,
            cwd=self.workdir(python),
        )

    def resolution_arguments(self, resolution: str) -> list[str]:
        return [] if resolution == "highest" else ["--resolution", resolution]

    def install_command(self, python: Path, spec: EnvSpec, index: IndexOptions) -> list[str]:
        # uv takes a wheel in a find-links folder for immutable by its file name, and a local project's
        # build for current while its pyproject.toml is: a new key made for a changed local file must
        # not get uv's cached copy of the old one.
        refresh = ["--refresh"] if keys.uses_local_files(spec, index.find_links, os.environ) else []
        return [
            str(self._uv), "pip", "install", "--python", str(python), *refresh,
            *self.index_arguments(index),
            *self.from_pip.arguments,
            *self.package_arguments(spec),
        ]  # fmt: skip

    def index_arguments(self, index: IndexOptions) -> list[str]:
        """The plugin's index options and, under them, the user's pip index settings, as pip would combine them.

        The plugin's index URL replaces pip's; find-links locations and extra
        indexes add up. pip takes the best version from every index, so with
        extra indexes uv does too (``--index-strategy unsafe-best-match``).
        """
        pip = self.from_pip
        index_url = index.index_url or pip.index_url
        args = ["--index-url", index_url] if index_url else []
        for url in pip.extra_index_urls:
            args += ["--extra-index-url", url]
        if pip.extra_index_urls and "UV_INDEX_STRATEGY" not in os.environ:
            args += ["--index-strategy", "unsafe-best-match"]
        for link in (*pip.find_links, *index.find_links):
            args += ["--find-links", link]
        if index.offline or pip.no_index:
            args.append("--no-index")
        return args


def _device(path: Path) -> int | None:
    """The device of *path*, or of its nearest existing parent."""
    for candidate in (path, *path.parents):
        try:
            return candidate.stat().st_dev
        except OSError:
            continue
    return None


#: The installers by name: the choices of ``--isoenv-installer``.
INSTALLERS: dict[str, type[Installer]] = {"pip": PipInstaller, "uv": UvInstaller}


def auto_choice() -> tuple[type[Installer], str | None]:
    """The installer ``auto`` means on this machine, and why it is not uv when uv is installed.

    uv when it is installed and can follow the user's pip settings; pip otherwise.
    """
    if UvInstaller.unavailable() is not None:
        return PipInstaller, None
    cannot = uv_from_pip(pip_settings(os.environ, pip_config_files(os.environ))).not_carried
    if cannot:
        return PipInstaller, f"uv cannot follow the pip setting(s) {', '.join(cannot)}"
    return UvInstaller, None


def installer_notes(name: str | None) -> tuple[str, list[str]]:
    """For the report header: the installer *name* means, with why ``auto`` did not choose uv; and warnings.

    The warnings name the user's settings that no build follows: pip settings
    an explicitly chosen uv cannot follow, and settings of either tool that
    would send installs out of the env.
    """
    cls, why = auto_choice() if name in (None, "auto") else (installer_class(name), None)
    label = f"{cls.name} (auto: not uv, as {why})" if why else cls.name
    pip = pip_settings(os.environ, pip_config_files(os.environ))
    warnings = []
    if cls is UvInstaller:
        cannot = uv_from_pip(pip).not_carried
        if cannot:
            warnings.append(
                f"the uv installer ignores the pip setting(s) {', '.join(cannot)}, which uv cannot follow; "
                "use --isoenv-installer pip (or auto) to have them followed"
            )
        try:
            elsewhere = [f"{option} (uv configuration)" for option in uv_config(uv_config_files(os.environ))[1]]
        except ValueError:
            elsewhere = []
    else:
        elsewhere = dropped_pip_settings(pip)
    if elsewhere:
        warnings.append(f"ignoring setting(s) that would install outside the env: {', '.join(elsewhere)}")
    return label, warnings


def installer_class(name: str | None, *, where: str | None = None) -> type[Installer]:
    """The installer called *name* (``None`` or ``"auto"``: see :func:`auto_choice`).

    Raises :class:`SpecError` for an unknown name or an installer this machine lacks.
    """
    choices = f"Choose one of: auto, {', '.join(INSTALLERS)}"
    if name in (None, "auto"):
        return auto_choice()[0]
    if name not in INSTALLERS:
        raise SpecError(f"unknown installer {name!r}", where=where, fix=choices)
    reason = INSTALLERS[name].unavailable()
    if reason is not None:
        raise SpecError(f"installer {name!r} is not available ({reason})", where=where, fix=choices)
    return INSTALLERS[name]


def select_installer(name: str | None, *, dirs: InstallerDirs, where: str | None = None) -> Installer:
    """The installer called *name* (``None`` or ``"auto"``: the best available), keeping its data in *dirs*."""
    return installer_class(name, where=where)(dirs)
