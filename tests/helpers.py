"""Helpers the test modules share: the types of the conftest fixtures, the time limit of a wait, a lock holder.

Importable as ``helpers`` from every test module: the ``pythonpath`` setting in
pyproject.toml puts ``tests/`` on ``sys.path`` (and mypy's ``mypy_path`` does the same).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from pytest_isoenv.factory import IsoEnvFactory, SessionEnvs

#: How long a test waits for another process to reach a point (start, take a lock, end) before it fails with
#: what that process printed. Generous: CI runs the suite on a loaded 2-core machine. A test's own limit is
#: pytest-timeout's (``timeout`` in pyproject.toml), which is longer, so these waits fail first and say more.
WAIT = 120.0

LOCK_HOLDER = Path(__file__).with_name("lock_holder.py")

#: Where a factory's warnings go (``make_factory(warn=...)``).
Warn = Callable[[str], None]


class MakeProject(Protocol):
    """The ``make_project`` fixture: writes a tiny project built by the in-tree test backend."""

    def __call__(
        self,
        name: str,
        version: str = "0.1",
        *,
        parent: Path | None = None,
        dependencies: Iterable[str] = (),
        scripts: dict[str, str] | None = None,
        body: str = "",
    ) -> Path: ...


class MakeEnvs(Protocol):
    """The ``make_envs`` fixture: a new session's :class:`SessionEnvs`, offline on the test wheelhouse."""

    def __call__(self, cache_dir: Path | None = None, *, warn: Warn | None = None, **settings: Any) -> SessionEnvs: ...


class MakeFactory(Protocol):
    """The ``make_factory`` fixture: a new session's :class:`IsoEnvFactory`, offline on the test wheelhouse."""

    def __call__(
        self, cache_dir: Path | None = None, *, warn: Warn | None = None, **settings: Any
    ) -> IsoEnvFactory: ...


class EnvsFor(Protocol):
    """The ``envs_for`` fixture: a new session's envs on a cache, and the list its warnings go to."""

    def __call__(self, cache: Path, **settings: Any) -> tuple[SessionEnvs, list[str]]: ...


def kill(proc: subprocess.Popen[str]) -> None:
    """Kill *proc*, and its whole process group if it leads one (``start_new_session=True``)."""
    if proc.poll() is not None:
        return
    if sys.platform != "win32" and os.getpgid(proc.pid) == proc.pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()


def finish(
    proc: subprocess.Popen[str], *, timeout: float = WAIT, what: str = "the process", input: str | None = None
) -> str:
    """Wait for *proc* to end (after writing *input* to it) and return its output.

    After *timeout* seconds it is killed and the test fails with what it printed.
    """
    try:
        return proc.communicate(input, timeout=timeout)[0] or ""
    except subprocess.TimeoutExpired:
        kill(proc)
        output = proc.communicate(timeout=WAIT)[0] or ""
        pytest.fail(f"{what} (pid {proc.pid}) did not end within {timeout:.0f}s; its output:\n{output}")


def read_line(proc: subprocess.Popen[str], *, timeout: float = WAIT, what: str = "the process") -> str:
    """The next line *proc* prints; after *timeout* seconds (or at its end) kill it and fail with its output."""
    assert proc.stdout is not None
    stream = proc.stdout
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if lines and lines[0]:
        return lines[0]
    why = "ended" if lines else f"printed nothing within {timeout:.0f}s"
    kill(proc)
    rest = finish(proc, what=what)
    pytest.fail(f"{what} (pid {proc.pid}) {why}; exit code {proc.returncode}, output:\n{rest}")


class LockHolder:
    """Another process that holds a build lock of an isoenv cache (see :func:`hold_lock`)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.released = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        """Let go of the lock (the holder ends); fails the test if the holder does not end or ends badly."""
        if self.released:
            return
        self.released = True
        output = finish(self.proc, what="the lock holder")  # closing its stdin is the signal to let go
        assert self.proc.returncode == 0, f"the lock holder failed (exit code {self.proc.returncode}):\n{output}"


@contextlib.contextmanager
def hold_lock(cache_root: Path, key: str, *, what: str = "env (alpha)", owner: bool = True) -> Iterator[LockHolder]:
    """Another process holds the build lock of *key* in the cache at *cache_root* for the block.

    It takes the lock the way a build does (``Cache.lock``, which names its
    holder); with ``owner=False`` it takes the lock file alone, as a holder
    that has just finished looks to a waiter. Released at the end of the block
    (or earlier with :meth:`LockHolder.release`), killed if the test fails first.
    """
    command = [sys.executable, str(LOCK_HOLDER), str(cache_root), key, what, str(WAIT * 2)]
    if not owner:
        command.append("--no-owner")
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = read_line(proc, what="the lock holder")
        assert line == "locked\n", f"the lock holder said {line!r}, not that it holds the lock"
        holder = LockHolder(proc)
        yield holder
        holder.release()
    finally:
        kill(proc)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        proc.wait()


def aged(path: Path, text: str) -> Path:
    """Write *path* and date it back, so the stat cache trusts it (fresh files may still change in their tick)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    old = time.time() - 60
    os.utime(path, (old, old))
    return path
