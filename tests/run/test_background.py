"""popen(): background processes in an env, and stopping what a test leaves running (real processes)."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import LEFT_RUNNING

from pytest_isoenv.run import background

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="reads process states from /proc")

HOWTO = Path(__file__).parents[2] / "docs" / "how-to" / "background-processes.md"


def alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie waiting for its parent to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_the_howtos_http_server_example_runs(pytester: pytest.Pytester) -> None:
    text = HOWTO.read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert example is not None
    pytester.makepyfile(test_server=example.group(1))
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=1)
    assert "still running at the end" not in result.stdout.str(), "the fixture stopped its server itself"


def test_processes_a_test_leaves_running_are_stopped_with_their_children(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(background, "GRACE_SECONDS", 1)  # pytester runs in this process
    pytester.makepyfile(
        textwrap.dedent(
            """
            import subprocess

            from left_running import PARENT, STUBBORN

            def test_leaves_a_server_running(isoenv):
                proc = isoenv.popen("python", "-c", PARENT, stdout=subprocess.PIPE, text=True)
                child = int(proc.stdout.readline())
                with open("pids", "a") as f:
                    f.write(f"{proc.pid} {child} ")

            def test_leaves_a_stubborn_one(isoenv):
                proc = isoenv.popen("python", "-c", STUBBORN, stdout=subprocess.PIPE, text=True)
                assert proc.stdout.readline() == "ready\\n"
                with open("pids", "a") as f:
                    f.write(f"{proc.pid} ")

            def test_stops_its_own(isoenv):
                proc = isoenv.popen("python", "-c", "print('done')")
                assert proc.wait(timeout=60) == 0
            """
        ),
        left_running=LEFT_RUNNING,
    )
    result = pytester.runpytest("-rA", "-p", "no:randomly")
    result.assert_outcomes(passed=3)
    parent, child, stubborn = map(int, (pytester.path / "pids").read_text().split())
    assert not alive(parent)
    assert not alive(child)
    assert not alive(stubborn)
    result.stdout.fnmatch_lines(
        [
            "*Captured isoenv teardown*",
            "processes started with popen():",
            f"pid {parent} still running at the end, terminated: */python -c *",
        ]
    )
    result.stdout.fnmatch_lines(
        [f"pid {stubborn} still running at the end, killed after it ignored termination for 1s: *"]
    )
    assert result.stdout.str().count("still running at the end") == 2, (
        "the test that waited for its process is not named"
    )


def test_a_session_fixtures_process_outlives_the_test_and_stops_with_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="session")
        def daemon(isoenv_factory):
            proc = isoenv_factory.get().popen("python", "-c", "import time; time.sleep(120)")
            with open("pid", "w") as f:
                f.write(str(proc.pid))
            return proc

        def test_first(daemon):
            assert daemon.poll() is None

        def test_second(daemon):
            assert daemon.poll() is None, "still running after the first test ended"
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert not alive(int((pytester.path / "pid").read_text()))
