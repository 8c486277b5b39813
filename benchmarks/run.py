"""Benchmark pytest-isoenv against pytest-venv, pytest-virtualenv and the raw tools, on one local wheelhouse.

Run from a clone of the repository (needs the network once, to fetch the peers and the wheels)::

    python benchmarks/run.py [--repeat 3] [--out results.json]

Set-up, untimed: a wheelhouse of ``requests`` and its dependencies, and one
throwaway venv each for pytest-venv, pytest-virtualenv and this checkout of
pytest-isoenv. Timed, with no index (``--no-index`` and the wheelhouse only):

1. a 20-test suite, each test running ``python -c "import requests"`` in an env with requests;
2. one env built by pytest-isoenv against the raw tools doing the same work;
3. the ``isoenv`` fixture's own set-up for a warm env, in-process;
4. private env creation.

Prints a table of medians and ratios, and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SUITE_SIZE = 20

SUITES = {
    "pytest-venv": """
import subprocess
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_import(venv, i):
    venv.install("requests")
    subprocess.run([venv.python, "-c", "import requests"], check=True)
""",
    "pytest-virtualenv": """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_import(virtualenv, i):
    virtualenv.install_package("requests")
    virtualenv.run([str(virtualenv.python), "-c", "import requests"])
""",
    "pytest-isoenv": """
import pytest

@pytest.mark.isoenv("requests")
@pytest.mark.parametrize("i", range({n}))
def test_import(isoenv, i):
    isoenv.run("python", "-c", "import requests")
