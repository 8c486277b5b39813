"""Benchmark warm interpreters (``warm=True``) against plain subprocesses, in one run.

Run from a clone of the repository, with pytest-isoenv installed (needs the network once, for the wheels)::

    python benchmarks/warm.py [--calls 50] [--repeat 3] [--out results.json]

Set-up, untimed: a wheelhouse of ``requests`` (and setuptools, to install the example project),
one env with requests and one with the example project ``examples/greeter`` (editable). Timed,
offline:

1. **Per call**: ``isoenv.run("python", "-c", "import requests")`` on the same env, plain and
   with ``warm=True, preload=("requests",)``, one of each in turn; the median of *calls* calls each.
   Then *calls* warm calls in a row, as a suite makes them.
2. **Suites**: a 200-test suite, each test running the example's ``greet`` command once, without and
   with ``warm=True, preload=("greeter.cli",)``, and with the modules ``greet`` imports while it runs
   preloaded too (``"shutil", "locale"``), and the same 200 tests running nothing (the floor:
   what pytest and the ``isoenv`` fixture cost, which no warm interpreter removes); and a 200-test
   suite of ``python -c "import requests"`` calls, without and with ``warm=True, preload=("requests",)``.
   *repeat* runs each, after one untimed run of each that builds the envs. Then the warm greet suite
   once more under ``-n 2``, to count the warm interpreters of each worker and their memory.

CPU is user + system time of every process involved (the benchmark, pytest, the subprocesses; for
warm calls the warm interpreter and its children, read from ``/proc``): unlike wall time, what the
work costs whatever else the machine is doing.
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
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GREETER = REPO / "examples" / "greeter"
SUITE_SIZE = 200

SUITE = """
import pytest

pytestmark = pytest.mark.isoenv({requirements}{options})


@pytest.mark.parametrize("i", range({n}))
def test_greet(isoenv, i):
    {body}
"""
GREET = 'assert isoenv.run("greet", f"Ada{i}").stdout == f"Hello, Ada{i}!\\n"'
IMPORT = 'isoenv.run("python", "-c", "import requests")'


# Records, at the end of each session (each xdist worker), the warm interpreters it had.
CONFTEST = """
import json, os
from pathlib import Path
from pytest_isoenv.run import warm

def pytest_sessionfinish(session):
    rows = []
    for server in warm.servers():
        if server.pid is None:
            continue
        rss = 0
        for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
        rows.append({"pid": server.pid, "starts": server.starts, "served": server.served, "rss": rss})
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    Path(os.environ["BENCH_SERVERS"], worker + ".json").write_text(json.dumps(rows))
"""


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pid: int | None) -> float:
    """CPU seconds of process *pid* and its reaped children (Linux ``/proc``; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def per_call(work: Path, wheelhouse: Path, calls: int) -> dict[str, list[tuple[float, float]]]:
    from pytest_isoenv.factory import IsoEnvFactory
    from pytest_isoenv.run import warm
    from pytest_isoenv.session.envs import SessionEnvs, Settings
    from pytest_isoenv.spec.index import IndexOptions

    settings = Settings(
        cache_dir=work / "cache",
        rootdir=work,
        run_id=uuid.uuid4().hex,
        index=IndexOptions(find_links=(str(wheelhouse),), offline=True),
    )
    factory = IsoEnvFactory(SessionEnvs(settings))
    plain = factory.get("requests")
    hot = factory.get("requests", warm=True, preload=("requests",))
    server = warm.server_for(hot.python, hot.bin_dir, hot.environ, hot.spec.preload)
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "warm": []}
    for _ in range(3):  # untimed: the warm interpreter starts, both have their files in the page cache
        plain.run("python", "-c", "import requests")
        hot.run("python", "-c", "import requests")
    assert server is not None
    pid = server.pid
    assert pid is not None
    # Alternated, so that both kinds meet the same machine load. Wall time per call; CPU as the mean over
    # all calls of a kind: this process's own around each call, plus for plain calls the reaped child's
    # and for warm calls the warm interpreter's and its reaped children's over the whole run (counted once
    # it has reaped them, and /proc counts in clock ticks: per call it would round to nothing).
    own = {"plain": 0.0, "warm": 0.0}
    reaped, served = 0.0, cpu_of(pid)
    for _ in range(calls):
        for kind, env in (("plain", plain), ("warm", hot)):
            cpu, children = cpu_self(), cpu_children()
            started = time.perf_counter()
            env.run("python", "-c", "import requests")
            results[kind].append((time.perf_counter() - started, 0.0))
            own[kind] += cpu_self() - cpu
            if kind == "plain":
                reaped += cpu_children() - children
    time.sleep(0.5)
    means = {"plain": (own["plain"] + reaped) / calls, "warm": (own["warm"] + cpu_of(pid) - served) / calls}
    # Warm calls one after the other, as a suite makes them: between two calls in turn the warm
    # interpreter sleeps through a whole plain start, and its next call finds CPU caches cold.
    results["warm, in a row"] = []
    cpu, served = cpu_self(), cpu_of(pid)
    for _ in range(calls):
        started = time.perf_counter()
        hot.run("python", "-c", "import requests")
        results["warm, in a row"].append((time.perf_counter() - started, 0.0))
    time.sleep(0.5)
    means["warm, in a row"] = (cpu_self() - cpu + cpu_of(pid) - served) / calls
    for kind, mean in means.items():
        results[kind] = [(wall, mean) for wall, _ in results[kind]]
    warm.stop()
    return results


