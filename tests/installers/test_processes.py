"""Installer processes: logged runs, their failures, and stopping them with what they started."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from helpers import WAIT, wait_until
from reliability_helpers import alive

from pytest_isoenv.errors import BuildError
from pytest_isoenv.installers.processes import BuildInterrupted, InstallerProcesses


def test_a_run_appends_output_to_the_log_and_echoes(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    lines: list[str] = []
    InstallerProcesses().run(
        [sys.executable, "-c", "print('one'); print('two')"], what="x", log=log, env={}, echo=lines.append
    )
    assert lines == ["one", "two"]
    text = log.read_text()
    assert "one\ntwo\n" in text
    assert "# exit code 0" in text


def test_a_failed_run_carries_command_code_output_and_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    cmd = [sys.executable, "-c", "import sys; print('resolver says no'); sys.exit(2)"]
    with pytest.raises(BuildError) as excinfo:
        InstallerProcesses().run(cmd, what="installing attrs failed", log=log, env={})
    error = excinfo.value
    assert (error.returncode, error.cmd, error.log) == (2, cmd, log)
    assert "resolver says no" in error.output
    message = str(error)
    assert message.startswith("installing attrs failed\n  command: ")
    assert "exit code: 2" in message
    assert f"full log: {log}" in message


def test_a_missing_program_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"cannot start '/no/such/program'"):
        InstallerProcesses().run(["/no/such/program"], what="x", log=tmp_path / "log", env={})


@pytest.mark.skipif(sys.platform == "win32", reason="checks POSIX process groups")
def test_stopping_kills_the_running_command_and_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(120)"
    )
    processes = InstallerProcesses()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            processes.run([sys.executable, "-c", script], what="x", log=tmp_path / "log", env={})
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: pid_file.exists() and bool(pid_file.read_text()), what="the command to start a process")
    grandchild = int(pid_file.read_text())
    processes.stop()
    thread.join(WAIT)
    assert [type(exc) for exc in outcome] == [BuildInterrupted]
    wait_until(lambda: not alive(grandchild), what=f"the process it started (pid {grandchild}) to end")
    assert not alive(grandchild)
    with pytest.raises(BuildInterrupted):
        processes.run([sys.executable, "-c", "pass"], what="x", log=tmp_path / "log", env={})
