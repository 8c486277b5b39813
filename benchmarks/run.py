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


def timed(cmd: list[str], **kwargs: Any) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, text=True, capture_output=True, **kwargs)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"benchmark command failed: {cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


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
        seconds = timed(cmd, cwd=folder, env=env)
        results.setdefault(key, []).append(seconds)
        print(f"# {key}: {seconds:.2f}s", file=sys.stderr)

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
    for key, values in json.loads(inner.stdout).items():
        results[key] = values
    results.pop("warm-up", None)
    report(results, args)
    shutil.rmtree(work, ignore_errors=True)


def inner(work: Path, repeat: int) -> None:
    """The in-process parts, run inside the pytest-isoenv venv."""
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER

    from pytest_isoenv.factory import IsoEnvFactory, Settings
    from pytest_isoenv.installers import IndexOptions, find_uv

    wheelhouse = work / "wheelhouse"
    index = IndexOptions(find_links=(str(wheelhouse),), offline=True)
    results: dict[str, list[float]] = {}
    uv = str(find_uv())
    # What pytest-isoenv's uv builds do: packages compiled to bytecode, pip seeded from virtualenv's wheels.
    seed_pip = ["pip", "install", "-q", "--no-index", "--find-links", str(BUNDLE_FOLDER), "pip"]

    def factory(cache: Path, installer: str, **settings: Any) -> IsoEnvFactory:
        return IsoEnvFactory(
            Settings(
                cache_dir=cache, rootdir=work, run_id=uuid.uuid4().hex, index=index, installer=installer, **settings
            ),
            private_root=lambda: Path(tempfile.mkdtemp(dir=work / "private")),
        )

    (work / "private").mkdir()
    raw = work / "raw"
    for installer in ("pip", "uv"):
        cache = work / f"one-env-{installer}"
        factory(cache, installer).get("requests")  # untimed: discovery and app-data caches, as raw tools have theirs
        for rep in range(repeat + 1):  # the first round is untimed: it warms the raw tools' caches
            started = time.perf_counter()
            factory(cache, installer, rebuild=True).get("requests")
            if rep:
                results.setdefault(f"2 one env: pytest-isoenv {installer}", []).append(time.perf_counter() - started)
            shutil.rmtree(raw, ignore_errors=True)
            python = raw / "bin" / "python"
            if installer == "pip":
                seconds = timed([sys.executable, "-m", "virtualenv", "-q", "--no-setuptools", str(raw)])
                seconds += timed([str(python), "-m", "pip", "install", "-q", "requests"])
                if rep:
                    results.setdefault("2 one env: raw virtualenv + pip install", []).append(seconds)
            else:
                seconds = timed([uv, "venv", "-q", "--python", sys.executable, str(raw)])
                seconds += timed(
                    [uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(python), "requests"]
                )
                seconds += timed([uv, *seed_pip, "--python", str(python)])
                if rep:
                    results.setdefault("2 one env: raw uv venv + uv pip install (same steps)", []).append(seconds)

    warm = work / "one-env-uv"
    spec_args = ("requests",)
    for _ in range(max(50, repeat)):
        started = time.perf_counter()
        f = factory(warm, "uv")
        f.env(f.spec(spec_args))
        results.setdefault("3 fixture set-up, warm env, first test of a session", []).append(
            time.perf_counter() - started
        )
        started = time.perf_counter()
        f.env(f.spec(spec_args))
        results.setdefault("3 fixture set-up, warm env, later tests", []).append(time.perf_counter() - started)

    for installer in ("pip", "uv"):
        f = factory(work / f"one-env-{installer}", installer)
        shared = f.get("requests")
        for _ in range(max(10, repeat)):
            started = time.perf_counter()
            f.get("requests", private=True)
            results.setdefault(f"4 private env: pytest-isoenv {installer}", []).append(time.perf_counter() - started)
        if installer == "uv":
            for _ in range(max(10, repeat)):
                target = Path(tempfile.mkdtemp(dir=work / "private")) / "env"
                seconds = timed([uv, "venv", "-q", "--python", sys.executable, str(target)])
                python = target / "bin" / "python"
                seconds += timed([uv, "pip", "install", "-q", "--offline", "--python", str(python), "requests"])
                seconds += timed([uv, *seed_pip, "--python", str(python)])
                results.setdefault("4 private env: raw uv venv + uv pip install from uv's cache", []).append(seconds)
        assert shared.path.exists()
    print(json.dumps(results))


BASELINES = {
    "1 suite: pytest-isoenv": "1 suite: pytest-venv",
    "2 one env: pytest-isoenv pip": "2 one env: raw virtualenv + pip install",
    "2 one env: pytest-isoenv uv": "2 one env: raw uv venv + uv pip install (same steps)",
    "4 private env: pytest-isoenv uv": "4 private env: raw uv venv + uv pip install from uv's cache",
}


def report(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    medians = {key: statistics.median(values) for key, values in results.items()}
    lines = [machine(), "", "| measurement | runs | median | ratio |", "| --- | ---: | ---: | ---: |"]
    for key in sorted(medians):
        base = next((b for prefix, b in BASELINES.items() if key.startswith(prefix) and b in medians), None)
        ratio = f"{medians[key] / medians[base]:.2f}x of {base.split(': ', 1)[1]}" if base and base != key else ""
        value = medians[key]
        shown = f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
        lines.append(f"| {key} | {len(results[key])} | {shown} | {ratio} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps({"results": results, "table": text}, indent=2))


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
