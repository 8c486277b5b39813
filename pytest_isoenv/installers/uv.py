"""The uv installer: ``uv venv``, pip seeded from virtualenv's wheels, ``uv pip install``, and what uv sees.

uv runs with exactly the configuration the key covers (the user's and the
system's ``uv.toml``, never a project's, and pip's index settings carried
over; see :mod:`pytest_isoenv.key.uvconfig` and :mod:`pytest_isoenv.key.settings`) and with a cache on the envs'
filesystem. The stages run in the order :meth:`Installer.build
<pytest_isoenv.installers.api.Installer.build>` gives them.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from pytest_isoenv.errors import SpecError
from pytest_isoenv.installers.api import Installer, InstallerDirs, bundled_wheels, installed_lock, virtualenv_version
from pytest_isoenv.installers.localdeps import file_folder, source_folders, static_requirements
from pytest_isoenv.installers.snapshot import Snapshots
from pytest_isoenv.key import material as keys
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.material import index_material
from pytest_isoenv.key.settings import PipConfig, uv_from_pip
from pytest_isoenv.key.uvconfig import (
    UV_ELSEWHERE_VARIABLES,
    flat_indexes,
    uv_config,
    uv_config_files,
    uv_resolution_settings,
)
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.index import IndexOptions
from pytest_isoenv.spec.lockfiles import UV_FOR_LOCKS, is_uv_lock, local_sources
from pytest_isoenv.text import LineSink
from pytest_isoenv.tomlfile import read_toml


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

    #: uv lists only real folders of site-packages: it would install a pip through the links to the image.
    sees_linked_pip = False

    name = "uv"

    def __init__(self, dirs: InstallerDirs, pip: PipConfig | None = None) -> None:
        super().__init__(dirs, pip)
        uv = find_uv()
        if uv is None:
            raise RuntimeError(self.unavailable())
        self._uv = uv
        self._version: str | None = None
        self._cache_dir: str | None = None
        self._config: dict[str, str] | None = None
        self._config_dir: Path | None = None
        #: The user's pip settings, as uv arguments and variables.
        self.from_pip = uv_from_pip(self.pip_config.settings)

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
            "index": index_material(index, hashes),
            "settings": uv_resolution_settings(os.environ, hashes),
            # pip's settings are carried over to uv (see toolconfig): the files they name count by content.
            "pip_settings": self.pip_config.resolution_settings(hashes),
            "pip": self.from_pip.key_material(),
        }

    def environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """*environ* for running uv: its own configuration only, and a cache on the envs' filesystem."""
        result = {**self.from_pip.environ, **environ, **self._configuration()}
        for name in UV_ELSEWHERE_VARIABLES:
            result.pop(name, None)
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
        self.processes.run(
            [str(self._uv), "venv", "--quiet", "--no-project", "--python", str(interpreter), str(path)],
            what=f"uv could not create an env from {interpreter}",
            log=log,
            env=self.environ(environ),
            cwd=path.parent,
        )
        scripts = "Scripts" if sys.platform == "win32" else "bin"
        return path / scripts / ("python.exe" if sys.platform == "win32" else "python")

    def copy_pip(self, python: Path, *, log: Path, environ: Mapping[str, str]) -> None:
        """pip from virtualenv's bundled wheels (no index needed), where it cannot be linked.

        After the spec's packages (see :attr:`sees_linked_pip`): a pip they brought satisfies it and stays.
        """
        command = [
            str(self._uv), "pip", "install", "--quiet", "--python", str(python),
            "--no-index", "--find-links", str(bundled_wheels()), "pip",
        ]  # fmt: skip
        self.processes.run(
            command,
            what="seeding pip into the env failed",
            log=log,
            env=self.environ(environ),
            cwd=self.workdir(python),
        )

    def resolution_arguments(self, resolution: str) -> list[str]:
        return [] if resolution == "highest" else ["--resolution", resolution]

    def check_lock(self, spec: EnvSpec) -> None:
        """Raise :class:`SpecError` if this uv is older than the first that installs lock files."""
        found = re.search(r"(\d+)\.(\d+)\.(\d+)", self.version)
        if spec.lock is None or found is None or tuple(map(int, found.groups())) >= UV_FOR_LOCKS:
            return
        needed = ".".join(map(str, UV_FOR_LOCKS))
        raise SpecError(
            f"lock={str(spec.lock)!r} needs uv >= {needed}, the first that installs a pylock.toml and exports a "
            f"uv.lock to one; this is {self.version} ({self._uv})",
            fix=f'Upgrade uv: python -m pip install -U "uv>={needed}"',
        )

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
        """Install *spec*'s packages; for a lock file, exactly what it pins, then its editable projects on top.

        A ``uv.lock`` is exported to a ``pylock.toml`` first (its project left out), so that both kinds
        install the same way: from the pinned files, hashes checked, with no resolution.
        """
        if spec.lock is None:
            super().install(python, spec, index, log=log, environ=environ, echo=echo)
            return
        env = self.environ(environ)
        pylock = installed_lock(python, spec.lock)
        if is_uv_lock(spec.lock):
            project = spec.lock.parent
            export = [
                str(self._uv), "export", "--frozen", "--quiet", "--format", "pylock.toml", "--no-emit-project",
                "--project", str(project), "--output-file", str(pylock),
            ]  # fmt: skip
            self.processes.run(
                export,
                what=f"uv could not export {spec.lock} to a pylock.toml",
                log=log,
                env=env,
                echo=echo,
                cwd=project,
            )
        # uv takes a local wheel for unchanged while its name is: a new key made for a changed file must not
        # get uv's cached copy of the old one.
        refresh = ["--refresh"] if local_sources(spec.lock) else []
        command = [
            str(self._uv), "pip", "install", "--python", str(python), *refresh,
            *self.index_arguments(index), "-r", str(pylock),
        ]  # fmt: skip
        self.processes.run(
            command,
            what=f"installing {spec.describe()} failed",
            log=log,
            env=env,
            echo=echo,
            cwd=self.workdir(python),
        )
        if spec.editable:
            # Without their dependencies: those are the lock's, and a resolution could replace a pinned version.
            on_top = EnvSpec(editable=spec.editable, extras=spec.extras)
            self.processes.run(
                [*self.install_command(python, on_top, index), "--no-deps"],
                what=f"installing {', '.join(map(str, spec.editable))} on top of {spec.lock.name} failed",
                log=log,
                env=env,
                echo=echo,
                cwd=self.workdir(python),
            )

    def install_command(self, python: Path, spec: EnvSpec, index: IndexOptions) -> list[str]:
        # uv takes a wheel in a find-links folder for immutable by its file name, and a local project's
        # build for current while its pyproject.toml is: a new key made for a changed local file must
        # not get uv's cached copy of the old one.
        refresh = ["--refresh"] if keys.uses_local_files(spec, self.find_links(index), os.environ) else []
        return [
            str(self._uv), "pip", "install", "--python", str(python), *refresh,
            *self.index_arguments(index),
            *self.from_pip.arguments,
            *self.package_arguments(spec),
        ]  # fmt: skip

    def install_commands(
        self, python: Path, spec: EnvSpec, index: IndexOptions, snapshots: Snapshots
    ) -> list[list[str]]:
        """The install, with the local folders *spec*'s editable projects depend on overridden by their snapshots.

        An override replaces every requirement of its name, the project's own source included, so
        it is made of the project's requirements of that name, extras and markers kept, with the
        snapshot for URL. Only for the requirements its metadata lists: the others build where they
        are. The user's ``UV_OVERRIDE`` files, which a ``--override`` argument silences, are passed on.
        """
        command = self.install_command(python, spec, index)
        pointed: dict[str, list[Requirement]] = {}
        no_sources = self._no_sources() if spec.editable else False
        for project in spec.editable:
            sources = {} if no_sources else source_folders(project, editable=True)
            for requirement in static_requirements(project, dict(spec.extras).get(project, ())) or []:
                name = canonicalize_name(requirement.name)
                folder = sources[name] if name in sources else file_folder(requirement)
                if folder is not None:
                    requirement.url, requirement.specifier = snapshots.of(folder).as_uri(), SpecifierSet()
                    pointed.setdefault(name, []).append(requirement)
        if not pointed:
            return [command]
        overrides = snapshots.folder / "overrides.txt"
        overrides.write_text("".join(f"{_merged(found)}\n" for found in pointed.values()), encoding="utf-8")
        for given in os.environ.get("UV_OVERRIDE", "").split():
            command += ["--override", given]
        return [[*command, "--override", str(overrides)]]

    def find_links(self, index: IndexOptions) -> list[str]:
        """The plugin's find-links, pip's carried over, ``UV_FIND_LINKS`` and those of the user's ``uv.toml``.

        A ``uv.toml``'s flat indexes are find-links locations too: uv reads them the same way.
        """
        links = [*index.find_links, *self.from_pip.find_links]
        links += os.environ.get("UV_FIND_LINKS", "").replace(",", " ").split()
        for table, folder in self._config_tables():
            found = table.get("find-links")
            links += [found] if isinstance(found, str) else [v for v in _list(found) if isinstance(v, str)]
            links += flat_indexes(table, folder)
        return links

    def _config_tables(self) -> list[tuple[dict[str, Any], Path]]:
        """The user's merged ``uv.toml`` and its ``[pip]`` table (where ``uv pip`` settings go), with its folder."""
        config = self._configuration().get("UV_CONFIG_FILE")
        if not config:
            return []
        try:
            data = read_toml(Path(config))
        except (OSError, ValueError):  # uv refuses it too, and says why
            return []
        pip = data.get("pip")
        return [(table, Path(config).parent) for table in (data, pip if isinstance(pip, dict) else {})]

    def _no_sources(self) -> bool:
        """Whether uv ignores ``[tool.uv.sources]``: ``UV_NO_SOURCES`` as uv reads a flag, or ``no-sources``."""
        flag = os.environ.get("UV_NO_SOURCES")
        if flag is not None:
            return flag.strip().lower() in ("1", "true", "t", "yes", "y", "on")
        return any(table.get("no-sources") is True for table, _ in self._config_tables())

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
        for link in (*map(keys.absolute_link, pip.find_links), *index.find_links):
            args += ["--find-links", link]
        if index.offline or pip.no_index:
            args.append("--no-index")
        return args


def _merged(requirements: list[Requirement]) -> Requirement:
    """One requirement for all of *requirements* (one name, one URL): every extra, where any of them applies."""
    merged = requirements[0]
    merged.extras = {extra for r in requirements for extra in r.extras}
    markers = [r.marker for r in requirements]
    merged.marker = None if None in markers else Marker(" or ".join(f"({m})" for m in dict.fromkeys(map(str, markers))))
    return merged


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _device(path: Path) -> int | None:
    """The device of *path*, or of its nearest existing parent."""
    for candidate in (path, *path.parents):
        try:
            return candidate.stat().st_dev
        except OSError:
            continue
    return None
