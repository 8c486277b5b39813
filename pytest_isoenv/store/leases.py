"""Who holds which env, and removing what nobody holds: leases, the cache's entries, prune and clear.

A process that uses envs holds a :class:`Lease`: ``sessions/<id>.lock`` is locked for
as long as it lives (the OS lets go when the process dies) and ``sessions/<id>.json``
lists the keys it uses, each with the generation it runs in. Nothing is removed
that a live lease names: not an entry (prune and clear), not a generation (the
sweep after a rebuild). Removal happens under the maintenance lock, and
:meth:`Lease.add` waits for that lock after registering a key, so a prune either
sees the lease or finishes before the process looks at the env.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_isoenv.errors import CacheError
from pytest_isoenv.store.cache import ENTRY_NAME, GENERATION_NAME, KEY_LENGTH, Cache, cache_write_error
from pytest_isoenv.store.fs import Deletions, check_owned, tree_size, write_atomic
from pytest_isoenv.store.locks import read_owner
from pytest_isoenv.store.record import RECORD_NAME, Record
from pytest_isoenv.text import LineSink, format_age, format_size

#: The generation a lease names while it has not yet looked at the env: every generation is held.
ANY_GENERATION = "*"


@dataclass(frozen=True)
class LeaseInfo:
    """A live process's lease, as another process reads it."""

    id: str
    pid: int
    host: str
    run_id: str
    keys: dict[str, str]
    """Each key the process uses, with the generation it runs in (``"*"`` while it resolves it)."""

    @property
    def who(self) -> str:
        return f"pid {self.pid} on {self.host}"


def live_leases(cache: Cache) -> list[LeaseInfo]:
    """The leases of live processes; those of processes that ended are removed on the way."""
    live = []
    try:
        paths = sorted(cache.folder("sessions").glob("*.json"))
    except OSError:
        return []
    for path in paths:
        lock = FileLock(path.with_suffix(".lock"), mode=0o600, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
                data = json.loads(path.read_text(encoding="utf-8"))
                keys = data["keys"]
                live.append(
                    LeaseInfo(
                        path.stem,
                        int(data["pid"]),
                        str(data["host"]),
                        str(data["run_id"]),
                        dict(keys) if isinstance(keys, dict) else dict.fromkeys(keys, ANY_GENERATION),
                    )
                )
            continue
        except OSError:  # a read-only cache: a lease we cannot check may be live
            continue
        try:
            for stale in (path, path.with_suffix(".lock")):
                with contextlib.suppress(OSError):
                    stale.unlink()
        finally:
            lock.release()
    return live


def held_generations(cache: Cache, key: str, *, exclude: str | None = None) -> set[str]:
    """The generations of *key* live leases hold (other than the lease *exclude*)."""
    return {lease.keys[key] for lease in live_leases(cache) if lease.id != exclude and key in lease.keys}


class Lease:
    """A process's claim on the envs it uses, so that no prune, clear or rebuild removes them while it runs."""

    def __init__(self, cache: Cache, run_id: str) -> None:
        self.cache = cache
        self.run_id = run_id
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.keys: dict[str, str] = {}
        #: Why the lease could not be recorded (a read-only or full cache), once: the envs are used all the same.
        self.problem: str | None = None
        self._json = cache.folder("sessions") / f"{self.id}.json"
        # Not thread-local: a lease taken in a worker thread is released by the main thread.
        self._lock = FileLock(cache.folder("sessions") / f"{self.id}.lock", mode=0o600, thread_local=False)
        self._mutex = threading.Lock()

    def add(self, key: str, *, notify: LineSink | None = None) -> None:
        """Claim every generation of *key* before its env is looked at; waits while a prune is removing envs."""
        with self._mutex:
            if key in self.keys:
                return
            self.keys[key] = ANY_GENERATION
            self._write()
        if self.problem is None:
            wait_for_maintenance(self.cache, notify)

    def pin(self, key: str, generation: str) -> None:
        """Narrow the claim on *key* to the *generation* this process runs in, so older ones may go."""
        with self._mutex:
            if self.keys.get(key) != generation:
                self.keys[key] = generation
                self._write()

    def _write(self) -> None:
        if self.problem is not None:
            return
        try:
            if not self._lock.is_locked:
                self._lock.acquire()
            data = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "run_id": self.run_id,
                "since": time.time(),
                "keys": dict(sorted(self.keys.items())),
            }
            write_atomic(self._json, json.dumps(data))
        except OSError as exc:
            # A cache restored read-only still serves the envs it has; nothing else can remove them either.
            self.problem = cache_write_error(self.cache.root, exc, "record which envs this session uses")

    def close(self) -> None:
        """Give up every claim; generations this process was the last to hold, and that are no longer current, go."""
        with self._mutex:
            keys, self.keys = dict(self.keys), {}
            if self._lock.is_locked:
                for path in (self._json, Path(self._lock.lock_file)):
                    with contextlib.suppress(OSError):
                        path.unlink()
                self._lock.release()
        for key, generation in keys.items():
            current = self.cache.current(key) if generation != ANY_GENERATION else None
            if current is not None and current.name != generation:
                with contextlib.suppress(CacheError), self.cache.lock(key, what="sweeping", timeout=0):
                    self.cache.sweep(key, held_generations(self.cache, key))


