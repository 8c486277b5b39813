"""Background processes started with :meth:`IsolatedEnv.popen`: who started them, and stopping what is left.

A process belongs to the scope that started it: a test (its body, its
function-scoped fixtures, any teardown), or a wider-scoped fixture. What a test
leaves running is stopped when the test ends; what a wider fixture left running,
when the session ends. Stopping is for the whole process group, so a server's
children go too: terminate, wait a grace period, then kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from pytest_isoenv.process_group import kill_process_group
from pytest_isoenv.run.warmpopen import WarmPopen

#: What ``popen()`` returns: a Popen, or for a warm env a WarmPopen, which has what this module uses of one.
Process: TypeAlias = "subprocess.Popen[Any] | WarmPopen"

#: Seconds a terminated process gets to exit before it is killed.
GRACE_SECONDS = 5.0


def group_options(popen_kwargs: dict[str, Any]) -> dict[str, Any]:
    """*popen_kwargs* with the process started in a process group of its own, unless the caller chose one."""
    kwargs = dict(popen_kwargs)
    if sys.platform == "win32":
        flags = int(kwargs.get("creationflags", 0) or 0)
        kwargs["creationflags"] = flags | subprocess.CREATE_NEW_PROCESS_GROUP
    elif "start_new_session" not in kwargs and "process_group" not in kwargs:
        kwargs["start_new_session"] = True
    return kwargs


@dataclass
class Started:
    """One process started with ``popen()``, and the command that started it."""

    process: Process
    argv: Sequence[str]
    wide: bool


class BackgroundProcesses:
    """The processes started with ``popen()`` in this process that may still be running."""

    def __init__(self) -> None:
        self._started: list[Started] = []
        #: Whether a fixture wider than a test (class, module, package, session) is being set up now: what it
        #: starts lives as long as its scope. Whoever runs the tests (the plugin) says; outside pytest, never.
        self.in_wide_fixture: Callable[[], bool] = lambda: False

    def add(self, process: Process, argv: Sequence[str]) -> None:
        """Remember *process*, owned by the scope that is running now."""
        wide = self.in_wide_fixture()
        self._started = [s for s in self._started if s.process.poll() is None]
        self._started.append(Started(process, list(argv), wide))

    def stop(self, *, wide: bool = False, grace: float | None = None) -> list[str]:
        """Stop the test's processes that still run (with *wide*: every one); one line for each stopped.

        Each gets *grace* seconds (default :data:`GRACE_SECONDS`) to exit after it is terminated.
        """
        grace = GRACE_SECONDS if grace is None else grace
        lines = []
        keep = []
        for started in self._started:
            if started.wide and not wide:
                keep.append(started)
                continue
            if started.process.poll() is None:
                lines.append(_stop(started, grace))
            else:
                # Ended on its own, but pipes nobody will read again would be closed by the garbage
                # collector, in whichever later test that runs, with a ResourceWarning.
                _close_pipes(started.process)
        self._started = keep
        return lines


def _stop(started: Started, grace: float) -> str:
    process = started.process
    command = subprocess.list2cmdline(started.argv)
    _signal_group(process, kill=False)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        _signal_group(process, kill=True)
        process.wait()
        how = f"killed after it ignored termination for {grace:g}s"
    else:
        how = "terminated"
    # The group may still hold children of a process that exited on its own: they go too.
    _signal_group(process, kill=True)
    _close_pipes(process)
    return f"pid {process.pid} still running at the end, {how}: {command}"


def _signal_group(process: Process, *, kill: bool) -> None:
    if kill:
        kill_process_group(process.pid)
    elif sys.platform == "win32":
        with contextlib.suppress(OSError):
            process.send_signal(signal.CTRL_BREAK_EVENT)
    else:
        # start_new_session made the process its group's leader, so its pid names the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)


def _close_pipes(process: Process) -> None:
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


#: The processes of this pytest process; the plugin stops them at the end of tests and of the session.
PROCESSES = BackgroundProcesses()
