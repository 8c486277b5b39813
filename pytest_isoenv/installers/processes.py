"""Installer subprocesses that never outlive the build that started them.

Every installer command runs through :meth:`InstallerProcesses.run`, which appends its
output to the build's log, in a process group of its own (a new session on
POSIX), so that stopping it stops what it started too: pip's build backends,
uv's builders and bytecode compilers. Two things stop a group:

- :meth:`InstallerProcesses.stop`, when the session is interrupted (Ctrl-C during the
  pre-build): the running groups are killed and the builds that ran them end
  with :class:`BuildInterrupted`, so their half-built envs are removed.
- a watchdog process, when the pytest process dies without cleaning up
  (``os._exit`` from pytest-timeout's thread method, a SIGKILL): it holds the
  read end of a pipe only pytest writes to, and kills every group still
  registered when that pipe closes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from pytest_isoenv import process_group
from pytest_isoenv.errors import BuildError
from pytest_isoenv.text import LineSink


class BuildInterrupted(KeyboardInterrupt):
    """A build whose installer was stopped because the session was interrupted.

    A :class:`KeyboardInterrupt`, so that nothing treats it as a failed build
    (no error is remembered for the env): the cache removes the half-built env,
    as it does for any interrupted build.
    """


# Run by the watchdog: a registered group is "+PID", a finished one "-PID"; end of input means pytest is gone.
# Its first argument is the path of process_group.py, whose kill it uses: -I -S leaves the package unimportable.
_WATCHDOG = r"""
import runpy, signal, sys
kill_process_group = runpy.run_path(sys.argv[1])["kill_process_group"]
if hasattr(signal, "SIGINT"):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
for pid in groups:
    kill_process_group(pid)
"""


class _Watchdog:
    """The process-wide watchdog, started with the first installer process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._pid = 0  # the process that started the watchdog: a forked child must not use its pipe

    def _send(self, line: str) -> None:
        with self._lock:
            if self._proc is None or self._pid != os.getpid():
                self._proc, self._pid = self._start(), os.getpid()
            stdin = self._proc.stdin if self._proc is not None else None
            if stdin is None:
                return
            try:
                stdin.write(line + "\n")
                stdin.flush()
            except (OSError, ValueError):  # the watchdog is gone: builds still stop with the session
                self._proc = None

    @staticmethod
    def _start() -> subprocess.Popen[str] | None:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG, process_group.__file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
                **_group_options(),
            )
        except OSError:
            return None
        atexit.register(_close_watchdog, proc)
        return proc

    def watch(self, pid: int) -> None:
        self._send(f"+{pid}")

    def forget(self, pid: int) -> None:
        self._send(f"-{pid}")


def _close_watchdog(proc: subprocess.Popen[str]) -> None:
    """At a normal exit: nothing is registered any more; let the watchdog end and reap it."""
    with contextlib.suppress(OSError, ValueError):
        if proc.stdin is not None:
            proc.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


_WATCHDOG_INSTANCE = _Watchdog()


def _group_options() -> dict[str, Any]:
    """Popen arguments that give the child a process group of its own, which the terminal's Ctrl-C skips."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """Kill *proc* and everything it started (its process group), then reap it."""
    process_group.kill_process_group(proc.pid)
    with contextlib.suppress(OSError):
        proc.kill()
    proc.wait()


class InstallerProcesses:
    """The installer processes of one installer's builds: :meth:`run` runs each, logged, and :meth:`stop`
    stops them all when the session is interrupted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called: no installer process starts any more."""
        return self._stopped

    def stop(self) -> None:
        """Kill every running installer process (and what it started); refuse to start new ones."""
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for proc in running:
            kill_group(proc)

    def run(
        self,
        cmd: Sequence[str],
        *,
        what: str,
        log: Path,
        env: Mapping[str, str],
        echo: LineSink | None = None,
        cwd: Path | None = None,
        check: bool = True,
    ) -> None:
        """Run an installer command, appending its output to *log*; raise :class:`BuildError` on failure.

        The command runs in a process group of its own and is killed with
        everything it started if the build is interrupted, if :meth:`stop` is
        called, or if this process dies. Without *check*, a non-zero exit is
        only logged.
        """
        last: deque[str] = deque(maxlen=200)
        with log.open("a", encoding="utf-8") as stream:
            stream.write(f"$ {subprocess.list2cmdline(cmd)}\n")
            stream.flush()
            started = time.monotonic()
            try:
                proc = self._start(
                    cmd,
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
            try:
                _pump(proc.stdout, stream, last, echo)
                proc.wait()
            except BaseException:
                # An interrupted build is removed by the caller: the installer must not go on writing into it.
                kill_group(proc)
                raise
            finally:
                if proc.stdout is not None:
                    proc.stdout.close()
                self._finished(proc)
            stream.write(f"# exit code {proc.returncode} after {time.monotonic() - started:.2f}s\n")
        if self.stopped:
            raise BuildInterrupted
        if proc.returncode and check:
            raise BuildError(what, cmd=cmd, returncode=proc.returncode, output="".join(last), log=log)

    def _start(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start *cmd* in a process group of its own, watched until :meth:`_finished`."""
        with self._lock:
            if self._stopped:
                raise BuildInterrupted
            proc: subprocess.Popen[str] = subprocess.Popen(list(cmd), **kwargs, **_group_options())
            self._running.add(proc)
        _WATCHDOG_INSTANCE.watch(proc.pid)
        return proc

    def _finished(self, proc: subprocess.Popen[str]) -> None:
        """*proc* has ended and been reaped: stop watching it."""
        with self._lock:
            self._running.discard(proc)
        _WATCHDOG_INSTANCE.forget(proc.pid)


def _pump(source: IO[str] | None, log: IO[str], last: deque[str], echo: LineSink | None) -> None:
    assert source is not None
    for line in source:
        log.write(line)
        last.append(line)
        if echo is not None:
            echo(line.rstrip("\n"))
