"""Builds that die part-way (SIGKILL, a full disk) leave nothing that is ever used; the next use rebuilds."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import isoenv_testbackend as backend
import pytest
from helpers import MakeProject, finish, wait_until
from reliability_helpers import BuildTrace, Figure, env_entries, generation, tmpfs

from pytest_isoenv.store.record import RECORD_NAME

CHILD = Path(__file__).with_name("build_child.py")


def what_is_left(env: Path) -> str:
    """A short inventory of a killed build's folder."""
    site = next(env.glob("lib*/python*/site-packages"), None) or next(env.glob("Lib/site-packages"), None)
    names = sorted(p.name for p in site.iterdir()) if site else []
    found = [
        "pyvenv.cfg" if (env / "pyvenv.cfg").exists() else "no pyvenv.cfg",
        "pip seeded" if "pip" in names else "no pip",
        "alpha installed" if "alpha" in names else "alpha not installed",
        "a record" if (env / RECORD_NAME).exists() else "no record",
    ]
    return ", ".join(found)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and process groups are POSIX")
@pytest.mark.parametrize("point", ["creation", "install", "record"])
def test_killed_build_is_never_used(
    point: str,
    pytester: pytest.Pytester,
    private_cache: Path,
    wheelhouse: Path,
    make_project: MakeProject,
    build_trace: BuildTrace,
    monkeypatch: pytest.MonkeyPatch,
    figure: Figure,
) -> None:
    project = make_project("crashy")
    if point == "install":
        # The test backend holds the build of crashy at a gate that never opens: killed while pip runs it.
        monkeypatch.setenv("ISOENV_TESTBACKEND_GATE", str(pytester.path / "never"))
    kill_at = "record" if point == "record" else "none"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(private_cache), str(wheelhouse), kill_at, "alpha", str(project)],
        start_new_session=True,  # so the kill reaches pip and the backend too
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        if point == "creation":
            wait_until(lambda: any((private_cache / "envs").glob("*/*/pyvenv.cfg")), child, what="a pyvenv.cfg")
        elif point == "install":
            wait_until(lambda: build_trace.counts()["crashy"] > 0, child, what="the build of crashy")
        if point != "record":
            os.killpg(child.pid, signal.SIGKILL)
        output = finish(child, what="the build")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL, output
    [entry] = env_entries(private_cache)
    env = generation(private_cache, entry)
    left = what_is_left(env)
    assert not (env / RECORD_NAME).exists()

    monkeypatch.delenv("ISOENV_TESTBACKEND_GATE", raising=False)
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv("alpha", {str(project)!r})
        def test_after_crash(isoenv):
            isoenv.run("python", "-c", "import alpha, crashy")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, warnings=0)
    result.stdout.fnmatch_lines(
        ["isoenv: rebuilding env (alpha, crashy 0.1) [[]*[]]: it has no completion record (an interrupted build)"]
    )
    assert env_entries(private_cache) == [entry]
    assert (generation(private_cache, entry) / RECORD_NAME).is_file()
    assert sorted(p.name for p in (private_cache / "envs" / entry).iterdir()) == ["1", "current"], (
        "the killed build's folder was removed, not kept beside the new one"
    )
    figure(f"SIGKILL during {point} left: {left}; not used: the next run said so, rebuilt it and passed")


@pytest.mark.slow
def test_disk_full_during_build_fails_cleanly(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figure: Figure
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    # Stored uncompressed: 64 MiB unpacked into an env on a 48 MiB disk.
    backend.write_wheel(wheels, "bulky", "1.0", files={"bulky/__init__.py": "", "bulky/data.txt": "x" * (64 << 20)})
    backend.write_wheel(wheels, "slim", "1.0", files={"slim/__init__.py": ""})
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv("bulky")
        def test_bulky(isoenv):
            pass

        @pytest.mark.isoenv("slim")
        def test_slim_after(isoenv):
            isoenv.run("python", "-c", "import slim")
        """
    )
    with tmpfs(tmp_path / "small", size="48m") as disk:
        cache = disk / "cache"
        monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(cache))
        # One build after the other, as the scenario says: parallel pre-builds would share the full disk.
        result = pytester.runpytest(f"--isoenv-find-links={wheels}", "--isoenv-no-prebuild")
        stats = os.statvfs(disk)
        free_mib = stats.f_bavail * stats.f_frsize >> 20
        entries, trash = env_entries(cache), sorted(p.name for p in (cache / "trash").iterdir())
        records = [(generation(cache, e) / RECORD_NAME).is_file() for e in entries]
    result.assert_outcomes(passed=1, errors=1)
    assert (
        "installing bulky failed (in test_disk_full_during_build_fails_cleanly.py::test_bulky)" in result.stdout.str()
    )
    error = next(line for line in result.stdout.lines if "No space left on device" in line)
    assert len(entries) == 1, "only the slim env, built after the failure on the same disk"
    assert records == [True]
    assert trash == []
    figure(
        f"disk full (48 MiB tmpfs) while installing 64 MiB: BuildError with {error.strip()!r}; entries left: slim only; "
        f"trash empty; {free_mib} MiB free after"
    )
