"""The tools that create envs and install into them, behind one small interface, chosen by name."""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from packaging.requirements import Requirement

from . import keys
from .errors import BuildError, SpecError
from .keys import FileHashes
from .spec import EnvSpec

if TYPE_CHECKING:
    from .discovery import Interpreter

#: Receives each line of installer output as it comes (the terminal under ``-v``), or nothing.
Echo = Callable[[str], None]


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


def run_logged(
    cmd: Sequence[str],
    *,
    what: str,
    log: Path,
    env: Mapping[str, str],
    echo: Echo | None = None,
    cwd: Path | None = None,
) -> None:
    """Run an installer command, appending its output to *log*; raise :class:`BuildError` on failure."""
    last: deque[str] = deque(maxlen=200)
    with log.open("a", encoding="utf-8") as stream:
        stream.write(f"$ {subprocess.list2cmdline(cmd)}\n")
        stream.flush()
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                list(cmd),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=dict(env),
                cwd=cwd,
            )
        except OSError as exc:
            raise BuildError(f"{what}: cannot start {cmd[0]!r} ({exc})", cmd=cmd, log=log) from exc
        assert proc.stdout is not None
        with proc:
            try:
                for line in proc.stdout:
                    stream.write(line)
                    last.append(line)
                    if echo is not None:
                        echo(line.rstrip("\n"))
            except BaseException:
                # An interrupted build is removed by the caller: the installer must not go on writing into it.
                proc.kill()
                proc.wait()
                raise
        stream.write(f"# exit code {proc.returncode} after {time.monotonic() - started:.2f}s\n")
    if proc.returncode:
        raise BuildError(what, cmd=cmd, returncode=proc.returncode, output="".join(last), log=log)


def with_absolute_paths(spec: EnvSpec, folder: Path) -> EnvSpec:
    """*spec* with its requirements and constraints files replaced by copies in *folder* whose paths are absolute.

    Paths in a requirements file mean the file's folder, whichever installer runs and wherever (see
    :func:`pytest_isoenv.keys.absolute_copies`). Files without local paths are used as they are.
    """
    files = [*spec.requirements_files, *([spec.constraints] if spec.constraints else [])]
    if not any(keys.needs_rewrite(path) for path in files):
        return spec
    copies = keys.absolute_copies(files, folder)
    return dataclasses.replace(
        spec,
        requirements_files=tuple(copies[p] for p in spec.requirements_files),
        constraints=None if spec.constraints is None else copies[spec.constraints],
    )


