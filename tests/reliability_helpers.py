"""Helpers the reliability tests share (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from helpers import WAIT, kill

#: Records the figure a test established (the ``figure`` fixture).
Figure = Callable[[str], None]

#: How long commands started together may take: each runs a pytest session that builds envs, on a loaded machine.
RUN_LIMIT = 400.0


class BuildTrace:
    """Counts the builds of local projects, as the in-tree test backend reports them (one line per build)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def counts(self) -> collections.Counter[str]:
        if not self.path.exists():
            return collections.Counter()
        return collections.Counter(line.split()[0] for line in self.path.read_text().splitlines() if line)


def env_entries(cache: Path) -> list[str]:
    """The env folders in a cache root (none if the root or its envs/ folder does not exist)."""
    envs = cache / "envs"
    return sorted(p.name for p in envs.iterdir()) if envs.is_dir() else []


def generation(cache: Path, entry: str) -> Path:
    """The folder of the generation of the env *entry* that is in use, or else of its newest (an unfinished build)."""
    folder = cache / "envs" / entry
    current = folder / "current"
    if current.exists():
        return folder / current.read_text().strip()
    return max((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def start(command: Sequence[str], *, cwd: Path) -> subprocess.Popen[str]:
    """Start *command* in *cwd*, its stdout and stderr together on one pipe.

    On POSIX it leads a process group of its own, so a kill (:func:`helpers.kill`,
    or ``os.killpg``) reaches the installers and build backends it runs too.
    """
    return subprocess.Popen(
        list(command),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=sys.platform != "win32",
    )


def run_together(
    commands: Sequence[Sequence[str]], *, cwd: Path, gate: Path | None = None, timeout: float = RUN_LIMIT
) -> list[tuple[int, str]]:
    """Start every command at once and collect each one's exit code and output (stdout and stderr together).

    With *gate*, the file is created as soon as any command announces that it
    waits for another process's build: builds held at the gate by the test
    backend then go on, so at least one wait happens whatever the timing.
    Commands still running after *timeout* seconds are killed and the test
    fails with every command's output so far.
    """
    procs = [start(cmd, cwd=cwd) for cmd in commands]
    outputs: list[list[str]] = [[] for _ in procs]

    def pump(proc: subprocess.Popen[str], lines: list[str]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.append(line)
                if gate is not None and "isoenv:" in line and "waiting for" in line:
                    gate.touch()

    threads = [threading.Thread(target=pump, args=pair, daemon=True) for pair in zip(procs, outputs, strict=True)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        states = ["still running" if proc.poll() is None else f"exit code {proc.returncode}" for proc in procs]
        for proc in procs:
            kill(proc)
        for thread in threads:
            thread.join(WAIT)
        seen = "\n".join(
            f"--- {shlex.join(cmd)} (pid {proc.pid}, {state}):\n" + "".join(lines)
            for cmd, proc, state, lines in zip(commands, procs, states, outputs, strict=True)
        )
        pytest.fail(f"{len(procs)} commands run together did not all end within {timeout:.0f}s; output so far:\n{seen}")
    return [(proc.wait(), "".join(lines)) for proc, lines in zip(procs, outputs, strict=True)]


def pytest_command(*args: str) -> list[str]:
    """A separate pytest process (the plugin loads from its entry point), quiet and without a cache provider."""
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]


#: What :func:`plant_link`'s victim holds: a test checks it is still all the file holds.
PRECIOUS = "precious\n"


def plant_link(link: Path, folder: Path) -> Path:
    """Make *link* a symlink to a file of the user's in *folder* (:data:`PRECIOUS`, mode 644); return that file.

    The bait of an attack on the cache: a name it writes to, pointing at something it must not touch.
    """
    victim = folder / "victim"
    victim.write_text(PRECIOUS)
    victim.chmod(0o644)
    link.symlink_to(victim)
    return victim


def install_base(exe: Path, base_prefix: Path, prefix: Path, name: str) -> Path:
    """Install a copy of the interpreter *exe* (of *base_prefix*) at *prefix*, its executable called *name*.

    The executable is copied, the standard library hard-linked (never written
    to: Python replaces bytecode files rather than writing into them). Skips
    the test when an interpreter cannot run from such a copy. Returns the new executable.
    """
    [stdlib] = (p.relative_to(base_prefix) for p in base_prefix.glob("lib/python3.*") if (p / "os.py").is_file())

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    skipped = {"site-packages", "test", "idlelib", "tkinter", "turtledemo"}
    (prefix / "bin").mkdir(parents=True)
    copy = prefix / "bin" / name
    shutil.copy2(exe, copy)
    shutil.copytree(base_prefix / stdlib, prefix / stdlib, copy_function=link, ignore=lambda _, n: skipped & set(n))
    probe = subprocess.run([str(copy), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True)
    if probe.returncode or Path(probe.stdout.strip()) != prefix:
        pytest.skip(f"{exe} cannot run from a copy ({probe.stderr.strip() or probe.stdout.strip()})")
    return copy


@contextlib.contextmanager
def tmpfs(path: Path, *, size: str, readonly: bool = False) -> Iterator[Path]:
    """Mount a small tmpfs at *path* for the block (root on Linux only; skips the test otherwise)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root on Linux")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700" + (",ro" if readonly else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def build_processes(trace: BuildTrace, project: str) -> tuple[int, int] | None:
    """The backend's and the installer's process ids of the first build of *project* the trace saw, if any."""
    if not trace.path.exists():
        return None
    for line in trace.path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == project:
            return int(parts[1]), int(parts[2])
    return None


def alive(pid: int) -> bool:
    """Whether process *pid* exists and is not a zombie (a killed process nobody reaped yet is dead)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
