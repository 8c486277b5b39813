"""The cache: layout, completion records, check-lock-check builds, cleanup of failed builds, safety."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import WAIT, hold_lock

from pytest_isoenv.errors import BuildError, BuildFailedEarlier, CacheError
from pytest_isoenv.store import locks
from pytest_isoenv.store.cache import CURRENT_NAME, Cache
from pytest_isoenv.store.fs import delete
from pytest_isoenv.store.record import RECORD_NAME, Built, Record
from pytest_isoenv.text import LineSink

KEY = "ab" * 32


@dataclass(frozen=True)
class Asked:
    """An :class:`~pytest_isoenv.store.cache.EnvBuild` made of plain values and functions, for these tests."""

    key: str
    make: Callable[[Path, Path], Built]
    what: str
    run_id: str
    stale_if: Callable[[Record], bool] | None = None
    notify: LineSink | None = None
    warn: LineSink | None = None
    lock_timeout: float = -1

    def stale(self, record: Record) -> bool:
        return self.stale_if is not None and self.stale_if(record)

    def held(self) -> set[str]:
        return set()

    def build(self, generation: Path, log: Path) -> Built:
        return self.make(generation, log)


def fake_env(path: Path, log: Path) -> Built:
    """What a build leaves for the cache logic: an env dir with an interpreter in it.

    The cache never looks inside an env beyond these cheap checks, so these tests
    exercise its logic directly; real builds are covered in test_factory.py.
    """
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").symlink_to(sys.executable)
    (path / "site-packages").mkdir()
    log.write_text("built\n")
    return Built(
        description="fake",
        python_spec=None,
        installer="none",
        interpreter={},
        base_executable=sys.executable,
        python="bin/python",
        bin_dir="bin",
        site_packages="site-packages",
        packages={},
        dist_infos=[],
        build_seconds=0.5,
    )


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    cache = Cache(tmp_path / "cache")
    cache.ensure()
    return cache


def test_ensure_makes_a_private_tagged_root(cache: Cache) -> None:
    assert (cache.root / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert (cache.root / ".gitignore").read_text().endswith("*\n")
    if sys.platform != "win32":
        assert stat.S_IMODE(cache.root.stat().st_mode) == 0o700


def test_build_once_then_reuse(cache: Cache) -> None:
    calls: list[Path] = []

    def build(path: Path, log: Path) -> Built:
        calls.append(path)
        return fake_env(path, log)

    record, built = cache.get_or_build(Asked(KEY, build, what="env", run_id="r1"))
    assert built
    assert record.python == cache.entry_dir(KEY) / "1" / "bin" / "python"
    assert cache.current(KEY) == record.path
    again, built_again = cache.get_or_build(Asked(KEY, build, what="env", run_id="r2"))
    assert not built_again
    assert (again.built, again.created) == (record.built, record.created)
    assert len(calls) == 1
    data = json.loads((record.path / RECORD_NAME).read_text())
    assert data["key"] == KEY
    assert data["run_id"] == "r1"


def test_rebuild_happens_once_per_run(cache: Cache) -> None:
    builds = []

    def build(path: Path, log: Path) -> Built:
        builds.append(1)
        return fake_env(path, log)

    def stale(record: Record) -> bool:
        return record.run_id != "r2"

    cache.get_or_build(Asked(KEY, build, what="env", run_id="r1"))
    first = cache.current(KEY)
    cache.get_or_build(Asked(KEY, build, what="env", run_id="r2", stale_if=stale))
    cache.get_or_build(Asked(KEY, build, what="env", run_id="r2", stale_if=stale))
    assert len(builds) == 2
    assert cache.current(KEY) != first, "the rebuild is a new generation"
    assert [p.name for p in cache.generations(KEY)] == ["2"], "nobody holds the old one, so it went"
    cache.get_or_build(Asked(KEY, build, what="env", run_id="r3", stale_if=lambda record: record.run_id != "r3"))
    assert [p.name for p in cache.generations(KEY)] == ["1"], "the lowest free number is reused"


def test_failed_build_leaves_nothing_behind(cache: Cache) -> None:
    def build(path: Path, log: Path) -> Built:
        fake_env(path, log)
        raise RuntimeError("installer exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        cache.get_or_build(Asked(KEY, build, what="env", run_id="r1"))
    assert not cache.entry_dir(KEY).exists()
    assert list((cache.root / "trash").iterdir()) == []
    assert (cache.log_path(KEY)).read_text() == "built\n", "the log outlives the failed build"


def test_entry_without_record_is_never_used_and_is_rebuilt(cache: Cache) -> None:
    fake_env(cache.entry_dir(KEY) / "1", cache.log_path(KEY))  # an interrupted build: no completion record
    assert cache.read_record(KEY) == (None, "it has no completion record (an interrupted build)")
    warnings: list[str] = []
    record, built = cache.get_or_build(Asked(KEY, fake_env, what="env", run_id="r", warn=warnings.append))
    assert built
    assert record.python.exists()
    assert warnings == [f"rebuilding env [{KEY[:12]}]: it has no completion record (an interrupted build)"]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda env: (env / RECORD_NAME).write_text('{"format": 1, "ke'), "its completion record is unreadable"),
        (lambda env: (env / RECORD_NAME).write_text('{"format": 999}'), "its completion record is of another format"),
        (lambda env: (env / "bin" / "python").unlink(), "its interpreter"),
    ],
)
def test_damaged_entries_are_not_used(cache: Cache, damage: Any, reason: str) -> None:
    cache.get_or_build(Asked(KEY, fake_env, what="env", run_id="r"))
    damage(cache.current(KEY))
    record, problem = cache.read_record(KEY)
    assert record is None
    assert problem is not None
    assert problem.startswith(reason)


def test_record_of_another_key_is_not_used(cache: Cache) -> None:
    other = "cd" * 32
    cache.get_or_build(Asked(KEY, fake_env, what="env", run_id="r"))
    generation = cache.current(KEY)
    assert generation is not None
    data = json.loads((generation / RECORD_NAME).read_text())
    (cache.entry_dir(other) / "1").mkdir(parents=True)
    (cache.entry_dir(other) / "1" / RECORD_NAME).write_text(json.dumps(data))
    (cache.entry_dir(other) / CURRENT_NAME).write_text("1")
    assert cache.read_record(other) == (None, "its completion record belongs to another key")


def test_waiting_for_a_lock_says_for_what_and_for_whom(cache: Cache) -> None:
    """Another process holds the build lock; we wait, say so, and then reuse what it built."""
    notices: list[str] = []
    waited = threading.Event()
    outcome: list[tuple[Record, bool]] = []

    def notify(message: str) -> None:
        notices.append(message)
        waited.set()

    def waiter() -> None:
        outcome.append(cache.get_or_build(Asked(KEY, fake_env, what="env (alpha)", run_id="mine", notify=notify)))

    with hold_lock(cache.root, KEY) as holder:
        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        assert waited.wait(WAIT), "the waiter never announced its wait"
        # What the holder builds, written while it holds the lock: the cache only looks at the record.
        generation = cache.entry_dir(KEY) / "1"
        Record.complete(KEY, generation, fake_env(generation, cache.log_path(KEY)), "other").dump()
        (cache.entry_dir(KEY) / CURRENT_NAME).write_text("1")
        holder.release()
        thread.join(WAIT)
    assert outcome, "the waiter did not end once the lock was free"
    [(record, built)] = outcome
    assert not built, "the waiting process reuses the env built while it waited"
    assert record.run_id == "other"
    assert len(notices) == 1
    assert notices[0].startswith(f"waiting for env (alpha) [{KEY[:12]}], being built by pid {holder.pid} on ")


def test_lock_timeout_names_the_holder(cache: Cache) -> None:
    """With a lock timeout, a waiter gives up with an error naming who holds the lock."""
    waiter = (
        "from pathlib import Path\n"
        "from pytest_isoenv.store.cache import Cache\n"
        f"with Cache(Path({str(cache.root)!r})).lock({KEY!r}, what='env (alpha)', timeout=0.2):\n"
        "    pass\n"
    )
    with cache.lock(KEY, what="env (alpha)"):
        proc = subprocess.run([sys.executable, "-c", waiter], capture_output=True, text=True, check=False, timeout=WAIT)
    assert proc.returncode != 0
    assert f"gave up waiting 0.2s for the lock of env (alpha) [{KEY[:12]}], held by pid {os.getpid()}" in proc.stderr
    assert "isoenv_lock_timeout" in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_symlinked_or_shared_roots_are_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(CacheError, match=r"is a symlink; refusing it"):
        Cache(link).ensure()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(CacheError, match=r"writable by others \(mode 777\).*chmod go-w"):
        Cache(shared).ensure()


def test_unwritable_place_says_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CacheError, match=r"cannot use the isoenv cache dir .*PYTEST_ISOENV_CACHE_DIR"):
        Cache(blocker / "cache").ensure()


def test_remove_moves_aside_then_deletes(cache: Cache) -> None:
    cache.get_or_build(Asked(KEY, fake_env, what="env", run_id="r"))
    moved = cache.remove_entry(KEY[:20])
    assert moved is not None
    assert not cache.entry_dir(KEY).exists()
    delete(moved)
    assert list((cache.root / "trash").iterdir()) == []
    assert Path(sys.executable).exists(), "removing an env never follows its links"


def test_a_holder_that_finishes_while_we_look_is_no_wait_to_announce(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock is taken, but its holder's owner file is missing (gone with a holder that just finished):
    the waiter takes the lock as soon as it is free and announces nothing, not a wait for "another process"."""
    monkeypatch.setattr(locks, "OWNER_PATIENCE", 60.0)  # the holder surely lets go inside the window
    notices: list[str] = []
    entered = threading.Event()

    def waiter() -> None:
        with cache.lock(KEY, what="env (alpha)", notify=notices.append):
            entered.set()

    with hold_lock(cache.root, KEY, owner=False) as holder:
        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        assert not entered.wait(0.3), "the lock is held: the waiter must wait"
        holder.release()
        thread.join(WAIT)
    assert entered.is_set()
    assert notices == []


