"""IsolatedEnv: a ready virtual environment, and how to run things inside it."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import warm as _warm
from .errors import RunError, SharedEnvError

if TYPE_CHECKING:
    from .spec import EnvSpec

# Variables that would make an env's interpreter or installer look outside the env. nox and tox
# strip the same ones; PIP_USER/PIP_TARGET/PIP_PREFIX would send installs somewhere else entirely.
_HOST_LEAKS = (
    "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__",
    "PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_REQUIRE_VIRTUALENV",
    "UV_PYTHON", "UV_SYSTEM_PYTHON", "UV_PROJECT_ENVIRONMENT", "CONDA_PREFIX",
)  # fmt: skip

#: Runs inside an env: where its scripts and packages live, and what is installed.
INTROSPECT = r"""
import json, re, sys, sysconfig
from importlib import metadata
packages, dist_infos = {}, []
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if not name:
        continue
    packages[re.sub(r"[-_.]+", "-", name).lower()] = dist.version
    path = getattr(dist, "_path", None)
    if path is not None:
        dist_infos.append(str(path))
paths = sysconfig.get_paths()
print(json.dumps({
    "scripts": paths["scripts"], "purelib": paths["purelib"], "platlib": paths["platlib"],
    "executable": sys.executable, "version": ".".join(map(str, sys.version_info[:3])),
    "packages": dict(sorted(packages.items())), "dist_infos": sorted(dist_infos),
}))
"""


def host_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """*base* (default: ``os.environ``) without what would make another interpreter look at the host's Python.

    For every process that runs an interpreter the plugin did not start itself: discovery's probes,
    env creation, and (through :func:`isolated_environ`) everything run inside an env.
    """
    return {k: v for k, v in (os.environ if base is None else base).items() if k not in _HOST_LEAKS}


def isolated_environ(path: Path, bin_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables for running inside the env at *path*: nothing of the host's Python leaks in."""
    environ = host_environ(base)
    environ["VIRTUAL_ENV"] = str(path)
    environ["PATH"] = os.pathsep.join(filter(None, [str(bin_dir), environ.get("PATH")]))
    environ["PYTHONNOUSERSITE"] = "1"
    return environ


