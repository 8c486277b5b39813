"""What computing cache keys costs: 20 envs over a 500-wheel wheelhouse, a 5,000-file project and an editable one.

Run from a clone of the repository (no network needed)::

    python benchmarks/keys.py [--repeat 7] [--git]

Set-up, untimed: a wheelhouse of 500 small wheels, a local project of 5,000
files (with ``--git``, in a git work tree, so it is listed by ``git ls-files``),
and an editable project whose dependencies are dynamic (read from a file).
Each of the 20 specs installs one wheel by name from the wheelhouse, the local
project and the editable project, so each reads all three.

Timed, each a new session (a new :class:`~pytest_isoenv.key.material.FileHashes` on the
same cache root, so what it loads from disk counts), keying all 20 specs:

1. cold: no stored hashes, every file hashed;
2. warm: nothing changed since the last session;
3. one file changed: one wheel rebuilt under its name, or one source file of the project edited.

Prints the median and the range of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "resources"))

import isoenv_testbackend as backend  # noqa: E402

from pytest_isoenv.key import material as keys  # noqa: E402
from pytest_isoenv.spec.envspec import EnvSpec  # noqa: E402
from pytest_isoenv.spec.index import IndexOptions  # noqa: E402

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
    for spec in specs:
        keys.spec_material(spec, hashes)
        keys.index_material(index, hashes)
    hashes.save()
    return time.perf_counter() - started


def measure(what: str, repeat: int, run: Callable[[], float]) -> None:
    times = [run() for _ in range(repeat)]
    print(
        f"| {what} | {repeat} | {statistics.median(times) * 1000:.1f} ms | "
        f"{min(times) * 1000:.1f}-{max(times) * 1000:.1f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--git", action="store_true", help="put the 5,000-file project in a git work tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="isoenv-bench-keys-") as tmp:
        root = Path(tmp)
        house, project, editable = make_inputs(root, git=args.git)
        specs = [
            EnvSpec.from_arguments([f"pkg{i}", str(project)], rootdir=root, editable=[str(editable)])
            for i in range(ENVS)
        ]
        index = IndexOptions(find_links=(str(house),), offline=True)
        cache = root / "cache"
        cache.mkdir()
        print(f"Python {platform.python_version()}, {platform.system()} {platform.release()}, {os.cpu_count()} CPUs")
        print(f"{ENVS} envs; {WHEELS} wheels, a {PROJECT_FILES}-file project{' (git)' if args.git else ''}")
        print("\n| keying 20 envs, one session | runs | median | range |\n| --- | ---: | ---: | ---: |")

        def cold() -> float:
            (cache / "hashes" / "files.tsv").unlink(missing_ok=True)
            return key_all(cache, specs, index)

        measure("cold: no stored hashes", args.repeat, cold)
        key_all(cache, specs, index)
        measure("warm: nothing changed", args.repeat, lambda: key_all(cache, specs, index))
        counter = iter(range(10**6))

        def wheel_changed() -> float:
            backend.write_wheel(house, "pkg7", "1.0", files={"pkg7/__init__.py": f"VALUE = {next(counter)}\n"})
            return key_all(cache, specs, index)

        def source_changed() -> float:
            (project / "src" / "big" / "sub3" / "mod300.py").write_text(f"VALUE = {next(counter)}\n")
            return key_all(cache, specs, index)

        measure("one wheel rebuilt under its name", args.repeat, wheel_changed)
        measure("one project source edited", args.repeat, source_changed)


if __name__ == "__main__":
    main()
