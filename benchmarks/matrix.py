"""Benchmark a 3x3 (Python x dependency version) matrix: pytest-isoenv against tox (with tox-uv) and nox (uv backend).

Run from a clone of the repository (needs the network once, for the tools and pytest's wheels)::

    python benchmarks/matrix.py [--pythons 3.11,3.12,3.13] [--repeat 1] [--out results.json]

Set-up, untimed: a throwaway venv with tox, tox-uv and nox, another with this
checkout of pytest-isoenv, and a wheelhouse holding pytest's wheels and three
versions of a small package, ``depx`` 1.0, 2.0 and 3.0. Then the same matrix,
three Pythons by ``depx==1.*``, ``2.*`` and ``3.*``, of a 10-test file, in each tool:

- tox: ``env_list = py{...}-depx{1,2,3}``, ``tox run`` and ``tox run-parallel``;
- nox: one session parametrised over ``depx`` with ``python=[...]``, ``nox -r``;
- pytest-isoenv: ``@pytest.mark.isoenv(["depx==1.*", "depx==2.*", "depx==3.*"])`` and ``--isoenv-python``.

tox and nox run the 10 tests with pytest inside each of their 9 envs (the tests
import ``depx``); pytest-isoenv runs them in pytest's process, each running
``python -c "import depx"`` in its cell's env, 90 tests in all. Everything
timed installs offline from the wheelhouse. *Cold* starts with no envs and an
empty uv cache (and pip cache), *warm* is the next run on what the cold one left.

Prints a table of medians, and the machine it ran on.
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
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "resources"))

import isoenv_testbackend  # noqa: E402  (the tests' own wheel writer: no index needed for depx)

VERSIONS = ("1", "2", "3")
TESTS = 10

PLAIN_TESTS = f"""
import pytest


@pytest.mark.parametrize("i", range({TESTS}))
def test_dep(i):
    import depx

    assert depx.VERSION
"""

ISOENV_TESTS = f"""
import pytest


@pytest.mark.isoenv([{", ".join(f'"depx=={v}.*"' for v in VERSIONS)}])
@pytest.mark.parametrize("i", range({TESTS}))
def test_dep(isoenv, i):
    isoenv.run("python", "-c", "import depx; assert depx.VERSION")
"""


def tox_ini(pythons: list[str]) -> str:
    factors = ",".join(p.replace(".", "") for p in pythons)
    lines = [
        "[tox]",
        f"env_list = py{{{factors}}}-depx{{{','.join(VERSIONS)}}}",
        "requires = tox-uv",
        "",
        "[testenv]",
        "package = skip",
        "pass_env = UV_*, PIP_*",
        "deps =",
        "    pytest",
        *(f"    depx{v}: depx=={v}.*" for v in VERSIONS),
        "commands = pytest -q -p no:cacheprovider tests_plain",
    ]
    return "\n".join(lines) + "\n"


def noxfile(pythons: list[str]) -> str:
    return textwrap.dedent(
        f"""\
        import nox

        nox.options.default_venv_backend = "uv"


        @nox.session(python={pythons!r})
        @nox.parametrize("depx", {list(VERSIONS)!r})
        def tests(session, depx):
            session.install("pytest", f"depx=={{depx}}.*")
            session.run("pytest", "-q", "-p", "no:cacheprovider", "tests_plain")
        """
    )


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, text=True, capture_output=True, check=False, **kwargs)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def cpu_now() -> float:
    """CPU seconds (user + system) of this process and its waited-for children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def make_venv(path: Path, *packages: str) -> Path:
    run([sys.executable, "-m", "venv", str(path)])
    python = path / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", *packages])
    return path / "bin"


