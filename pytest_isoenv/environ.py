"""What the processes the plugin starts run with: environment variables without the host's Python, and CPUs.

A leaf: every layer may use it, and it uses none of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

# Variables that would make an env's interpreter or installer look outside the env. nox and tox
# strip the same ones; PIP_USER/PIP_TARGET/PIP_PREFIX would send installs somewhere else entirely.
_HOST_LEAKS = (
    "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__",
    "PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_REQUIRE_VIRTUALENV",
    "UV_PYTHON", "UV_SYSTEM_PYTHON", "UV_PROJECT_ENVIRONMENT", "CONDA_PREFIX",
)  # fmt: skip


def is_host_leak(name: str) -> bool:
    """Whether the variable *name* is one :func:`host_environ` strips: no process the plugin starts sees it."""
    return name in _HOST_LEAKS


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


def cpu_count() -> int:
    """The CPUs this process may run on: its affinity mask and, on Python 3.13+, its cgroup limits respected.

    ``os.cpu_count()`` counts the machine's CPUs, which in a CI container or
    under ``taskset`` is more than the process may use.
    """
    process_cpu_count: Callable[[], int | None] | None = getattr(os, "process_cpu_count", None)
    if process_cpu_count is not None:
        return process_cpu_count() or 1
    sched_getaffinity: Callable[[int], set[int]] | None = getattr(os, "sched_getaffinity", None)
    if sched_getaffinity is not None:
        return len(sched_getaffinity(0)) or 1
    return os.cpu_count() or 1