def test_a_failed_build_is_recorded_for_its_run_and_tried_again_by_the_next(cache: Cache) -> None:
    calls: list[str] = []

    def failing(path: Path, log: Path) -> Built:
        calls.append("fail")
        log.write_text("no such dist\n")
        raise BuildError("installing alpha==9.9 failed", log=log, where="test_x.py::test_a")

    with pytest.raises(BuildError):
        cache.get_or_build(Asked(KEY, failing, what="env", run_id="r1"))
    # Another process of the same run (an xdist worker) does not build it again: it points at the first report.
    other = Cache(cache.root, worker="gw1")
    with pytest.raises(BuildFailedEarlier) as raised:
        other.get_or_build(Asked(KEY, failing, what="env", run_id="r1"))
    assert str(raised.value) == (
        "installing alpha==9.9 failed earlier in this run: see the report of test_x.py::test_a for the error, "
        f"and the log {cache.log_path(KEY)}"
    )
    assert calls == ["fail"]
    # A new run tries again; once it succeeds, the record of the failure goes.
    _, built = cache.get_or_build(Asked(KEY, fake_env, what="env", run_id="r2"))
    assert built
    assert not cache.failure_path(KEY).exists()


def test_an_env_restored_from_a_copy_is_not_taken_for_a_changed_one(cache: Cache, tmp_path: Path) -> None:
    """A CI cache is restored from an archive: new inodes, the same sizes and times; no reinstall looks like that."""

    def with_a_distribution(path: Path, log: Path) -> Built:
        built = fake_env(path, log)
        record = path / "site-packages" / "alpha-1.0.dist-info" / "RECORD"
        record.parent.mkdir()
        record.write_text("alpha/__init__.py,,\n")
        os.utime(record, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
        return built

    record, _ = cache.get_or_build(Asked(KEY, with_a_distribution, what="env", run_id="r1"))
    saved = tmp_path / "ci-store"
    shutil.copytree(cache.root, saved, symlinks=True)
    shutil.rmtree(cache.root)
    shutil.copytree(saved, cache.root, symlinks=True)  # copy2 keeps the times to the nanosecond
    restored, problem = cache.read_record(KEY)
    assert problem is None
    assert restored is not None
    assert restored.site_packages_changes() is None
    # A rewrite of the RECORD (a reinstall) is still seen.
    rewritten = record.site_packages / "alpha-1.0.dist-info" / "RECORD"
    rewritten.write_text("alpha/__init__.py,,\n")
    assert restored.site_packages_changes() == "reinstalled alpha-1.0.dist-info"