class Installer(ABC):
    """Creates envs and installs into them. One instance serves a whole session."""

    name: ClassVar[str]

    def __init__(self, app_data: Path) -> None:
        #: The cache's folder for virtualenv's app-data; installers keep their own data beside it.
        self._app_data = app_data

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

    @abstractmethod
    def create(self, path: Path, interpreter: Path, *, log: Path, environ: Mapping[str, str]) -> Path:
        """Create an env at *path* from the base *interpreter*, with pip in it; the env's interpreter."""

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
        extra: Sequence[str] = (),
    ) -> None:
        """Install *spec*'s packages into the env of *python*. Installs nothing for an empty spec.

        *extra* arguments go at the end of the install command.
        """
        if not self._has_packages(spec):
            return
        with tempfile.TemporaryDirectory(prefix="isoenv-requirements-") as folder:
            run_logged(
                [*self.install_command(python, with_absolute_paths(spec, Path(folder)), index), *extra],
                what=f"installing {spec.describe()} failed",
                log=log,
                env=self.environ(environ),
                echo=echo,
                cwd=self.workdir(python),
            )

    def environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The variables the installer's commands run with, made from *environ*."""
        return dict(environ)

    def workdir(self, python: Path) -> Path | None:
        """Where the installer's commands run for the env of *python* (``None``: where pytest runs)."""
        return None

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
        """Create an env at *path* with pip and *spec*'s packages in it; the env's interpreter.

        *environ* is the session's environment, which the env's own runs are isolated from.
        """
        from .env import isolated_environ

        python = self.create(path, interpreter, log=log, environ=environ)
        self.install(python, spec, index, log=log, environ=isolated_environ(path, python.parent, environ), echo=echo)
        return python

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

    @staticmethod
    def index_arguments(index: IndexOptions) -> list[str]:
        """The index arguments pip and ``uv pip`` share."""
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

    def key_material(self, index: IndexOptions, hashes: FileHashes | None = None) -> dict[str, Any]:
        # virtualenv pins the pip it seeds, so its version names the pip that installs.
        hashes = FileHashes() if hashes is None else hashes
        return {
            "installer": self.name,
            "virtualenv": virtualenv_version(),
            "index": index.key_material(hashes),
            "settings": keys.pip_resolution_settings(os.environ, hashes),
        }

    def create(self, path: Path, interpreter: Path, *, log: Path, environ: Mapping[str, str]) -> Path:
        args = [
            str(path),
            "--python", str(interpreter),
            "--app-data", str(self._app_data),
            "--no-periodic-update",
            "--pip", "bundle",
            "--no-setuptools",
            "--no-vcs-ignore",
            "--quiet",
        ]  # fmt: skip
        with log.open("a", encoding="utf-8") as stream:
            stream.write(f"$ virtualenv {subprocess.list2cmdline(args)}\n")
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
    """``uv venv`` (with pip seeded from virtualenv's bundled wheels) and ``uv pip install``.

    uv links files from its cache into envs, so its cache must be on the
    env's filesystem: when uv's own cache is on another device than the isoenv
    cache, uv gets a cache inside the isoenv cache root instead of copying.
    """

    name = "uv"

    def __init__(self, app_data: Path) -> None:
        super().__init__(app_data)
        uv = find_uv()
        if uv is None:
            raise RuntimeError(self.unavailable())
        self._uv = uv
        self._cache_root = app_data.parent
        self._version: str | None = None
        self._cache_dir: str | None = None

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
            "settings": keys.uv_resolution_settings(os.environ, hashes),
        }

    def environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """*environ* for running uv, with ``UV_CACHE_DIR`` set when uv's cache is on another filesystem."""
        if self._cache_dir is None:
            self._cache_dir = ""
            user_cache: Path | None = Path(environ["UV_CACHE_DIR"]) if environ.get("UV_CACHE_DIR") else None
            if user_cache is None:  # uv knows its default and its config files' cache-dir
                proc = subprocess.run(
                    [str(self._uv), "cache", "dir"], capture_output=True, text=True, env=dict(environ), check=False
                )
                user_cache = Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None
            if user_cache is None or _device(user_cache) != _device(self._cache_root):
                self._cache_dir = str(self._cache_root / "uv")
        return {**environ, "UV_CACHE_DIR": self._cache_dir} if self._cache_dir else dict(environ)

    def workdir(self, python: Path) -> Path:
        # Inside the env: uv reads project configuration (uv.toml, [tool.uv]) from the working directory
        # up, and an env shared by every project must not depend on where pytest started.
        return python.parent

    def _run(self, args: Sequence[str], *, what: str, log: Path, environ: Mapping[str, str], cwd: Path) -> None:
        run_logged([str(self._uv), *args], what=what, log=log, env=self.environ(environ), cwd=cwd)

    def create(self, path: Path, interpreter: Path, *, log: Path, environ: Mapping[str, str]) -> Path:
        python = self._venv(path, interpreter, log=log, environ=environ)
        self._seed_pip(python, log=log, environ=environ)
        return python

    def _venv(self, path: Path, interpreter: Path, *, log: Path, environ: Mapping[str, str]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._run(
            ["venv", "--quiet", "--no-project", "--python", str(interpreter), str(path)],
            what=f"uv could not create an env from {interpreter}",
            log=log,
            environ=environ,
            cwd=path.parent,
        )
        scripts = "Scripts" if sys.platform == "win32" else "bin"
        return path / scripts / ("python.exe" if sys.platform == "win32" else "python")

    def _seed_pip(self, python: Path, *, log: Path, environ: Mapping[str, str]) -> None:
        # virtualenv's bundled wheels: no index needed. A pip the spec installed itself satisfies "pip".
        self._run(
            [
                "pip",
                "install",
                "--quiet",
                "--python",
                str(python),
                "--no-index",
                "--find-links",
                str(bundled_wheels()),
                "pip",
            ],
            what="seeding pip into the env failed",
            log=log,
            environ=environ,
            cwd=self.workdir(python),
        )

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
        """``uv venv``, ``uv pip install`` of *spec*'s packages, compiled to bytecode, then pip.

        A cached env is imported from by many tests, and nothing may write into
        it (nor can, under ``PYTHONDONTWRITEBYTECODE``), so its packages are
        compiled once here, as pip does. pip comes last: uv compiles all of
        site-packages, and pip's own thousand files are rarely imported.
        """
        from .env import isolated_environ

        python = self._venv(path, interpreter, log=log, environ=environ)
        inside = isolated_environ(path, python.parent, environ)
        self.install(python, spec, index, log=log, environ=inside, echo=echo, extra=["--compile-bytecode"])
        self._seed_pip(python, log=log, environ=inside)
        return python

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
            *self.package_arguments(spec),
        ]  # fmt: skip


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


def installer_class(name: str | None, *, where: str | None = None) -> type[Installer]:
    """The installer called *name* (``None`` or ``"auto"``: uv when available, else pip).

    Raises :class:`SpecError` for an unknown name or an installer this machine lacks.
    """
    choices = f"Choose one of: auto, {', '.join(INSTALLERS)}"
    if name in (None, "auto"):
        return UvInstaller if UvInstaller.unavailable() is None else PipInstaller
    if name not in INSTALLERS:
        raise SpecError(f"unknown installer {name!r}", where=where, fix=choices)
    reason = INSTALLERS[name].unavailable()
    if reason is not None:
        raise SpecError(f"installer {name!r} is not available ({reason})", where=where, fix=choices)
    return INSTALLERS[name]


def select_installer(name: str | None, *, app_data: Path, where: str | None = None) -> Installer:
    """The installer called *name* (``None`` or ``"auto"``: the best available)."""
    return installer_class(name, where=where)(app_data)