@contextlib.contextmanager
def maintenance_held(cache: Cache, action: str) -> Iterator[None]:
    """The cache's maintenance lock, held while *action* (``prune``, ``clear``) moves things aside.

    A lock that cannot be made is a :class:`CacheError` naming the cache and the action.
    """
    try:
        lock = FileLock(cache.maintenance_lock_path, mode=0o600, thread_local=False)
        lock.acquire()
    except OSError as exc:
        raise CacheError(cache_write_error(cache.root, exc, action)) from exc
    try:
        yield
    finally:
        lock.release()


def wait_for_maintenance(cache: Cache, notify: LineSink | None = None) -> None:
    """Return once no prune or clear is removing envs (waiting, and saying so, while one is)."""
    lock = FileLock(cache.maintenance_lock_path, mode=0o600, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if notify is not None:
            notify("waiting for another process to finish pruning the isoenv cache")
        lock.acquire()
    except OSError:  # a read-only cache: nobody can be pruning it
        return
    lock.release()


@dataclass(frozen=True)
class Entry:
    """One env entry in the cache, as listing and pruning see it."""

    name: str
    """The directory name: the first hex digits of the key."""
    path: Path
    record: Record | None
    """The current generation's completion record, or ``None`` when the env cannot be used."""
    problem: str | None
    """Why the env cannot be used, when it cannot."""
    last_used: float
    """When a session last used it (the record's mtime), as a timestamp."""
    size: int | None = None
    """Bytes on disk, every generation counted, when measured."""
    foreign: bool = False
    """Not something pytest-isoenv made: listed, never removed."""
    old_generations: bool = False
    """Whether it holds generations besides the current one (which a sweep removes once nobody holds them)."""

    @property
    def description(self) -> str:
        return self.record.built.description if self.record is not None else "?"

    @property
    def python(self) -> str:
        if self.record is None:
            return "?"
        interpreter = self.record.built.interpreter
        implementation, version = interpreter.get("implementation"), interpreter.get("version")
        return f"{implementation} {str(version).split()[0]}" if implementation and version else "?"

    @property
    def installer(self) -> str:
        return self.record.built.installer if self.record is not None else "?"

    @property
    def resolution(self) -> str:
        return self.record.built.resolution if self.record is not None else "?"

    @property
    def created(self) -> float | None:
        return self.record.created if self.record is not None else None


def list_entries(cache: Cache, *, sizes: bool = True) -> list[Entry]:
    """Every env entry in *cache*, least recently used first; *sizes* measures each one.

    Folders and links whose names the cache does not make are listed as foreign, and never removed.
    """
    try:
        paths = [p for p in cache.folder("envs").iterdir() if not p.name.startswith(".")]
    except FileNotFoundError:
        return []
    return sorted((_entry(cache, path, sizes) for path in paths), key=lambda entry: entry.last_used)


def _entry(cache: Cache, path: Path, sizes: bool) -> Entry:
    if not ENTRY_NAME.fullmatch(path.name):
        return Entry(path.name, path, None, "not made by pytest-isoenv (left alone)", 0.0, None, foreign=True)
    try:
        check_owned(path, mode=False)
    except CacheError as exc:
        return Entry(path.name, path, None, str(exc).split(";")[0], 0.0, None)
    except FileNotFoundError:
        return Entry(path.name, path, None, "removed meanwhile", 0.0, None)
    # By name: the record says the full key; one whose key is not this entry's is a problem it names.
    record, problem = cache.read_record(path.name, name_only=True)
    generation = record.path if record is not None else cache.current(path.name)
    last_used = 0.0
    for where in ((generation / RECORD_NAME) if generation else path, path):
        with contextlib.suppress(OSError):
            last_used = where.stat().st_mtime
            break
    try:
        generations = [p for p in path.iterdir() if GENERATION_NAME.fullmatch(p.name)]
    except OSError:
        generations = []
    old = any(p != generation for p in generations)
    size = None
    if sizes:
        # A cache of many envs lists fast: a generation's size is in its record, taken at build time.
        size = sum(
            record.size if record is not None and p == record.path and record.size is not None else tree_size(p)
            for p in generations
        )
    return Entry(path.name, path, record, problem, last_used, size, old_generations=old)


@dataclass
class Pruned:
    """What a prune or clear did: the entries removed and the ones it had to keep, each with why.

    A clear also frees the installers' folders (:data:`~pytest_isoenv.store.clearing.DATA_FOLDERS`): *folders* lists
    each one it removed, with what it held and its size, *kept_folders* each it kept, with why.
    """

    removed: list[tuple[Entry, str]] = field(default_factory=list)
    kept: list[tuple[Entry, str]] = field(default_factory=list)
    folders: list[tuple[str, str, int]] = field(default_factory=list)
    kept_folders: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(entry.size or 0 for entry, _ in self.removed) + sum(size for _, _, size in self.folders)


def prune(
    cache: Cache,
    *,
    max_age: float | None = None,
    max_size: int | None = None,
    keep: Collection[str] = (),
    unusable: bool = True,
) -> Pruned:
    """Remove envs that are *unusable* or unused for *max_age* days, then the least recently used.

    The second step goes on while the cache is over *max_size* bytes. Envs
    whose keys are in *keep* or in a live lease, and envs being built, stay.
    Old generations of the envs that stay go too, when no live lease holds them.
    """
    now = time.time()

    def stale(entry: Entry) -> str | None:
        if entry.record is None and unusable:
            return f"unusable: {entry.problem}"
        if max_age is not None and now - entry.last_used > max_age * 86400:
            return f"last used {format_age(now - entry.last_used)}, isoenv_max_age is {max_age:g} day(s)"
        return None

    def over_size(entries: list[Entry]) -> Iterator[tuple[Entry, str]]:
        if max_size is None:
            return
        total = sum(entry.size or 0 for entry in entries)
        for entry in entries:
            if total <= max_size:
                return
            total -= entry.size or 0
            yield entry, f"least recently used while the cache is over isoenv_max_size ({format_size(max_size)})"

    return remove_entries(cache, stale, over_size, keep=keep)


def remove_entries(
    cache: Cache,
    reason: Callable[[Entry], str | None],
    then: Callable[[list[Entry]], Iterator[tuple[Entry, str]]] | None,
    *,
    keep: Collection[str],
) -> Pruned:
    pruned = Pruned()
    if not cache.is_ours() or not cache.folder("envs").is_dir():  # never remove from a folder the cache did not make
        return pruned
    # Each env is deleted as soon as it is in the trash, while the next ones are looked at.
    with Deletions() as deletions, maintenance_held(cache, "prune"):
        for leftover in cache.trash_leftovers():  # what an interrupted removal left, before this one adds its own
            deletions.add(leftover)
        busy = {key[:KEY_LENGTH]: "used by this session" for key in keep}
        holders: dict[str, set[str]] = {}
        for lease in live_leases(cache):
            for key, generation in lease.keys.items():
                busy.setdefault(key[:KEY_LENGTH], f"in use by {lease.who}")
                holders.setdefault(key[:KEY_LENGTH], set()).add(generation)
        remaining = []
        for entry in list_entries(cache):  # sizes from the records: what a removal frees, at no cost
            if entry.foreign:
                continue
            why = reason(entry)
            if why is None or not _move_entry(cache, entry, why, busy.get(entry.name), pruned, deletions):
                remaining.append(entry)
        # Sizes count what stays, busy entries included; only entries nobody holds go.
        for entry, why in then(remaining) if then is not None else ():
            _move_entry(cache, entry, why, busy.get(entry.name), pruned, deletions)
        for entry in remaining:
            # Only an entry with an old generation has anything to sweep: no lock is taken for the others.
            if entry.old_generations and entry.path.exists() and not entry.path.is_symlink():
                with contextlib.suppress(CacheError), cache.lock(entry.name, what="sweeping", timeout=0):
                    cache.sweep(entry.name, holders.get(entry.name, set()))
    return pruned


def _move_entry(cache: Cache, entry: Entry, why: str, user: str | None, pruned: Pruned, deletions: Deletions) -> bool:
    if user is not None:
        pruned.kept.append((entry, user))
        return False
    try:
        with cache.lock(entry.name, what="removing it from the cache", timeout=0):
            if entry.size is None:
                entry = replace(entry, size=tree_size(entry.path))
            target = cache.remove_entry(entry.name)
    except CacheError:
        pruned.kept.append((entry, f"being built by {read_owner(cache.lock_path(entry.name))}"))
        return False
    if target is not None:  # else another process removed it first
        deletions.add(target)
        pruned.removed.append((entry, why))
    return True
