"""The tools that create envs and install into them, behind one small interface, chosen by name."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import platformdirs
import virtualenv
from packaging.requirements import Requirement

from .errors import BuildError, SpecError
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
        for requirement in spec.requirements:
            url = Requirement(requirement).url
            if url and not url.startswith("file:"):
                raise SpecError(
                    f"requirement {requirement!r} needs the network, but installs are offline (--isoenv-offline)",
                    where=where,
                    fix="Put the package in an --isoenv-find-links folder and require it by name, or pass a local path",
                )

    def key_material(self) -> dict[str, Any]:
        return {
            "index_url": self.index_url,
            "find_links": [_location_material(link) for link in self.find_links],
            "offline": self.offline,
        }


def _location_material(link: str) -> Any:
    """A find-links location as it counts for the key: a local folder by the files it offers."""
    path = Path(link[len("file://") :] if link.startswith("file://") else link)
    if path.is_dir():
        return {"dir": str(path.resolve()), "files": sorted(p.name for p in path.iterdir())}
    return link


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


class Installer(ABC):
    """Creates envs and installs into them. One instance serves a whole session."""

    name: ClassVar[str]

    @abstractmethod
    def key_material(self, index: IndexOptions) -> dict[str, Any]:
        """The installer's identity and every setting of it that can change what gets installed."""

    def unsupported(self, interpreter: Interpreter) -> str | None:
        """Why this installer cannot make envs from *interpreter*, and what to do, or ``None`` if it can."""
        return None

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
    ) -> None:
        """Install *spec*'s packages into the env of *python*. Installs nothing for an empty spec."""
        if spec.requirements or spec.local or spec.editable or spec.requirements_files:
            run_logged(
                self.install_command(python, spec, index),
                what=f"installing {spec.describe()} failed",
                log=log,
                env=environ,
                echo=echo,
            )

    @staticmethod
    def package_arguments(spec: EnvSpec) -> list[str]:
        """The requirement arguments pip and ``uv pip`` share."""
        args = [*spec.requirements, *map(str, spec.local)]
        for project in spec.editable:
            args += ["-e", str(project)]
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


# Settings that change what pip resolves or how it builds. Others (timeouts, certificates,
# progress bars, cache location) change only how it gets there, and stay out of the key.
_PIP_RESOLUTION_SETTINGS = frozenset(
    {
        "index-url", "extra-index-url", "find-links", "no-index", "pre", "only-binary", "no-binary",
        "prefer-binary", "constraint", "build-constraint", "upgrade-strategy", "no-build-isolation",
        "no-deps", "uploaded-prior-to", "use-feature", "use-deprecated", "ignore-requires-python",
        "config-settings", "platform", "python-version", "implementation", "abi", "isolated",
    }
)  # fmt: skip


def pip_config_files(environ: Mapping[str, str]) -> list[Path]:
    """The pip configuration files pip itself would read, in its order of precedence (lowest first)."""
    config_file = environ.get("PIP_CONFIG_FILE")
    if config_file == os.devnull:
        return []
    name = "pip.ini" if sys.platform == "win32" else "pip.conf"
    files = [
        Path(d, name) for d in platformdirs.site_config_dir("pip", appauthor=False, multipath=True).split(os.pathsep)
    ]
    if sys.platform != "win32":
        files.append(Path("/etc", name))
    files.append(Path.home() / (f"pip/{name}" if sys.platform == "win32" else f".pip/{name}"))
    files.append(Path(platformdirs.user_config_dir("pip", appauthor=False, roaming=True), name))
    if config_file:
        files.append(Path(config_file))
    return [f for f in files if f.is_file()]


def pip_resolution_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """The user's pip settings (config files and ``PIP_*`` variables) that change what pip installs."""
    settings: dict[str, Any] = {}
    for path in pip_config_files(environ):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            settings[f"unreadable:{path}"] = True  # pip will complain; the key still notices the file
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                for option, value in parser.items(section):
                    if option.replace("_", "-") in _PIP_RESOLUTION_SETTINGS:
                        settings[f"{section}.{option}"] = value
    for name, value in environ.items():
        if name.startswith("PIP_") and name[4:].lower().replace("_", "-") in _PIP_RESOLUTION_SETTINGS:
            settings[name] = value
            if name == "PIP_FIND_LINKS":
                settings["PIP_FIND_LINKS:contents"] = [_location_material(v) for v in value.split()]
    return settings


class PipInstaller(Installer):
    """virtualenv (through its Python API, seeding pip from its app-data) and the env's own pip."""

    name = "pip"

    def __init__(self, app_data: Path) -> None:
        self._app_data = app_data

    def key_material(self, index: IndexOptions) -> dict[str, Any]:
        # virtualenv pins the pip it seeds, so its version names the pip that installs.
        return {
            "installer": self.name,
            "virtualenv": virtualenv.__version__,
            "index": index.key_material(),
            "settings": pip_resolution_settings(os.environ),
        }

    def unsupported(self, interpreter: Interpreter) -> str | None:
        oldest = oldest_seeded_python()
        if oldest is None or interpreter.version_info[:2] >= oldest:
            return None
        wanted, limit = "{}.{}".format(*interpreter.version_info[:2]), "{}.{}".format(*oldest)
        return (
            f"virtualenv {virtualenv.__version__} creates envs for Python >= {limit} only (it bundles no pip for "
            f"older ones). Test on Python {limit} or newer, or install an older virtualenv release that still "
            f"supports Python {wanted}"
        )

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


def oldest_seeded_python() -> tuple[int, int] | None:
    """The oldest Python the installed virtualenv bundles pip for, so can create a working env for."""
    try:
        from virtualenv.seed.wheels.embed import BUNDLE_SUPPORT
    except ImportError:  # pragma: no cover - a virtualenv laid out differently; it will say so itself
        return None
    major, minor = min(tuple(int(part) for part in version.split(".")) for version in BUNDLE_SUPPORT)[:2]
    return major, minor


#: The installers by name: the choices of ``--isoenv-installer``.
INSTALLERS: dict[str, Callable[[Path], Installer]] = {"pip": PipInstaller}


def select_installer(name: str | None, *, app_data: Path, where: str | None = None) -> Installer:
    """The installer called *name* (``None`` or ``"auto"``: the best available)."""
    if name in (None, "auto"):
        name = "pip"
    if name not in INSTALLERS:
        raise SpecError(
            f"unknown installer {name!r}",
            where=where,
            fix=f"Choose one of: auto, {', '.join(INSTALLERS)}",
        )
    return INSTALLERS[name](app_data)
