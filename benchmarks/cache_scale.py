"""A cache of many small envs: how fast it lists and prunes, and how much disk each env takes.

Run from a clone of the repository, with pytest-isoenv installed (no network needed)::

    python benchmarks/cache_scale.py [--envs 1000] [--repeat 5] [--installers uv,pip]

1. **Disk per env**: for each installer, three real envs (one small wheel each, from a local
   wheelhouse) are built one after the other in a new cache. What the cache root holds is counted
   after the first and after the third, each file once however many hard links it has (``du``'s
   rule, in allocated blocks, folders included), so the difference over two is what one more env
   costs. Files linked from outside the cache (uv's own cache) are counted too: they are disk the
   env holds on to.
2. **A cache of** *envs* **entries**: one real env is built with uv, then copied *envs* - 3 times
   under new keys (its files hard-linked, its symlinks kept), each with a completion record written
   with the store's own API (:class:`pytest_isoenv.store.record.Record`); half of them last used 60
   days ago, half today. Three real envs are built in it too. What is timed is the real command,
   each a ``python -m pytest`` child process, alternated with the baseline (the same pytest run
   collecting an empty test file with the plugin disabled) so that load hits both alike:

   - ``--isoenv-list``;
   - ``--isoenv-prune`` with nothing to remove (``isoenv_max_age`` of 365 days);
   - ``--isoenv-prune`` removing half the envs (the 60-day-old ones; they are made again, untimed,
     before each run);
   - a session whose one test uses no env, ending with the auto-prune (due: the ``pruned`` stamp is
     removed first), with nothing to remove;
   - a session of three tests using three envs of the cache, against the same session on a cache
     that holds only those three envs.

Prints medians of wall and CPU time (user + system of the child and its children) and each
command's excess over the baseline, the machine and its load. Nothing here is asserted: speed is
never a test.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import resource
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "resources"))

import isoenv_testbackend  # noqa: E402  (the tests' own wheel writer: no index needed)

from pytest_isoenv.factory import IsoEnvFactory  # noqa: E402
from pytest_isoenv.session.envs import SessionEnvs  # noqa: E402
from pytest_isoenv.session.settings import Settings  # noqa: E402
from pytest_isoenv.spec.index import IndexOptions  # noqa: E402
from pytest_isoenv.store.cache import CURRENT_NAME, Cache  # noqa: E402
from pytest_isoenv.store.record import RECORD_NAME, Record  # noqa: E402

OLD_DAYS = 60
REAL = 3

EMPTY_TEST = "def test_nothing():\n    pass\n"


def real_tests(find_links: Path) -> str:
    """Three tests, each using the env of one small wheel."""
    return textwrap.dedent(
        f"""
        import pytest

        @pytest.mark.parametrize("i", range({REAL}))
        def test_env(isoenv_factory, i):
            env = isoenv_factory.get(f"small{{i}}")
            assert env.path.is_dir()
        """
    )


def write_wheels(folder: Path, count: int) -> None:
    """*count* small wheels ``small0``..., a module of a few lines each."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        isoenv_testbackend.write_wheel(folder, f"small{i}", "1.0", files={f"small{i}/__init__.py": "VALUE = 1\n"})


def session(cache: Path, wheels: Path, installer: str) -> SessionEnvs:
    """A new session on *cache*, installing offline from *wheels*."""
    settings = Settings(
        cache_dir=cache,
        rootdir=cache.parent,
        run_id=uuid.uuid4().hex,
        index=IndexOptions(find_links=(str(wheels),), offline=True),
        installer=installer,
    )
    return SessionEnvs(settings)


