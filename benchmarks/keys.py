"""What computing cache keys costs: 20 envs over a 500-wheel wheelhouse, a 5,000-file project and an editable one.

Run from a clone of the repository (no network needed)::

    python benchmarks/keys.py [--repeat 7] [--git] [--against DIR]

Set-up, untimed: a wheelhouse of 500 small wheels, a local project of 5,000
files (with ``--git``, in a git work tree, so it is listed by ``git ls-files``),
and an editable project whose dependencies are dynamic (read from a file).
Each of the 20 specs installs one wheel by name from the wheelhouse, the local
project and the editable project, so each reads all three.

Timed, each a new session (a new :class:`~pytest_isoenv.key.material.FileHashes` on the
same cache root, so what it loads from disk counts), keying all 20 specs: each spec's
material, the index options' and the installer settings' (pip's and uv's configuration
as this machine has it, read once per session as an installer reads it):

1. cold: no stored hashes, every file hashed;
2. warm: nothing changed since the last session;
3. one file changed: one wheel rebuilt under its name, or one source file of the project edited.

Prints the median and the range of each. With ``--against DIR``, the same runs are made
again with the package of another checkout (``git worktree add /tmp/old <commit>``; this
script knows the layout before the layers too) on the same inputs, taking turns with this
one, so both see the same load; the table then has a column for each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "resources"))

import isoenv_testbackend as backend  # noqa: E402

if os.environ.get("ISOENV_BENCH_PACKAGE"):  # --against: the other checkout's package, not this one's
    sys.path.insert(0, os.environ["ISOENV_BENCH_PACKAGE"])

try:
    from pytest_isoenv.key import material as keys
    from pytest_isoenv.key.settings import PipConfig
    from pytest_isoenv.key.uvconfig import uv_resolution_settings
    from pytest_isoenv.spec.envspec import EnvSpec
    from pytest_isoenv.spec.index import IndexOptions

    spec_material = keys.spec_material

    def settings_reader() -> Callable[[Any], object]:
        """The installer settings' key material, as one session reads it: pip's configuration read once."""
        pip = PipConfig.read(os.environ)
        return lambda hashes: (pip.resolution_settings(hashes), uv_resolution_settings(os.environ, hashes))

except ImportError:  # the layout before the layers (4970f53 and older), for --against
    from pytest_isoenv.index import IndexOptions

    from pytest_isoenv import keys, toolconfig
    from pytest_isoenv.spec import EnvSpec

    def spec_material(spec: Any, hashes: Any) -> object:
        return spec.key_material(hashes)

    def settings_reader() -> Callable[[Any], object]:
        return lambda hashes: (
            toolconfig.pip_resolution_settings(os.environ, hashes),
            toolconfig.uv_resolution_settings(os.environ, hashes),
        )


ENVS = 20
WHEELS = 500
PROJECT_FILES = 5000
OLD = time.time() - 3600  # inputs written an hour ago, as a wheelhouse and a checkout usually are


def make_inputs(root: Path, *, git: bool) -> tuple[Path, Path, Path]:
    house = root / "wheelhouse"
    house.mkdir()
    for i in range(WHEELS):
        backend.write_wheel(house, f"pkg{i}", "1.0", files={f"pkg{i}/__init__.py": f"VALUE = {i}\n"})
    project = root / "project"
    for i in range(PROJECT_FILES - 1):
        path = project / "src" / "big" / f"sub{i // 100}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE = {i}\n" * 20)
    (project / "pyproject.toml").write_text('[project]\nname = "big"\nversion = "1.0"\n')
    editable = root / "editable"
    (editable / "edit").mkdir(parents=True)
    (editable / "edit" / "__init__.py").write_text("")
    (editable / "requirements.txt").write_text("pkg1\n")
    (editable / "pyproject.toml").write_text(
        '[project]\nname = "edit"\ndynamic = ["version", "dependencies"]\n\n[tool.setuptools.dynamic]\n'
        'dependencies = { file = ["requirements.txt"] }\nversion = { attr = "edit.__version__" }\n'
    )
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            os.utime(Path(dirpath, name), (OLD, OLD))
    if git:
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        subprocess.run(["git", "-C", str(project), "add", "-A"], check=True)
    return house, project, editable


def key_all(cache: Path, specs: list[EnvSpec], index: IndexOptions) -> float:
    """Seconds one session takes to compute the key material of every spec (and to save what it learnt)."""
    started = time.perf_counter()
    hashes = keys.FileHashes(cache / "hashes", cache_root=cache)
    settings = settings_reader()
    for spec in specs:
        spec_material(spec, hashes)
        keys.index_material(index, hashes)
        settings(hashes)
    hashes.save()
    return time.perf_counter() - started


CASES = (
    "cold: no stored hashes",
    "warm: nothing changed",
    "one wheel rebuilt under its name",
    "one project source edited",
)


def run_cases(root: Path, repeat: int, *, git: bool) -> dict[str, list[float]]:
    """Each case's times, in seconds, on the inputs in *root* (made there if they are not yet)."""
    house, project, editable = root / "wheelhouse", root / "project", root / "editable"
    if not house.exists():
        make_inputs(root, git=git)
    specs = [
        EnvSpec.from_arguments([f"pkg{i}", str(project)], rootdir=root, editable=[str(editable)]) for i in range(ENVS)
    ]
    index = IndexOptions(find_links=(str(house),), offline=True)
    # A cache of each package's own: their stored hashes are not in the same format.
    cache = root / f"cache-{os.getpid()}"
    cache.mkdir(exist_ok=True)
    counter = iter(range(10**6))

    def cold() -> float:
        (cache / "hashes" / "files.tsv").unlink(missing_ok=True)
        return key_all(cache, specs, index)

    def wheel_changed() -> float:
        backend.write_wheel(house, "pkg7", "1.0", files={"pkg7/__init__.py": f"VALUE = {next(counter)}\n"})
        return key_all(cache, specs, index)

    def source_changed() -> float:
        (project / "src" / "big" / "sub3" / "mod300.py").write_text(f"VALUE = {next(counter)}\n")
        return key_all(cache, specs, index)

    times = {CASES[0]: [cold() for _ in range(repeat)]}
    key_all(cache, specs, index)
    times[CASES[1]] = [key_all(cache, specs, index) for _ in range(repeat)]
    times[CASES[2]] = [wheel_changed() for _ in range(repeat)]
    times[CASES[3]] = [source_changed() for _ in range(repeat)]
    return times


