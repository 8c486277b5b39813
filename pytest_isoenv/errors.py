"""The errors pytest-isoenv raises, each carrying what a user needs to fix the problem."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

#: How many trailing lines of a command's output an error message shows.
TAIL_LINES = 30


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last *lines* lines of *text*, marked as cut when they are not all of it."""
    parts = text.rstrip().splitlines()
    if len(parts) <= lines:
        return "\n".join(parts)
    return "\n".join([f"[... {len(parts) - lines} earlier lines cut ...]", *parts[-lines:]])


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


class IsoEnvWarning(UserWarning):
    """Something was wrong but handled, such as a broken cache entry that is being rebuilt."""


class SpecError(IsoEnvError, ValueError):
    """An environment was asked for with arguments that cannot describe one.

    Raised before anything is written to the cache. The message names the test
    (when known), the bad value and what to do instead.
    """

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.problem = problem
        self.where = where
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
        self.what = what
        self.cmd = list(cmd) if cmd is not None else None
        self.returncode = returncode
        self.output = output
        self.log = log
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


class InterpreterNotFound(IsoEnvError):
    """No interpreter matches a ``python=`` spec."""

    def __init__(self, spec: str, looked_in: Sequence[str], *, where: str | None = None) -> None:
        self.spec = spec
        self.looked_in = list(looked_in)
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
        self.command = command
        self.env_path = env_path
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