""",
}


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs)


#: CPU seconds (user + system, this process and its children) of each timed run, by measurement.
CPU: dict[str, list[float]] = {}


def cpu_now() -> float:
    """CPU seconds used so far by this process and its waited-for children: unlike wall time, what the
    work costs whatever else the machine is doing."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(cmd: list[str], **kwargs: Any) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, text=True, capture_output=True, **kwargs)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"benchmark command failed: {cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


class Measure:
    """Times a block, adding its wall seconds to *results* and its CPU seconds to :data:`CPU`."""

    def __init__(self, results: dict[str, list[float]], key: str, keep: bool = True) -> None:
        self.results, self.key, self.keep = results, key, keep

    def __enter__(self) -> Measure:
        self.wall, self.cpu = time.perf_counter(), cpu_now()
        return self

    def __exit__(self, *exc: object) -> None:
        wall, cpu = time.perf_counter() - self.wall, cpu_now() - self.cpu
        if self.keep and exc[0] is None:
            self.results.setdefault(self.key, []).append(wall)
            CPU.setdefault(self.key, []).append(cpu)


def make_venv(path: Path, *packages: str) -> Path:
    run([sys.executable, "-m", "venv", str(path)])
    python = path / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    run([str(python), "-m", "pip", "install", "-q", *packages])
    return python


def offline_environ(wheelhouse: Path, work: Path) -> dict[str, str]:
    """The environment of every timed run: pip and uv see only the wheelhouse, uv has a cache of its own."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "PYTEST_"))}
    environ.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheelhouse),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_INDEX="1",
        UV_FIND_LINKS=str(wheelhouse),
        UV_CACHE_DIR=str(work / "uv-cache"),
        VIRTUALENV_OVERRIDE_APP_DATA=str(work / "virtualenv-app-data"),
    )
    return environ


def outer(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="isoenv-bench-"))
    print(f"# work dir {work}", file=sys.stderr)
    wheelhouse = work / "wheelhouse"
    run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "-d", str(wheelhouse), "requests"])
    print("# building the peers' venvs", file=sys.stderr)
    pythons = {
        "pytest-venv": make_venv(work / "venv-pytest-venv", "pytest", "pytest-venv"),
        "pytest-virtualenv": make_venv(work / "venv-pytest-virtualenv", "pytest", "pytest-virtualenv"),
        "pytest-isoenv": make_venv(work / "venv-pytest-isoenv", "pytest", f"{REPO}[uv]"),
    }
    environ = offline_environ(wheelhouse, work)
    results: dict[str, list[float]] = {}

    def suite(name: str, key: str, extra: list[str], cache: Path | None) -> None:
        folder = work / f"suite-{name}"
        if not folder.exists():
            folder.mkdir()
            (folder / "test_suite.py").write_text(SUITES[name].format(n=SUITE_SIZE))
            (folder / "pytest.ini").write_text("[pytest]\n")
        env = dict(environ)
        if cache is not None:
            env["PYTEST_ISOENV_CACHE_DIR"] = str(cache)
        cmd = [str(pythons[name]), "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
        with Measure(results, key):
            timed(cmd, cwd=folder, env=env)
        print(f"# {key}: {results[key][-1]:.2f}s", file=sys.stderr)

    print("# 1. the 20-test suite", file=sys.stderr)
    isoenv_options = ["--isoenv-offline", "--isoenv-find-links", str(wheelhouse)]
    # One untimed build fills uv's cache, as any earlier use of uv on a machine would.
    suite("pytest-isoenv", "warm-up", [*isoenv_options, "--isoenv-installer", "uv"], work / "warm-up")
    for rep in range(args.repeat):
        for installer in ("pip", "uv"):
            cache = work / f"suite-cache-{installer}-{rep}"
            opts = [*isoenv_options, "--isoenv-installer", installer]
            suite("pytest-isoenv", f"1 suite: pytest-isoenv {installer}, cold", opts, cache)
            suite("pytest-isoenv", f"1 suite: pytest-isoenv {installer}, warm", opts, cache)
        for peer in ("pytest-venv", "pytest-virtualenv"):
            if rep < args.peer_repeat:
                suite(peer, f"1 suite: {peer}", [], None)

    print("# 2-4. in-process measurements", file=sys.stderr)
    inner = run(
        [str(pythons["pytest-isoenv"]), __file__, "--inner", str(work), "--repeat", str(args.repeat)],
        env=environ,
    )
    measured = json.loads(inner.stdout)
    results.update(measured["wall"])
    CPU.update(measured["cpu"])
    results.pop("warm-up", None)
    report(results, args)
    shutil.rmtree(work, ignore_errors=True)


def inner(work: Path, repeat: int) -> None:
    """The in-process parts, run inside the pytest-isoenv venv."""
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER

    from pytest_isoenv.factory import IsoEnvFactory
    from pytest_isoenv.installers.uv import find_uv
    from pytest_isoenv.session.envs import SessionEnvs, Settings
    from pytest_isoenv.spec.index import IndexOptions
    from pytest_isoenv.store.cache import Cache

    wheelhouse = work / "wheelhouse"
    index = IndexOptions(find_links=(str(wheelhouse),), offline=True)
    results: dict[str, list[float]] = {}
    uv = str(find_uv())
    # What pytest-isoenv's uv builds do: packages compiled to bytecode, pip seeded from virtualenv's wheels.
    seed_pip = ["pip", "install", "-q", "--no-index", "--find-links", str(BUNDLE_FOLDER), "pip"]

    def factory(cache: Path, installer: str, **settings: Any) -> SessionEnvs:
        return SessionEnvs(
            Settings(
                cache_dir=cache, rootdir=work, run_id=uuid.uuid4().hex, index=index, installer=installer, **settings
            ),
            private_root=lambda: Path(tempfile.mkdtemp(dir=work / "private")),
        )

    (work / "private").mkdir()
    raw = work / "raw"
    for installer in ("pip", "uv"):
        cache = work / f"one-env-{installer}"
        # Untimed: discovery and virtualenv's app-data caches exist, as the raw tools' caches do.
        probe = factory(cache, installer)
        key = probe.key(probe.spec(["requests"]))
        for rep in range(repeat + 1):  # the first round is untimed: it warms the raw tools' caches
            Cache(cache).remove_entry(key[:20])
            with Measure(results, f"2 one env: pytest-isoenv {installer}", keep=rep > 0):
                IsoEnvFactory(factory(cache, installer)).get("requests")
            shutil.rmtree(raw, ignore_errors=True)
            python = raw / "bin" / "python"
            if installer == "pip":
                with Measure(results, "2 one env: raw virtualenv + pip install", keep=rep > 0):
                    timed([sys.executable, "-m", "virtualenv", "-q", "--no-setuptools", str(raw)])
                    timed([str(python), "-m", "pip", "install", "-q", "requests"])
            else:
                with Measure(results, "2 one env: raw uv venv + uv pip install (same steps)", keep=rep > 0):
                    timed([uv, "venv", "-q", "--python", sys.executable, str(raw)])
                    timed([uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(python), "requests"])
                    timed([uv, *seed_pip, "--python", str(python)])

    warm = work / "one-env-uv"
    for _ in range(max(50, repeat)):
        with Measure(results, "3 fixture set-up, warm env, first test of a session"):
            f = factory(warm, "uv")
            f.env(f.spec(["requests"]))
        with Measure(results, "3 fixture set-up, warm env, later tests"):
            f.env(f.spec(["requests"]))

    for installer in ("pip", "uv"):
        f = IsoEnvFactory(factory(work / f"one-env-{installer}", installer))
        f.get("requests")
        for _ in range(max(10, repeat)):
            with Measure(results, f"4 private env: pytest-isoenv {installer}"):
                f.get("requests", private=True)
    for _ in range(max(10, repeat)):
        target = Path(tempfile.mkdtemp(dir=work / "private")) / "env"
        python = target / "bin" / "python"
        with Measure(results, "4 private env: raw uv venv + uv pip install from uv's cache"):
            timed([uv, "venv", "-q", "--python", sys.executable, str(target)])
            timed([uv, "pip", "install", "-q", "--offline", "--python", str(python), "requests"])
            timed([uv, *seed_pip, "--python", str(python)])
    print(json.dumps({"wall": results, "cpu": CPU}))


BASELINES = {
    "1 suite: pytest-isoenv": "1 suite: pytest-venv",
    "2 one env: pytest-isoenv pip": "2 one env: raw virtualenv + pip install",
    "2 one env: pytest-isoenv uv": "2 one env: raw uv venv + uv pip install (same steps)",
    "4 private env: pytest-isoenv uv": "4 private env: raw uv venv + uv pip install from uv's cache",
}


def report(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    wall = {key: statistics.median(values) for key, values in results.items()}
    cpu = {key: statistics.median(values) for key, values in CPU.items()}
    lines = [
        machine(),
        "",
        "| measurement | runs | median wall | median CPU | against |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for key in sorted(wall):
        base = next((b for prefix, b in BASELINES.items() if key.startswith(prefix) and b in wall), None)
        against = ""
        if base:
            ratio = wall[key] / wall[base]
            shown = f"{1 / ratio:.1f}x faster" if ratio < 1 else f"{ratio:.2f}x the time"
            against = (
                f"{shown} {'than' if ratio < 1 else 'of'} {base.split(': ', 1)[1]} (CPU: {cpu[key] / cpu[base]:.2f}x)"
            )
        lines.append(f"| {key} | {len(results[key])} | {duration(wall[key])} | {duration(cpu[key])} | {against} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps({"wall": results, "cpu": CPU, "table": text}, indent=2))


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"Machine: {platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average at the end {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (median reported)")
    parser.add_argument("--peer-repeat", type=int, default=3, help="runs of the peers' suites (they are slow)")
    parser.add_argument("--out", help="also write the raw results and the table to this JSON file")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(Path(args.inner), args.repeat)
    else:
        outer(args)


if __name__ == "__main__":
    main()
