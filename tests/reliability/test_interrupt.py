"""An interrupted session stops its installers: nothing keeps running, nothing half-built is published."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MakeProject, marked_tests, wait_until
from reliability_helpers import BuildTrace, Figure, alive, build_processes, env_entries, pytest_command, start

from pytest_isoenv.store.record import RECORD_NAME

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals"),
]

# Shorter than the two minutes a build waits at the gate: a run that waits for the held build fails the test.
PATIENCE = 60.0


@pytest.fixture
def held_build(
    pytester: pytest.Pytester,
    private_cache: Path,
    make_project: MakeProject,
    build_trace: BuildTrace,
    build_gate: Path,
) -> Path:
    """A test file whose env holds a local project the test backend builds only when the gate opens (never)."""
    project = make_project("heldpkg")
    pytester.makepyfile(marked_tests(test_held=f'"alpha", {str(project)!r}'))
    return build_gate


def finish(proc: subprocess.Popen[str], gate: Path, pids: tuple[int, int] | None) -> None:
    """Whatever the outcome: let a held build go on, and leave no process of this test running."""
    gate.touch()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for pid in pids or ():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("prebuild", [True, False], ids=["pre-build", "in-test"])
def test_ctrl_c_stops_the_installers_and_publishes_nothing(
    prebuild: bool,
    pytester: pytest.Pytester,
    private_cache: Path,
    held_build: Path,
    build_trace: BuildTrace,
    figure: Figure,
) -> None:
    args = [] if prebuild else ["--isoenv-no-prebuild"]
    proc = start(pytest_command(*args), cwd=pytester.path)  # a session of its own: cleanup kills it all
    pids = None
    try:
        wait_until(
            lambda: build_processes(build_trace, "heldpkg") is not None,
            proc,
            what="the build to start",
            timeout=PATIENCE,
        )
        pids = build_processes(build_trace, "heldpkg")
        assert pids is not None
        proc.send_signal(signal.SIGINT)
        try:
            output = proc.communicate(timeout=PATIENCE)[0]
        except subprocess.TimeoutExpired:
            raise AssertionError("Ctrl-C did not end the run: it waited for the held build") from None
        wait_until(lambda: not any(map(alive, pids or ())), what="the installer processes to end", timeout=PATIENCE)
    finally:
        finish(proc, held_build, pids)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    assert list(private_cache.glob(f"envs/*/*/{RECORD_NAME}")) == []
    assert env_entries(private_cache) == [], "the half-built env is removed"
    where = "the pre-build" if prebuild else "a test's set-up"
    figure(
        f"Ctrl-C during {where} while the installer built a held project: run ended at once (exit code "
        f"{proc.returncode}), installer and build backend processes gone, no env and no record left"
    )


def test_pytest_dying_abruptly_takes_its_installers_with_it(
    pytester: pytest.Pytester,
    private_cache: Path,
    held_build: Path,
    build_trace: BuildTrace,
    figure: Figure,
) -> None:
    # What pytest-timeout's thread method does when a test hangs: os._exit from another thread.
    pytester.makeconftest(
        f"""
        import os, threading, time
        from pathlib import Path

        def pytest_configure(config):
            trace = Path({str(build_trace.path)!r})

            def exit_when_building():
                while not (trace.exists() and "heldpkg" in trace.read_text()):
                    time.sleep(0.01)
                os._exit(3)

            threading.Thread(target=exit_when_building, daemon=True).start()
        """
    )
    proc = start(pytest_command(), cwd=pytester.path)
    pids = None
    try:
        output = proc.communicate(timeout=PATIENCE)[0]
        pids = build_processes(build_trace, "heldpkg")
        assert pids is not None, output
        wait_until(lambda: not any(map(alive, pids or ())), what="the installer processes to end", timeout=PATIENCE)
    finally:
        finish(proc, held_build, pids)
    assert proc.returncode == 3, output
    assert list(private_cache.glob(f"envs/*/*/{RECORD_NAME}")) == []
    figure(
        "pytest ended by os._exit (as pytest-timeout's thread method does) during a held build: installer and "
        "build backend processes killed by the watchdog, no record written"
    )
