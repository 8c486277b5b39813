"""IsolatedEnv: a ready virtual environment, and how to run things inside it."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_isoenv.environ import isolated_environ
from pytest_isoenv.errors import CommandNotFound, RunError, SharedEnvError
from pytest_isoenv.installers import distributions
from pytest_isoenv.run import warm as _warm
from pytest_isoenv.run import warmpopen

if TYPE_CHECKING:
    from pytest_isoenv.spec.envspec import EnvSpec

#: Suffixes that make a file runnable on Windows: a script ``x.exe`` runs as ``x``.
_PATHEXT = frozenset(e.lower() for e in os.environ.get("PATHEXT", ".COM;.EXE;.BAT;.CMD").split(";") if e)


def introspect(python: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """Ask the interpreter *python* for its paths and installed distributions (see
    :func:`pytest_isoenv.installers.distributions.report`).."""
    command = [str(python), "-I", "-c", inspect.getsource(distributions)]
    proc = subprocess.run(command, capture_output=True, text=True, env=dict(environ), check=False)
    if proc.returncode:
        raise RunError(proc.returncode, [str(python), "-c", "<introspect>"], proc.stdout, proc.stderr, env_path=python)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


class Installs(Protocol):
    """What a private env needs to install into itself (provided by the factory)."""

    def __call__(self, env: IsolatedEnv, requirements: Sequence[object], editable: Sequence[object]) -> None: ...


class Measures(Protocol):
    """Coverage measurement of an env's processes (provided by the factory while the session measures)."""

    def environ(self, env: IsolatedEnv) -> Mapping[str, str | None]:
        """Variables that make the env's Python processes measure themselves (``None`` removes one)."""
        ...


@dataclass(frozen=True)
class Invocation:
    """A command ready to start in an env: what :meth:`IsolatedEnv.run` and :meth:`IsolatedEnv.popen` start."""

    argv: list[str]
    environ: dict[str, str]
    cwd: str | None
    #: The env's variables before the call's own changes: what a warm interpreter of the env starts with.
    base: dict[str, str]


