"""What the plugin costs a pytest run whose tests use no env, and the first ``isoenv`` fixture set-up of a session.

Run from a clone of the repository, with pytest-isoenv installed (no network needed)::

    python benchmarks/startup.py [--repeat 21]

1. **Start-up**: ``pytest -q test_x.py`` (one test that uses no env) in a temp folder, with the plugin
   and with ``-p no:isoenv``, alternated, *repeat* times each. Each run is a child process: its CPU
   time (user + system) is read with ``getrusage(RUSAGE_CHILDREN)`` around it, its peak RSS from the
   ``wait4`` that ends it. Twice: with an empty cache, and with a cache that holds an env (as a
   machine where the plugin was used before has).
2. **First fixture set-up**: a session of two tests that use one env that is in the cache; a
   conftest times the set-up of the ``isoenv`` fixture of each test (``pytest_fixture_setup``),
   *repeat* sessions. The pre-build has started the core before the first test, as in any run.

The children run with bytecode written and read (``PYTHONDONTWRITEBYTECODE`` unset), as an installed
plugin is: pip compiles a wheel's modules when it installs them, and an editable install otherwise
compiles the plugin's sources in every run. The fixture set-up is measured in CPU time of the process
as well as in wall time, which a loaded machine inflates. Prints medians, the ratio with and without the
plugin, the machine and its load. Nothing here is asserted: speed is never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEST = "def test_x():\n    pass\n"

ENV_TESTS = """
def test_first(isoenv):
    pass


def test_second(isoenv):
    pass
"""

#: Times each ``isoenv`` fixture set-up of the session, in the order the tests run.
TIMING_CONFTEST = """
import json, os, time
import pytest

TIMES = []


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.argname != "isoenv":
        return (yield)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        return (yield)
    finally:
        TIMES.append((time.perf_counter() - started, time.process_time() - cpu))


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_TIMES"], "w") as out:
        json.dump(TIMES, out)
"""


def child(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Run *args*: its wall seconds, CPU seconds (user + system, with its children) and peak RSS in bytes."""
    with tempfile.TemporaryFile() as errors:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        # wait4 rather than wait(): it also gives this child's own peak RSS.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{args} failed ({process.returncode}): {errors.read().decode()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def environ(cache: Path) -> dict[str, str]:
    """The children's environment: the cache at *cache*, bytecode used, nothing added to pytest's arguments."""
    env = {**os.environ, "PYTEST_ISOENV_CACHE_DIR": str(cache)}
    for name in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return env


def startup(work: Path, cache: Path, repeat: int) -> dict[str, dict[str, float]]:
    """Median wall, CPU and peak RSS of ``pytest -q test_x.py`` with and without the plugin, alternated."""
    folder = work / "startup"
    folder.mkdir(exist_ok=True)
    (folder / "test_x.py").write_text(TEST)
    env = environ(cache)
    runs: dict[str, list[tuple[float, float, int]]] = {"plugin": [], "no plugin": []}
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_x.py"]
    for _ in range(2):  # untimed: the files' pages in the OS cache, bytecode written
        child(base, folder, env)
        child([*base, "-p", "no:isoenv"], folder, env)
    for _ in range(repeat):
        runs["plugin"].append(child(base, folder, env))
        runs["no plugin"].append(child([*base, "-p", "no:isoenv"], folder, env))
    return {
        name: {
            "wall": statistics.median(r[0] for r in rows),
            "cpu": statistics.median(r[1] for r in rows),
            "rss": statistics.median(r[2] for r in rows),
        }
        for name, rows in runs.items()
    }


def first_fixture(work: Path, cache: Path, repeat: int) -> dict[str, float]:
    """Median set-up time of the first and the second ``isoenv`` fixture of a session, the env in the cache."""
    folder = work / "fixture"
    folder.mkdir(exist_ok=True)
    (folder / "test_env.py").write_text(ENV_TESTS)
    (folder / "conftest.py").write_text(TIMING_CONFTEST)
    times = folder / "times.json"
    env = {**environ(cache), "BENCH_TIMES": str(times)}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "test_env.py"]
    child(args, folder, env)  # untimed: builds the env if the cache does not have it
    rows = []
    for _ in range(repeat):
        child(args, folder, env)
        rows.append(json.loads(times.read_text()))
    return {
        f"{which} {kind}": statistics.median(row[index][column] for row in rows)
        for index, which in enumerate(("first", "second"))
        for column, kind in enumerate(("wall", "cpu"))
    }


def machine() -> str:
    """The machine, Python and the load average while this ran."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.system()} {platform.release()}, {cpus} CPUs, Python {platform.python_version()}"


def load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="runs of each measurement (default: 21)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="isoenv-startup-") as tmp:
        work = Path(tmp)
        print(f"machine: {machine()}; load average before: {load()}")
        empty = startup(work, work / "no-cache", args.repeat)
        fixture = first_fixture(work, work / "cache", args.repeat)  # builds one env into work / "cache"
        used = startup(work, work / "cache", args.repeat)
        print(f"load average after: {load()}")
    rows = [("measurement", "runs", "median wall", "median CPU", "peak RSS")]
    for label, result in (("empty cache", empty), ("a cache with an env", used)):
        for name in ("no plugin", "plugin"):
            r = result[name]
            rows.append(
                (
                    f"pytest -q test_x.py, {name}, {label}",
                    str(args.repeat),
                    f"{r['wall'] * 1000:.1f} ms",
                    f"{r['cpu'] * 1000:.1f} ms",
                    f"{r['rss'] / 2**20:.1f} MiB",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for label, result in (("empty cache", empty), ("a cache with an env", used)):
        ratio = result["plugin"]["cpu"] / result["no plugin"]["cpu"]
        extra = (result["plugin"]["rss"] - result["no plugin"]["rss"]) / 2**20
        print(f"{label}: CPU with the plugin / without: {ratio:.3f}x; peak RSS {extra:+.1f} MiB")
    for which in ("first", "second"):
        print(
            f"isoenv fixture set-up, env in the cache, {which} of a session ({args.repeat} sessions): "
            f"{fixture[f'{which} wall'] * 1000:.2f} ms wall, {fixture[f'{which} cpu'] * 1000:.2f} ms CPU"
        )


if __name__ == "__main__":
    main()