def suite(work: Path, wheelhouse: Path, name: str, options: str, extra: list[str]) -> tuple[float, float, Any]:
    folder = work / f"suite-{name}"
    if not folder.exists():
        folder.mkdir()
        body = "pass" if name == "floor" else IMPORT if name.startswith("requests") else GREET
        requirements = '"requests"' if name.startswith("requests") else f"editable=[{str(GREETER)!r}]"
        text = SUITE.format(requirements=requirements, options=options, n=SUITE_SIZE, body=body)
        (folder / "test_suite.py").write_text(text)
        (folder / "conftest.py").write_text(CONFTEST)
        (folder / "pytest.ini").write_text("[pytest]\n")
    servers = folder / "servers"
    servers.mkdir(exist_ok=True)
    for old in servers.iterdir():
        old.unlink()
    environ = dict(os.environ, PYTEST_ISOENV_CACHE_DIR=str(work / "cache"), BENCH_SERVERS=str(servers))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--isoenv-offline"]
    cmd += [f"--isoenv-find-links={wheelhouse}", *extra]
    cpu, started = cpu_children(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, env=environ, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - started, cpu_children() - cpu
    if proc.returncode:
        raise SystemExit(f"the {name} suite failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, cpu, {p.stem: json.loads(p.read_text()) for p in sorted(servers.iterdir())}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="calls of each kind in the per-call measurement")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each suite (median reported)")
    parser.add_argument("--out", help="also write the raw results and the table to this JSON file")
    parser.add_argument(
        "--per-call-only", action="store_true", help="only the per-call measurement (minutes less on a busy machine)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="isoenv-bench-warm-"))
    print(f"# work dir {work}", file=sys.stderr)
    wheelhouse = work / "wheelhouse"
    download = [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "-d", str(wheelhouse)]
    subprocess.run([*download, "requests", "setuptools>=64"], check=True)
    print("# 1. per call", file=sys.stderr)
    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    calls = per_call(work, wheelhouse, args.calls)
    if args.per_call_only:
        plain, hot = (statistics.median(wall for wall, _ in calls[kind]) for kind in ("plain", "warm"))
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"Machine: {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python")
        print(f"{platform.python_version()}, load average {load_before} before and {load} after.")
        print(f'per call, `python -c "import requests"`, {args.calls} of each in turn (median wall; mean CPU):')
        print(f"plain {ms(plain)}; {ms(calls['plain'][0][1])} CPU")
        print(f"warm {ms(hot)}; {ms(calls['warm'][0][1])} CPU; {plain / hot:.1f}x faster")
        row_wall = statistics.median(wall for wall, _ in calls["warm, in a row"])
        print(f"warm, {args.calls} in a row: {ms(row_wall)}; {ms(calls['warm, in a row'][0][1])} CPU")
        return
    print("# 2. suites", file=sys.stderr)
    # The floor: the same 200 tests with the same env, running nothing: pytest's and the fixture's own cost.
    # The same with a program that is slow to start: each test runs python -c "import requests".
    variants = {
        "plain": "",
        "warm": ', warm=True, preload=("greeter.cli",)',
        # What the docs advise: also preload what the command imports while it runs (argparse imports
        # shutil and gettext imports locale only when a parser is made), found as docs/how-to/warm.md shows.
        "warm-tuned": ', warm=True, preload=("greeter.cli", "shutil", "locale")',
        "floor": "",
        "requests-plain": "",
        "requests-warm": ', warm=True, preload=("requests",)',
    }
    for name, options in variants.items():
        suite(work, wheelhouse, name, options, [])  # untimed: builds the env (once) and warms the page cache
    suites: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    servers: dict[str, Any] = {}
    for _ in range(args.repeat):
        for name, options in variants.items():
            wall, cpu, servers[name] = suite(work, wheelhouse, name, options, [])
            suites[name].append((wall, cpu))
            print(f"# {name} suite: {wall:.2f}s", file=sys.stderr)
    _, _, xdist = suite(work, wheelhouse, "warm", variants["warm"], ["-n", "2"])

    def med(values: list[tuple[float, float]], index: int) -> float:
        return statistics.median(v[index] for v in values)

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"Machine: {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average at the end {load}. `python benchmarks/warm.py "
        f"--calls {args.calls} --repeat {args.repeat}`",
        "",
        "| measurement | runs | median wall | CPU (median; per call: mean) | warm against plain |",
        "| --- | ---: | ---: | ---: | --- |",
    ]

    def against(plain: list[tuple[float, float]], warm: list[tuple[float, float]], floor: Any = None) -> str:
        """How much faster *warm* is than *plain* in wall time and CPU (and above *floor*, if given)."""
        text = f"{med(plain, 0) / med(warm, 0):.1f}x faster (CPU: {med(plain, 1) / med(warm, 1):.1f}x less)"
        if floor is not None:
            text += (
                f"; above the floor: {(med(plain, 0) - med(floor, 0)) / (med(warm, 0) - med(floor, 0)):.1f}x "
                f"(CPU: {(med(plain, 1) - med(floor, 1)) / (med(warm, 1) - med(floor, 1)):.1f}x)"
            )
        return text

    def row(what: str, values: list[tuple[float, float]], ratio: str = "") -> str:
        return f"| {what} | {len(values)} | {ms(med(values, 0))} | {ms(med(values, 1))} | {ratio} |"

    call, requests_suite = '`python -c "import requests"`', f'{SUITE_SIZE}-test `python -c "import requests"` suite'
    lines += [
        row(f"per call: {call}, plain", calls["plain"]),
        row(f"per call: {call}, warm", calls["warm"], against(calls["plain"], calls["warm"])),
        row(f"per call: {call}, warm, {len(calls['warm, in a row'])} in a row", calls["warm, in a row"]),
        row(f"{requests_suite}, plain", suites["requests-plain"]),
        row(
            f"{requests_suite}, warm",
            suites["requests-warm"],
            against(suites["requests-plain"], suites["requests-warm"]),
        ),
    ]
    labels = {
        "plain": "plain",
        "warm": 'warm, `preload=("greeter.cli",)`',
        "warm-tuned": 'warm, `preload=("greeter.cli", "shutil", "locale")`',
        "floor": "the same tests running nothing (the floor)",
    }
    for kind, label in labels.items():
        ratio = against(suites["plain"], suites[kind], suites["floor"]) if kind.startswith("warm") else ""
        lines.append(row(f"{SUITE_SIZE}-test greet suite, {label}", suites[kind], ratio))
    lines.append("")
    for label, seen in (("one session", servers["warm"]), ("-n 2", xdist)):
        parts = []
        for worker, rows in seen.items():
            each = ", ".join(f"{row['rss'] / 2**20:.0f} MiB RSS, {row['served']} calls" for row in rows)
            parts.append(f"{worker}: {len(rows)} ({each})")
        lines.append(f"- warm interpreters in the warm suite, {label}: {'; '.join(parts)}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(
            json.dumps({"calls": calls, "suites": suites, "servers": servers, "xdist": xdist, "table": text}, indent=2)
        )


if __name__ == "__main__":
    main()