def cell(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.1f} ms ({min(times) * 1000:.1f}-{max(times) * 1000:.1f})"


def load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--git", action="store_true", help="put the 5,000-file project in a git work tree")
    parser.add_argument("--against", type=Path, help="a checkout of another commit to compare with, on the same inputs")
    parser.add_argument("--rounds", type=int, default=3, help="with --against: turns each package takes")
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)  # --against's runs of the other package
    args = parser.parse_args()
    if args.inputs is not None:
        json.dump(run_cases(args.inputs, args.repeat, git=args.git), sys.stdout)
        return
    print(f"Python {platform.python_version()}, {platform.system()} {platform.release()}, {os.cpu_count()} CPUs")
    print(f"{ENVS} envs; {WHEELS} wheels, a {PROJECT_FILES}-file project{' (git)' if args.git else ''}")
    with tempfile.TemporaryDirectory(prefix="isoenv-bench-keys-") as tmp:
        root = Path(tmp)
        make_inputs(root, git=args.git)
        if args.against is None:
            before = load()
            times = run_cases(root, args.repeat, git=args.git)
            print(f"{before}; after: {load()}")
            print("\n| keying 20 envs, one session | runs | median (range) |\n| --- | ---: | ---: |")
            for case in CASES:
                print(f"| {case} | {args.repeat} | {cell(times[case])} |")
            return
        # Turns, so that both see the same load: this package, then the other, --rounds times.
        ours: dict[str, list[float]] = {case: [] for case in CASES}
        theirs: dict[str, list[float]] = {case: [] for case in CASES}
        loads = [load()]
        command = [sys.executable, __file__, "--inputs", str(root), "--repeat", str(args.repeat)]
        for _ in range(args.rounds):
            for times, package in ((ours, str(REPO)), (theirs, str(args.against.resolve()))):
                environ = {**os.environ, "ISOENV_BENCH_PACKAGE": package}
                out = subprocess.run(
                    command + (["--git"] if args.git else []),
                    env=environ,
                    check=True,
                    text=True,
                    stdout=subprocess.PIPE,
                ).stdout
                for case, values in json.loads(out).items():
                    times[case] += values
            loads.append(load())
        runs = args.repeat * args.rounds
        print(f"{'; '.join(loads)} (before, and after each round)")
        print(f"\n| keying 20 envs, one session | runs | this checkout | {args.against.name} | ratio |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for case in CASES:
            ratio = statistics.median(ours[case]) / statistics.median(theirs[case])
            print(f"| {case} | {runs} each | {cell(ours[case])} | {cell(theirs[case])} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