def introspect(python: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """Ask the interpreter *python* for its paths and installed distributions."""
    proc = subprocess.run(
        [str(python), "-I", "-c", INTROSPECT], capture_output=True, text=True, env=dict(environ), check=False
    )
    if proc.returncode:
        raise RunError(proc.returncode, [str(python), "-c", "<introspect>"], proc.stdout, proc.stderr, env_path=python)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def read_distributions(*site_dirs: Path) -> tuple[dict[str, str], list[str]]:
    """The distributions installed in *site_dirs*, read from here: canonical name to version, and their
    metadata folders. What :data:`INTROSPECT` finds inside an env, without starting its interpreter."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    packages: dict[str, str] = {}
    dist_infos: list[str] = []
    for dist in metadata.distributions(path=[str(d) for d in dict.fromkeys(site_dirs)]):
        name = dist.metadata["Name"]
        if not name:
            continue
        packages[canonicalize_name(name)] = dist.version
        path = getattr(dist, "_path", None)
        if path is not None:
            dist_infos.append(str(path))
    return dict(sorted(packages.items())), sorted(dist_infos)


class Installs(Protocol):
    """What a private env needs to install into itself (provided by the factory)."""

    def __call__(self, env: IsolatedEnv, requirements: Sequence[object], editable: Sequence[object]) -> None: ...


class IsolatedEnv:
    """A ready virtual environment with the packages a test asked for.

    Run its interpreter in subprocesses with :meth:`run`. Shared envs come from
    the cache and must not be changed; a private env (``private=True``) belongs
    to one test, which may :meth:`install` into it. A private env is a copy of
    the cached one that shares its installed package files (hardlinks, as uv
    shares its cache with every env): change it by installing and
    uninstalling, which replace files, not by editing installed files in place.
    """

    def __init__(
        self,
        path: Path,
        *,
        python: Path,
        bin_dir: Path,
        site_packages: Path,
        key: str,
        spec: EnvSpec,
        private: bool = False,
        installs: Installs | None = None,
    ) -> None:
        self._path = path
        self._python = python
        self._bin_dir = bin_dir
        self._site_packages = site_packages
        self._key = key
        self._spec = spec
        self._private = private
        self._installs = installs
        self._environ = isolated_environ(path, bin_dir)

    @property
    def path(self) -> Path:
        """The env's root directory."""
        return self._path

    @property
    def python(self) -> Path:
        """The env's own interpreter, under :attr:`path`."""
        return self._python

    @property
    def bin_dir(self) -> Path:
        """Where the env's scripts live (``bin`` on POSIX, ``Scripts`` on Windows)."""
        return self._bin_dir

    @property
    def site_packages(self) -> Path:
        """The env's ``site-packages`` directory (purelib)."""
        return self._site_packages

    @property
    def key(self) -> str:
        """The cache key: a hash of everything that defines the env."""
        return self._key

    @property
    def spec(self) -> EnvSpec:
        """The normalised description this env was built from."""
        return self._spec

    @property
    def private(self) -> bool:
        """Whether this env belongs to one test and may be changed."""
        return self._private

    @property
    def warm(self) -> bool:
        """Whether :meth:`run` serves the env's Python programs from a warm interpreter (``warm=True``).

        True only where that can work (POSIX, ``os.fork``); elsewhere every call is a plain subprocess.
        """
        return self._spec.warm and _warm.unavailable() is None

    def handed_out_as(self, spec: EnvSpec) -> IsolatedEnv:
        """This env as *spec* hands it out: the same env, with *spec*'s ``warm`` and ``preload``."""
        other = copy.copy(self)
        other._spec = spec
        return other

    @property
    def environ(self) -> dict[str, str]:
        """Variables for running inside the env: ``VIRTUAL_ENV`` set, its scripts first on ``PATH``,
        ``PYTHONPATH``, ``PYTHONHOME`` and the user site turned off. A fresh copy each time."""
        return dict(self._environ)

    def script(self, name: str) -> Path | None:
        """The path of the script *name* in :attr:`bin_dir` (``.exe`` and friends found on Windows), if any."""
        found = shutil.which(name, path=str(self._bin_dir))
        return Path(found) if found else None

    def run(
        self,
        *args: str | os.PathLike[str],
        check: bool = True,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str | None] | None = None,
        timeout: float | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the env and capture its output as text.

        A first argument that names a script in the env (``python``, ``pip``, a
        console script) runs that script. *env* adds variables to
        :attr:`environ` (a value of ``None`` removes one). With *check*, a
        non-zero exit raises :class:`~pytest_isoenv.RunError`, whose message
        shows the command, the exit code and the tails of stdout and stderr.
        """
        argv, environ = self._command(args, env)
        options: dict[str, Any] = {"cwd": cwd, "env": environ, "timeout": timeout, "input": input}
        if self.warm:
            proc = _warm.run(argv, server=self._warm_server(), capture_output=True, text=True, **options)
        else:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False, **options)
        if check and proc.returncode:
            raise RunError(proc.returncode, argv, proc.stdout, proc.stderr, env_path=self._path)
        return proc

    def _command(
        self, args: Sequence[str | os.PathLike[str]], env: Mapping[str, str | None] | None
    ) -> tuple[list[str], dict[str, str]]:
        """The argv and environment of a command run inside the env (what run() and popen() start)."""
        if not args:
            raise TypeError("run() needs a command")
        argv = [os.fspath(a) for a in args]
        script = self.script(argv[0]) if os.path.basename(argv[0]) == argv[0] else None
        if script is not None:
            argv[0] = str(script)
        environ = dict(self._environ)
        for name, value in (env or {}).items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        return argv, environ

    def _warm_server(self) -> _warm.WarmServer | None:
        return _warm.server_for(self._python, self._bin_dir, self._environ, self._spec.preload)

    def installed(self) -> dict[str, str]:
        """The distributions installed in the env, read inside it: canonical name to version."""
        packages: dict[str, str] = introspect(self._python, self._environ)["packages"]
        return packages

    def install(self, *requirements: str | os.PathLike[str], editable: Sequence[str | os.PathLike[str]] = ()) -> None:
        """Install more packages into a private env (same argument forms as the marker).

        Shared envs refuse: other tests use them, so a change would leak.
        """
        if not self._private or self._installs is None:
            raise SharedEnvError(
                f"refusing to install {', '.join(map(str, [*requirements, *editable]))} into the shared env "
                f"{self._path}: other tests reuse it. Ask for your own copy with private=True "
                "(@pytest.mark.isoenv(..., private=True) or isoenv_factory.get(..., private=True))"
            )
        self._installs(self, requirements, editable)
        # A warm interpreter may have imported what was just replaced: the next call starts a new one.
        _warm.stop(self._python)

    def __repr__(self) -> str:
        kind = "private" if self._private else "shared"
        return f"<IsolatedEnv {kind} {self._spec.describe()} at {self._path}>"
