"""The errors pytest-isoenv raises, each carrying what a user needs to fix the problem."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

#: How many trailing lines of a command's output an error message shows.
TAIL_LINES = 30


def tail(text: str) -> str:
    """The last :data:`TAIL_LINES` lines of *text*, marked as cut when they are not all of it."""
    parts = text.rstrip().splitlines()
    if len(parts) <= TAIL_LINES:
        return "\n".join(parts)
    return "\n".join([f"[... {len(parts) - TAIL_LINES} earlier lines cut ...]", *parts[-TAIL_LINES:]])


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines()) or "    <empty>"


def in_test(message: str, where: str | None) -> str:
    """*message* with the test it happened in named at the end of its first line.

    What went wrong comes first: pytest names the test in its report already,
    and its short summary keeps only the start of the first line.
    """
    if not where:
        return message
    first, newline, rest = message.partition("\n")
    return f"{first} (in {where}){newline}{rest}"


class IsoEnvError(Exception):
    """Base class of every error pytest-isoenv raises."""


class SpecError(IsoEnvError, ValueError):
    """An environment was asked for with arguments that cannot describe one.

    Raised before anything is written to the cache. The message names the test
    (when known), the bad value and what to do instead.
    """

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None) -> None:
        #: What is wrong, naming the bad value.
        self.problem = problem
        #: The node id of the test that asked, when known.
        self.where = where
        #: What to do instead, when there is something to say.
        self.fix = fix
        super().__init__(in_test(f"{problem}. {fix}" if fix else problem, where))


class CacheError(IsoEnvError):
    """The cache directory cannot be used safely (not writable, a symlink, owned by someone else...)."""


class LockTimeout(CacheError):
    """Another process held the build lock of an env for longer than we were willing to wait."""


class BuildError(IsoEnvError):
    """Creating an environment or installing into it failed.

    Nothing of the failed build is left in the cache; the installer's full
    output stays in the build log named by :attr:`log`.
    """

    def __init__(
        self,
        what: str,
        *,
        cmd: Sequence[str] | None = None,
        returncode: int | None = None,
        output: str = "",
        log: Path | None = None,
        where: str | None = None,
    ) -> None:
        #: What failed, such as ``installing requests>=2.28 failed``.
        self.what = what
        #: The command that failed, if a command did.
        self.cmd = list(cmd) if cmd is not None else None
        #: Its exit code.
        self.returncode = returncode
        #: Its output (the message shows the tail).
        self.output = output
        #: The build log, with the installer's full output.
        self.log = log
        #: The node id of the test that needed the env, when known.
        self.where = where
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [in_test(self.what, self.where)]
        if self.cmd is not None:
            lines.append(f"  command: {subprocess.list2cmdline(self.cmd)}")
        if self.returncode is not None:
            lines.append(f"  exit code: {self.returncode}")
        if self.output:
            lines += ["  output (tail):", _indent(tail(self.output))]
        if self.log is not None:
            lines.append(f"  full log: {self.log}")
        return "\n".join(lines)

    def for_test(self, where: str) -> BuildError:
        """The same failure, reported for another test that needs the same env."""
        return BuildError(
            self.what, cmd=self.cmd, returncode=self.returncode, output=self.output, log=self.log, where=where
        )

    def again(self, where: str | None, *, first: str) -> BuildFailedEarlier:
        """The failure as a later test that needs the env sees it: one line, pointing at the report *first* made."""
        return BuildFailedEarlier(self.what, log=self.log, first=first, where=where)


class BuildFailedEarlier(BuildError):
    """An environment whose build failed earlier in the run: it is not built again until the next run.

    One line, pointing at the first report of the failure (:attr:`first`) and
    the build log: the full error is said once per run, not once per test.
    """

    def __init__(self, what: str, *, log: Path | None, first: str, where: str | None = None) -> None:
        #: Where the failure is reported in full, such as ``the report of tests/test_cli.py::test_help``.
        self.first = first
        super().__init__(what, log=log, where=where)

    def _message(self) -> str:
        log = f", and the log {self.log}" if self.log is not None else ""
        return in_test(f"{self.what} earlier in this run: see {self.first} for the error{log}", self.where)

    def for_test(self, where: str) -> BuildFailedEarlier:
        return BuildFailedEarlier(self.what, log=self.log, first=self.first, where=where)


class InterpreterNotFound(IsoEnvError):
    """No interpreter matches a ``python=`` spec."""

    def __init__(self, spec: str, looked_in: Sequence[str], *, where: str | None = None) -> None:
        #: The ``python=`` spec that found nothing.
        self.spec = spec
        #: The places discovery searched, in words.
        self.looked_in = list(looked_in)
        #: The node id of the test that asked, when known.
        self.where = where
        places = ", ".join(self.looked_in) or "nowhere"
        super().__init__(
            in_test(
                f"no Python interpreter matches {spec!r} (looked in: {places}). "
                "Install it, put it on PATH, or pass its path as python=...; "
                "`pytest --isoenv-list-pythons` lists the interpreters found",
                where,
            )
        )


class SharedEnvError(IsoEnvError):
    """A test tried to change an environment other tests share."""


class CommandNotFound(IsoEnvError, FileNotFoundError):
    """A command given to :meth:`IsolatedEnv.run` or :meth:`IsolatedEnv.popen` is not there to run.

    A bare name that is no script of the env (unless ``external=True`` asked for
    the host's program), or a program found neither in the env nor on the host.
    ``scripts`` lists the scripts the env has.
    """

    def __init__(
        self, command: str, problem: str, *, env_path: Path, what: str, scripts: Sequence[str], fix: str
    ) -> None:
        #: The command as given.
        self.command = command
        #: The root folder of the env it was run in.
        self.env_path = env_path
        #: The names of the env's scripts.
        self.scripts = list(scripts)
        IsoEnvError.__init__(
            self,
            f"{problem}; the isolated env ({what}) at {env_path} has the scripts: "
            f"{', '.join(self.scripts) or '(none)'}. {fix}",
        )

    def __str__(self) -> str:
        return str(self.args[0])


class RunError(IsoEnvError, subprocess.CalledProcessError):
    """A command run with :meth:`IsolatedEnv.run` exited non-zero while ``check=True``.

    It is a :class:`subprocess.CalledProcessError`, so ``returncode``, ``cmd``,
    ``stdout`` and ``stderr`` are there as usual; the message adds the env and
    the tails of both streams.
    """

    def __init__(self, returncode: int, cmd: Sequence[str], stdout: str, stderr: str, *, env_path: Path) -> None:
        subprocess.CalledProcessError.__init__(self, returncode, list(cmd), stdout, stderr)
        #: The root folder of the env the command ran in.
        self.env_path = env_path

    def __str__(self) -> str:
        return "\n".join(
            [
                f"command exited with code {self.returncode} in isolated env {self.env_path}",
                f"  command: {subprocess.list2cmdline(self.cmd)}",
                "  stdout (tail):",
                _indent(tail(self.stdout or "")),
                "  stderr (tail):",
                _indent(tail(self.stderr or "")),
            ]
        )
