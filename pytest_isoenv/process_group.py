"""Killing a process group: a process the plugin started in a group of its own, and everything it started.

A leaf that imports nothing but the standard library: the installers' watchdog,
a separate interpreter started with ``-I -S``, loads this file by its path to
use the same kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys


def kill_process_group(pid: int) -> None:
    """Kill the process group that *pid* leads, with everything in it; quietly if it is gone already.

    On POSIX *pid* must have been started as its group's leader (``start_new_session``), so its pid names the
    group. Windows has no process groups to signal: ``taskkill /T`` kills the process and its whole tree.
    """
    with contextlib.suppress(OSError):
        if sys.platform == "win32":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        else:
            os.killpg(pid, signal.SIGKILL)