@dataclass(frozen=True)
class IsolatedEnv:
    """A ready virtual environment with the packages a test asked for.

    Run its interpreter and scripts in subprocesses with :meth:`run`, or start
    one in the background with :meth:`popen`. Shared envs come from the cache
    and must not be changed; a private env (``private=True``) belongs to one
    test, which may :meth:`install` into it. A private env is a copy of the
    cached one that shares its installed package files (hardlinks, as uv shares
    its cache with every env): change it by installing and uninstalling, which
    replace files, not by editing installed files in place.

    The plugin makes these objects; equal ones describe the same env at the same place.
    """

    path: Path
    """The env's root directory."""
    python: Path
    """The env's own interpreter, under :attr:`path`."""
    bin_dir: Path
    """Where the env's scripts live (``bin`` on POSIX, ``Scripts`` on Windows)."""
    site_packages: Path
    """The env's ``site-packages`` directory (purelib)."""
    key: str
    """The cache key: a hash of everything that defines the env."""
    spec: EnvSpec
    """The normalised description this env was built from."""
    installs: Installs | None = field(default=None, repr=False, compare=False)
    """How a private env installs into itself; ``None`` for a shared env, which must not be changed."""
    coverage: Measures | None = field(default=None, repr=False, compare=False)
    """Set while the session measures coverage of the env's processes (see :doc:`/how-to/coverage`)."""

    @property
    def private(self) -> bool:
        """Whether this env belongs to one test and may be changed."""
        return self.installs is not None

    @property
    def warm(self) -> bool:
        """Whether :meth:`run` serves the env's Python programs from a warm interpreter (``warm=True``).

        True only where that can work (POSIX, ``os.fork``); elsewhere every call is a plain subprocess.
        """
        return self.spec.warm and _warm.unavailable() is None

    def handed_out_as(self, spec: EnvSpec) -> IsolatedEnv:
        """This env as *spec* hands it out: the same env, with *spec*'s ``warm`` and ``preload``."""
        return dataclasses.replace(self, spec=spec)

    @property
    def environ(self) -> dict[str, str]:
        """Variables for running inside the env: ``VIRTUAL_ENV`` set, its scripts first on ``PATH``,
        ``PYTHONPATH``, ``PYTHONHOME`` and the user site turned off. Made from the host's variables
        as they are now (so ``monkeypatch.setenv`` applies), a fresh copy each time."""
        return isolated_environ(self.path, self.bin_dir)

    def script(self, name: str) -> Path | None:
        """The path of the script *name* in :attr:`bin_dir` (``.exe`` and friends found on Windows), if any."""
        found = shutil.which(name, path=str(self.bin_dir))
        return Path(found) if found else None

    def scripts(self) -> list[str]:
        """The names of the env's scripts (``python``, ``pip``, console scripts), sorted."""
        names = set()
        for entry in self.bin_dir.iterdir() if self.bin_dir.is_dir() else ():
            stem, suffix = entry.stem, entry.suffix
            if sys.platform == "win32" and suffix.lower() in _PATHEXT:
                names.add(stem)  # name.exe runs as name
            elif shutil.which(entry.name, path=str(self.bin_dir)) is not None:
                names.add(entry.name)
        return sorted(names)

    def run(
        self,
        *args: str | os.PathLike[str],
        check: bool = True,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str | None] | None = None,
        timeout: float | None = None,
        input: str | None = None,
        external: bool = False,
        encoding: str = "utf-8",
        errors: str = "replace",
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the env, wait for it, and capture its output as text.

        A first argument that names a script of the env (``python``, ``pip``, a
        console script) runs that script. A bare name the env has no script
        for is an error that lists the scripts it has, so that a test never
        runs the host's program by mistake: pass ``external=True`` to run a
        program from the host's ``PATH``, or pass a path. *env* adds variables
        to :attr:`environ` (a value of ``None`` removes one).

        Output is decoded with *encoding* (UTF-8, whatever the locale says) and
        *errors* (undecodable bytes become ``U+FFFD``; ``"strict"`` raises). The
        env's processes write with their own encoding: to make Python write
        UTF-8 on any platform, pass ``env={"PYTHONUTF8": "1"}``.

        With *check*, a non-zero exit raises :class:`~pytest_isoenv.RunError`,
        whose message shows the command, the exit code and the tails of stdout
        and stderr.
        """
        __tracebackhide__ = True
        how = self._invocation(args, cwd=cwd, env=env, external=external)
        options: dict[str, Any] = {"cwd": how.cwd, "env": how.environ, "timeout": timeout, "input": input}
        options.update(capture_output=True, encoding=encoding, errors=errors)
        try:
            # Measured processes start plain: the warm interpreter started before coverage was asked for.
            if self.warm and self.coverage is None:
                proc = warmpopen.run(how.argv, server=self._warm_server(how.base), **options)
            else:
                proc = subprocess.run(how.argv, check=False, **options)
        except FileNotFoundError as exc:
            raise self._not_found(how, exc) from None
        if check and proc.returncode:
            raise RunError(proc.returncode, how.argv, proc.stdout, proc.stderr, env_path=self.path)
        return proc

    def _warm_server(self, environ: dict[str, str]) -> _warm.WarmServer | None:
        return _warm.server_for(self.python, self.bin_dir, environ, self.spec.preload)

    def popen(
        self,
        *args: str | os.PathLike[str],
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str | None] | None = None,
        external: bool = False,
        encoding: str | None = None,
        errors: str | None = None,
        **popen_kwargs: Any,
    ) -> subprocess.Popen[Any] | warmpopen.WarmPopen:
        """Start a command inside the env in the background and return its :class:`subprocess.Popen`.

        With ``warm=True`` it returns a :class:`~pytest_isoenv.run.warmpopen.WarmPopen` instead, which has
        what tests use of a Popen (the pipes, ``pid``, ``returncode``, ``poll``, ``wait``,
        ``communicate``, signals, ``with``) and whose process is a child of the warm interpreter when
        the command allows it (see :doc:`/how-to/warm`).

        The same command forms and environment as :meth:`run`; any other
        keyword goes to :class:`subprocess.Popen` (``stdout``, ``stderr``,
        ``stdin``, ``text``...). Streams are bytes unless ``text=True``,
        *encoding* or *errors* is given; text is UTF-8 unless *encoding* says
        otherwise.

        The process runs in a process group of its own. If it is still running
        when the test that started it ends, it is stopped with all of its
        group: terminated, given a few seconds, then killed, and the test's
        report names it. One started by a wider-scoped fixture (``scope="session"``...)
        is stopped when the session ends, if that fixture did not stop it first.
        """
        __tracebackhide__ = True
        from pytest_isoenv.run.background import PROCESSES, group_options

        how = self._invocation(args, cwd=cwd, env=env, external=external)
        if (
            encoding is not None
            or errors is not None
            or popen_kwargs.get("text")
            or popen_kwargs.get("universal_newlines")
        ):
            popen_kwargs["encoding"] = encoding or "utf-8"
            popen_kwargs["errors"] = errors or "strict"
        try:
            options: dict[str, Any] = group_options(popen_kwargs)
            process: subprocess.Popen[Any] | warmpopen.WarmPopen
            if self.warm:
                # The warm interpreter's child when the command allows it; a plain subprocess otherwise, and
                # while coverage measures (the warm interpreter started before coverage was asked for).
                server = self._warm_server(how.base) if self.coverage is None else None
                process = warmpopen.WarmPopen(how.argv, server=server, cwd=how.cwd, env=how.environ, **options)
            else:
                process = subprocess.Popen(how.argv, cwd=how.cwd, env=how.environ, **options)
        except FileNotFoundError as exc:
            raise self._not_found(how, exc) from None
        PROCESSES.add(process, how.argv)
        return process

    def _invocation(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        cwd: str | os.PathLike[str] | None,
        env: Mapping[str, str | None] | None,
        external: bool,
    ) -> Invocation:
        """The argv, environment and working directory a command of :meth:`run` or :meth:`popen` starts with.

        The one place both prepare a command: anything that changes how
        commands start in an env (coverage, a different launcher) hooks in here.
        """
        __tracebackhide__ = True
        if not args:
            raise TypeError("run() and popen() need a command")
        argv = [os.fspath(a) for a in args]
        base = self.environ
        environ = dict(base)
        changes: list[Mapping[str, str | None]] = [env or {}]
        if self.coverage is not None:
            changes.insert(0, self.coverage.environ(self))
        for change in changes:
            for name, value in change.items():
                if value is None:
                    environ.pop(name, None)
                else:
                    environ[name] = value
        first = argv[0]
        if os.path.basename(first) == first:  # a bare name, not a path
            script = self.script(first)
            if script is not None:
                argv[0] = str(script)
            elif not external:
                raise CommandNotFound(
                    first,
                    f"{first!r} is not a script of the env",
                    env_path=self.path,
                    what=self.spec.describe(),
                    scripts=self.scripts(),
                    fix="Install it in the env (add it to the isoenv marker), pass a path, or pass "
                    "external=True to run the host's program of that name",
                )
            else:
                # Where the env's processes would look: its own scripts, then the host's PATH. Looked up
                # here because Windows would search the parent's PATH, not the one passed to the child.
                found = shutil.which(first, path=environ.get("PATH"))
                if found is not None:
                    argv[0] = found
        return Invocation(argv, environ, None if cwd is None else os.fspath(cwd), base)

    def _not_found(self, how: Invocation, exc: FileNotFoundError) -> CommandNotFound:
        command = how.argv[0]
        if how.cwd is not None and not Path(how.cwd).is_dir():
            problem, fix = f"the working directory {how.cwd!r} does not exist", "Pass an existing cwd"
        elif os.path.basename(command) != command:
            problem, fix = f"{command!r} does not exist ({exc.strerror})", "Check the path"
        else:
            problem = f"{command!r} is neither a script of the env nor a program on the host's PATH"
            fix = "Install it in the env (add it to the isoenv marker) or on the host"
        return CommandNotFound(
            command, problem, env_path=self.path, what=self.spec.describe(), scripts=self.scripts(), fix=fix
        )

    def installed(self) -> dict[str, str]:
        """The distributions installed in the env, read inside it: canonical name to version.

        While the session measures coverage, ``coverage`` is one of them (see :doc:`/how-to/coverage`).
        """
        packages: dict[str, str] = introspect(self.python, self.environ)["packages"]
        return packages

    def install(self, *requirements: str | os.PathLike[str], editable: Sequence[str | os.PathLike[str]] = ()) -> None:
        """Install more packages into a private env (same argument forms as the marker).

        Shared envs refuse: other tests use them, so a change would leak.
        """
        __tracebackhide__ = True
        if self.installs is None:
            raise SharedEnvError(
                f"refusing to install {', '.join(map(str, [*requirements, *editable]))} into the shared env "
                f"{self.path}: other tests reuse it. Ask for your own copy with private=True "
                "(@pytest.mark.isoenv(..., private=True) or isoenv_factory.get(..., private=True))"
            )
        self.installs(self, requirements, editable)
        # A warm interpreter may have imported what was just replaced: the next call starts a new one.
        _warm.stop(self.python)

    def __repr__(self) -> str:
        kind = "private" if self.private else "shared"
        return f"<IsolatedEnv {kind} {self.spec.describe()} at {self.path}>"