def disk_usage(root: Path) -> tuple[int, int]:
    """Bytes allocated under *root* (each inode once, folders included) and the number of inodes."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            info = Path(folder, name).lstat()
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total, len(seen)


def own_files(env: Path) -> int:
    """Files of *env* that no other path links to (a hard-link count of one)."""
    count = 0
    for folder, _, files in os.walk(env):
        for name in files:
            info = Path(folder, name).lstat()
            count += stat.S_ISREG(info.st_mode) and info.st_nlink == 1
    return count


def disk_per_env(work: Path, wheels: Path, installer: str) -> dict[str, float]:
    """What one more small env costs on disk with *installer*: bytes, inodes and its own files."""
    cache = work / f"disk-{installer}" / "cache"
    cache.parent.mkdir(parents=True)
    envs = session(cache, wheels, installer)
    made = IsoEnvFactory(envs)
    try:
        first = made.get("small0")
        after_one = disk_usage(cache)
        made.get("small1")
        made.get("small2")
        after_three = disk_usage(cache)
    finally:
        envs.close()
    return {
        "bytes": (after_three[0] - after_one[0]) / 2,
        "inodes": (after_three[1] - after_one[1]) / 2,
        "own files": own_files(first.path),
        "first env": after_one[0],
    }


def fabricate(cache: Path, template: Path, count: int, *, old: bool | None = None) -> list[str]:
    """Copy the entry *template* *count* times under new keys, with records written by the store's API.

    Files are hard-linked (so records' file signatures still hold and the copies cost no disk),
    symlinks kept. Every other entry is last used :data:`OLD_DAYS` days ago, or all of them
    (*old* true) or none (*old* false). Returns the new entries' names.
    """
    store = Cache(cache)
    name = (template / CURRENT_NAME).read_text(encoding="utf-8").strip()
    record = Record.load(template / name, "", name_only=True)
    now = time.time()
    names = []
    for i in range(count):
        key = uuid.uuid4().hex + uuid.uuid4().hex
        entry = store.entry_dir(key)
        shutil.copytree(template, entry, symlinks=True, copy_function=os.link)
        generation = entry / name
        (generation / RECORD_NAME).unlink()  # a link to the template's: written anew
        copy = dataclasses.replace(record, key=key, path=generation, created=now - 90 * 86400)
        copy.dump()
        is_old = (i % 2 == 0) if old is None else old
        used = now - OLD_DAYS * 86400 if is_old else now - 60
        os.utime(generation / RECORD_NAME, (used, used))
        names.append(entry.name)
    return names


def child(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run *args*: its wall seconds and CPU seconds (user + system, with its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 5):
        raise SystemExit(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def environ(cache: Path) -> dict[str, str]:
    env = {**os.environ, "PYTEST_ISOENV_CACHE_DIR": str(cache)}
    env.pop("PYTEST_ADDOPTS", None)
    return env


@dataclasses.dataclass
class Runs:
    """Timed runs of one measurement: wall and CPU seconds of each."""

    rows: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    def median(self, column: int) -> float:
        return statistics.median(row[column] for row in self.rows)


def pytest_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args]


def measure(
    folder: Path, cache: Path, repeat: int, commands: dict[str, tuple[list[str], Callable[[], None] | None, Path]]
) -> dict[str, Runs]:
    """Run each command *repeat* times, alternated with the baseline; each with its untimed preparation."""
    baseline = pytest_args("-p", "no:isoenv", "test_empty.py")
    runs = {"baseline": Runs(), **{name: Runs() for name in commands}}
    for args, prepare, where in commands.values():  # untimed: bytecode written, pages in the OS cache
        if prepare is not None:
            prepare()
        child(args, folder, environ(where))
    for _ in range(repeat):
        runs["baseline"].rows.append(child(baseline, folder, environ(cache)))
        for name, (args, prepare, where) in commands.items():
            if prepare is not None:
                prepare()
            runs[name].rows.append(child(args, folder, environ(where)))
    return runs


def scale(work: Path, wheels: Path, envs: int, repeat: int) -> tuple[dict[str, Runs], int]:
    """Time the commands on a cache of *envs* entries; the runs, and how many envs pruning removes."""
    big, small = work / "big" / "cache", work / "small" / "cache"
    for cache in (big, small):
        cache.parent.mkdir(parents=True)
        made = session(cache, wheels, "uv")
        try:
            for i in range(REAL):
                IsoEnvFactory(made).get(f"small{i}")
        finally:
            made.close()
    template = next(p for p in (big / "envs").iterdir())
    old = fabricate(big, template, envs - REAL)
    old = [name for i, name in enumerate(old) if i % 2 == 0]

    def refill() -> None:
        """Make again the old envs a pruning removed (untimed)."""
        missing = [name for name in old if not (big / "envs" / name).exists()]
        if missing:
            old[:] = [name for name in old if name not in missing]
            old.extend(fabricate(big, template, len(missing), old=True))

    def due() -> None:
        with contextlib.suppress(FileNotFoundError):
            (big / "pruned").unlink()

    folder = work / "project"
    folder.mkdir()
    (folder / "test_empty.py").write_text("")
    (folder / "test_plain.py").write_text(EMPTY_TEST)
    (folder / "test_real.py").write_text(real_tests(wheels))
    links = ["--isoenv-offline", "--isoenv-find-links", str(wheels), "--isoenv-installer", "uv"]
    no_prune = "--isoenv-no-auto-prune"
    commands = {
        "--isoenv-list": (pytest_args("--isoenv-list"), None, big),
        "--isoenv-prune, nothing to remove": (pytest_args("--isoenv-prune", "-o", "isoenv_max_age=365"), None, big),
        f"--isoenv-prune, removing {len(old)} of {envs}": (pytest_args("--isoenv-prune"), refill, big),
        "session end auto-prune, nothing to remove": (
            pytest_args("-o", "isoenv_max_age=365", "test_plain.py"),
            due,
            big,
        ),
        "the same session, no auto-prune": (pytest_args(no_prune, "test_plain.py"), None, big),
        f"session using {REAL} envs, cache of {envs}": (pytest_args(no_prune, *links, "test_real.py"), None, big),
        f"session using {REAL} envs, cache of {REAL}": (pytest_args(no_prune, *links, "test_real.py"), None, small),
    }
    return measure(folder, big, repeat, commands), len(old)


def load() -> str:
    with contextlib.suppress(OSError):
        return "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    return "?"


def size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    if keep:
        yield Path(tempfile.mkdtemp(prefix="isoenv-scale-"))
        return
    with tempfile.TemporaryDirectory(prefix="isoenv-scale-") as folder:
        yield Path(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", type=int, default=1000, help="entries in the big cache (default: 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each command (default: 5)")
    parser.add_argument("--installers", default="uv,pip", help="installers to measure disk for (default: uv,pip)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    print(
        f"# {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average at start {load()}"
    )
    with workdir(args.keep) as work:
        wheels = work / "wheels"
        write_wheels(wheels, REAL)
        print("\n| installer | disk per additional env | inodes per additional env | own files of an env |")
        print("| --- | ---: | ---: | ---: |")
        for installer in args.installers.split(","):
            disk = disk_per_env(work, wheels, installer)
            print(f"| {installer} | {size(disk['bytes'])} | {disk['inodes']:.0f} | {disk['own files']} |")
        runs, removed = scale(work, wheels, args.envs, args.repeat)
        base_wall, base_cpu = runs["baseline"].median(0), runs["baseline"].median(1)
        print(f"\n{args.envs} envs, {removed} of them last used {OLD_DAYS} days ago; {args.repeat} runs each")
        print("\n| measurement | median wall | median CPU | wall beyond the baseline | CPU beyond the baseline |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, timed in runs.items():
            wall, cpu = timed.median(0), timed.median(1)
            extra = "" if name == "baseline" else f" {wall - base_wall:+.3f} s | {cpu - base_cpu:+.3f} s |"
            print(f"| {name} | {wall:.3f} s | {cpu:.3f} s |{extra or ' | |'}")
        print(f"\n# load average at the end {load()}")
        if args.keep:
            print(f"# kept {work}")


if __name__ == "__main__":
    main()