def find_pythons(wanted: list[str]) -> dict[str, Path]:
    """The interpreter of each wanted version: pyenv's versions folder, the one running this, or PATH."""
    pyenv = Path(os.path.expanduser(os.environ.get("PYENV_ROOT") or "~/.pyenv")) / "versions"
    found: dict[str, Path] = {}
    for version in wanted:
        # Real interpreters before pyenv's shims, which run only the versions pyenv has made active.
        candidates = [str(p) for p in sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True)]
        if (
            "{}.{}".format(*sys.version_info[:2]) == version
        ):  # the base of a venv, not the venv: its bin is no PATH entry
            candidates.append(getattr(sys, "_base_executable", sys.executable))
        candidates.append(shutil.which(f"python{version}") or "")
        for candidate in filter(None, candidates):
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.stdout.strip() == version:
                found[version] = Path(candidate)
                break
        else:
            raise SystemExit(f"no Python {version} found on PATH or in {pyenv}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythons", default="3.11,3.12,3.13", help="three Python versions, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="cold and warm runs of each tool")
    parser.add_argument("--out", type=Path, help="write the raw timings here, as JSON")
    args = parser.parse_args()
    pythons = args.pythons.split(",")
    interpreters = find_pythons(pythons)

    work = Path(tempfile.mkdtemp(prefix="isoenv-matrix-bench-"))
    print(f"# work dir {work}", file=sys.stderr)
    wheelhouse = work / "wheelhouse"
    wheelhouse.mkdir()
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary",
            ":all:",
            "-d",
            str(wheelhouse),
            "pytest",
            "tomli",
            "exceptiongroup",
        ]
    )
    for version in VERSIONS:
        isoenv_testbackend.write_wheel(
            wheelhouse, "depx", f"{version}.0", files={"depx/__init__.py": f"VERSION = '{version}.0'\n"}
        )
    print("# making the tools' venvs", file=sys.stderr)
    tools = make_venv(work / "venv-tools", "tox", "tox-uv", "nox")
    isoenv = make_venv(work / "venv-isoenv", "pytest", f"{REPO}[uv]")

    project = work / "project"
    (project / "tests_plain").mkdir(parents=True)
    (project / "tests_isoenv").mkdir()
    (project / "tests_plain" / "test_dep.py").write_text(PLAIN_TESTS)
    (project / "tests_isoenv" / "test_dep.py").write_text(ISOENV_TESTS)
    (project / "tox.ini").write_text(tox_ini(pythons))
    (project / "noxfile.py").write_text(noxfile(pythons))
    (project / "pytest.ini").write_text("[pytest]\n")

    uv_cache, pip_cache, isoenv_cache = work / "uv-cache", work / "pip-cache", work / "isoenv-cache"
    environ = {
        **os.environ,
        # The three interpreters first on PATH, where tox, tox-uv, nox and pytest-isoenv all look.
        "PATH": os.pathsep.join([*(str(p.parent) for p in interpreters.values()), os.environ["PATH"]]),
        "UV_FIND_LINKS": str(wheelhouse),
        "UV_NO_INDEX": "1",
        "UV_CACHE_DIR": str(uv_cache),
        "UV_PYTHON_DOWNLOADS": "never",
        "PIP_FIND_LINKS": str(wheelhouse),
        "PIP_NO_INDEX": "1",
        "PIP_CACHE_DIR": str(pip_cache),
        "PYTEST_ISOENV_CACHE_DIR": str(isoenv_cache),
    }
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "TOX_WORK_DIR"):
        environ.pop(name, None)
    isoenv_args = [
        str(isoenv / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests_isoenv",
        "--isoenv-python", ",".join(pythons), "--isoenv-strict-python", "--isoenv-offline",
        "--isoenv-find-links", str(wheelhouse),
    ]  # fmt: skip
    tools_cmds: dict[str, tuple[list[str], list[Path]]] = {
        "tox run (sequential)": ([str(tools / "tox"), "run"], [project / ".tox"]),
        "tox run-parallel": ([str(tools / "tox"), "run-parallel", "-p", "auto", "--parallel-live"], [project / ".tox"]),
        "nox -r (sequential)": ([str(tools / "nox"), "-r"], [project / ".nox"]),
        "pytest-isoenv, uv": ([*isoenv_args, "--isoenv-installer", "uv"], [isoenv_cache]),
        "pytest-isoenv, pip": ([*isoenv_args, "--isoenv-installer", "pip"], [isoenv_cache]),
    }
    results: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        for name, (cmd, state) in tools_cmds.items():
            for path in [*state, uv_cache, pip_cache]:
                shutil.rmtree(path, ignore_errors=True)
            for temperature in ("cold", "warm"):
                print(f"# {name}, {temperature}", file=sys.stderr)
                started, cpu = time.perf_counter(), cpu_now()
                proc = run(cmd, cwd=project, env=environ)
                output = proc.stdout + proc.stderr
                passed = output.count(f"{TESTS} passed") * TESTS or output.count(f"{TESTS * 9} passed") * TESTS * 9
                if passed != TESTS * 9:  # every tool must have run the whole matrix, or its time means nothing
                    raise SystemExit(f"{name} ran {passed} tests, not {TESTS * 9}:\n{output[-3000:]}")
                results.setdefault(f"{name}, {temperature}", []).append(
                    (time.perf_counter() - started, cpu_now() - cpu)
                )

    uv = run([str(isoenv / "python"), "-m", "uv", "--version"]).stdout.strip()
    versions = run([str(tools / "python"), "-m", "pip", "list", "--format=json"]).stdout
    tool_versions = {p["name"]: p["version"] for p in json.loads(versions) if p["name"] in ("tox", "tox-uv", "nox")}
    print(
        f"Machine: {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {uv}, "
        + ", ".join(f"{k} {v}" for k, v in sorted(tool_versions.items()))
        + f"; pythons {', '.join(f'{v} ({p})' for v, p in interpreters.items())}; load {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| run | runs | median wall | median CPU |")
    print("| --- | ---: | ---: | ---: |")
    for name, samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        print(f"| {name} | {len(samples)} | {wall:.1f} s | {cpu:.1f} s |")
    if args.out:
        args.out.write_text(json.dumps({"results": results, "tools": tool_versions, "uv": uv}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
