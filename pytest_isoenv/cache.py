"""The env cache: its layout on disk, per-key locks, completion records and reuse checks.

Layout of a cache root::

    CACHEDIR.TAG, .gitignore
    envs/<key>/                   one env, built in place (venvs hard-code their location)
    envs/<key>/isoenv-record.json the completion record, written last; no record, no env
    locks/<key>.lock              held while building <key>; <key>.owner says who holds it
    locks/maintenance.lock        held while pruning or clearing moves envs aside
    logs/<key>.log                the installer output of the last build of <key>
    sessions/<id>.lock, <id>.json a live process's lease: its lock is held while it runs, the JSON lists its keys
    virtualenv/                   virtualenv's app-data (seed wheels), so seeding pip is fast
    py-info/                      what interpreter discovery learned
    trash/                        envs being removed (moved here first, so removal is atomic)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .errors import BuildError, CacheError, LockTimeout

RECORD_NAME = "isoenv-record.json"
#: Bump when the record's content changes meaning; records of another format are rebuilt.
RECORD_FORMAT = 1
KEY_LENGTH = 20  # hex digits of the key used for directory names: 80 bits, short paths for Windows

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by pytest-isoenv.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/spec.html\n"
)

#: Told, as a sentence, what a waiting process waits for (the terminal, or a warning).
Notify = Callable[[str], None]


@dataclass(frozen=True)
class Record:
    """The completion record of a built env: what it is, what is in it, and how long it took."""

    key: str
    path: Path
    data: dict[str, Any] = field(repr=False)

    @property
    def python(self) -> Path:
        return self.path / str(self.data["paths"]["python"])

    @property
    def run_id(self) -> str | None:
        run_id: str | None = self.data.get("run_id")
        return run_id

    @property
    def build_seconds(self) -> float:
        return float(self.data.get("timings", {}).get("total", 0.0))

    @property
    def site_packages(self) -> Path:
        return self.path / str(self.data["paths"]["site_packages"])

    def problem(self) -> str | None:
        """Why this env cannot be used as it is, found by cheap checks, or ``None`` if it can.

        A few ``stat`` calls and one directory listing: cheap enough for every use.
        """
        base = self.data.get("base_executable")
        if base:
            signature = _file_signature(Path(base))
            if signature is None:
                return f"its base interpreter {base} was removed"
            if self.data.get("base_signature", signature) != signature:
                return f"its base interpreter {base} was replaced since the env was built (upgraded or reinstalled)"
        if not self.python.exists():
            return f"its interpreter {self.python} is missing"
        changed = self.site_packages_changes()
        if changed:
            return f"its site-packages {self.site_packages} changed since it was built ({changed})"
        missing = [d for d in self.data.get("dist_infos", []) if not (self.path / d).exists()]
        if missing:
            return f"{len(missing)} installed distribution(s) are gone from it (e.g. {missing[0]})"
        return None

    def site_packages_changes(self) -> str | None:
        """What was added to or removed from site-packages since the build (by name), or ``None``."""
        recorded = self.data.get("site_packages_entries")
        if recorded is None:
            return None
        now = site_packages_entries(self.site_packages)
        added, removed = sorted(set(now) - set(recorded)), sorted(set(recorded) - set(now))
        parts = [f"added {', '.join(added)}"] if added else []
        parts += [f"removed {', '.join(removed)}"] if removed else []
        return "; ".join(parts) or None


class Cache:
    """A cache root shared by every session and process that points at it."""

    def __init__(self, root: Path, *, worker: str | None = None) -> None:
        self.root = root
        #: The xdist worker id of this process, if it is one: named to processes that wait for our builds.
        self.worker = worker

    @property
    def envs_dir(self) -> Path:
        return self.root / "envs"

    @property
    def app_data_dir(self) -> Path:
        return self.root / "virtualenv"

    @property
    def py_info_dir(self) -> Path:
        return self.root / "py-info"

    def env_dir(self, key: str) -> Path:
        return self.envs_dir / key[:KEY_LENGTH]

    def log_path(self, key: str) -> Path:
        return self.root / "logs" / f"{key[:KEY_LENGTH]}.log"

    def _lock_path(self, key: str) -> Path:
        return self.root / "locks" / f"{key[:KEY_LENGTH]}.lock"

    def ensure(self) -> None:
        """Create the root (private to the user) and its folders, refusing places that are not safe."""
        try:
            _make_private_dir(self.root)
            _check_owned(self.root)
            tag = self.root / "CACHEDIR.TAG"
            if not tag.exists():
                _write_atomic(tag, CACHEDIR_TAG)
                _write_atomic(self.root / ".gitignore", "# created by pytest-isoenv\n*\n")
            for sub in ("envs", "locks", "logs", "trash", "sessions"):
                _make_private_dir(self.root / sub)
                _check_owned(self.root / sub)
        except OSError as exc:
            raise CacheError(
                f"cannot use the isoenv cache dir {self.root}: {exc.strerror or exc}. "
                "Point --isoenv-cache-dir (or PYTEST_ISOENV_CACHE_DIR) at a writable directory"
            ) from exc

    def read_record(self, key: str) -> tuple[Record | None, str | None]:
        """The usable record of *key*, or ``None`` and why the entry cannot be used (``None`` if absent)."""
        path = self.env_dir(key)
        try:
            _check_owned(path, mode=False)
        except FileNotFoundError:
            return None, None
        try:
            data = json.loads((path / RECORD_NAME).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, ("it has no completion record (an interrupted build)" if path.exists() else None)
        except (OSError, ValueError) as exc:
            return None, f"its completion record is unreadable ({exc})"
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            return None, "its completion record is of another format"
        if data.get("key") != key:
            return None, "its completion record belongs to another key"
        record = Record(key, path, data)
        problem = record.problem()
        return (None, problem) if problem else (record, None)

    @contextlib.contextmanager
    def lock(self, key: str, *, what: str, notify: Notify | None = None, timeout: float = -1) -> Iterator[None]:
        """Hold the build lock of *key*, saying what we wait for and who holds it when it is taken."""
        lock_path = self._lock_path(key)
        owner_path = lock_path.with_suffix(".owner")
        # Recent filelock opens with O_NOFOLLOW, older ones follow links: refuse a link either way.
        if lock_path.is_symlink():
            raise CacheError(
                f"the lock file {lock_path} is a symlink; refusing to follow it. Remove the link "
                "(nothing but pytest-isoenv should write into the cache dir)"
            )
        lock = FileLock(lock_path, mode=0o600)
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                if notify is None:
                    lock.acquire(timeout=timeout)
                else:
                    holder = _holder_unless_free(lock, owner_path)
                    if holder is not None:  # else it finished while we looked: there is no wait to announce
                        notify(f"waiting for {what} [{key[:12]}], being built by {holder}")
                        lock.acquire(timeout=timeout)
        except Timeout:
            raise LockTimeout(
                f"gave up waiting {timeout:g}s for the lock of {what} [{key[:12]}], held by "
                f"{_read_owner(owner_path)} (lock file {lock_path}). Raise isoenv_lock_timeout, or end "
                "that process if it is stuck"
            ) from None
        except OSError as exc:
            raise CacheError(f"cannot lock {lock_path}: {exc.strerror or exc}") from exc
        try:
            owner = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "worker": self.worker,
                "what": what,
                "since": time.time(),
            }
            with contextlib.suppress(OSError):
                _write_atomic(owner_path, json.dumps(owner))
            yield
        finally:
            with contextlib.suppress(OSError):
                owner_path.unlink()
            lock.release()

    def get_or_build(
        self,
        key: str,
        build: Callable[[Path, Path], dict[str, Any]],
        *,
        what: str,
        run_id: str,
        rebuild: bool = False,
        notify: Notify | None = None,
        warn: Notify | None = None,
        lock_timeout: float = -1,
    ) -> tuple[Record, bool]:
        """The env of *key*: reused when a usable one exists, else built by ``build(env_dir, log)``.

        Check, lock, check again: the lock is taken only when a build looks
        needed, and whoever held it may have built the env meanwhile. With
        *rebuild*, an env not built during *run_id* is rebuilt once for the run
        (every xdist worker of a run shares its id). Returns the record and
        whether this call built it. A failed or interrupted build leaves nothing.
        """

        def usable() -> tuple[Record | None, str | None]:
            record, problem = self.read_record(key)
            if record is not None and rebuild and record.run_id != run_id:
                return None, None
            return record, problem

        record, _ = usable()
        if record is None:
            with self.lock(key, what=what, notify=notify, timeout=lock_timeout):
                record, problem = usable()
                if record is None:
                    # Only under the lock: before it, a missing record may be a build in progress.
                    if problem is not None and warn is not None:
                        warn(f"rebuilding {what} [{key[:12]}]: {problem}")
                    self.remove(key)
                    env_dir, log = self.env_dir(key), self.log_path(key)
                    try:
                        data = build(env_dir, log)
                        return self.publish(key, {**data, "run_id": run_id}), True
                    except OSError as exc:
                        # A full disk or a vanished folder: the same clean failure as an installer's.
                        self.remove(key)
                        raise BuildError(f"building {what} failed: {exc}", log=log) from exc
                    except BaseException:
                        self.remove(key)
                        raise
        self.touch(record)
        return record, False

    def publish(self, key: str, data: dict[str, Any]) -> Record:
        """Write the completion record of the env built at ``env_dir(key)``: the last step of a build.

        Adds what :meth:`Record.problem` compares on each use: the base
        interpreter's file signature and the names in site-packages.
        """
        path = self.env_dir(key)
        data = {**data, "format": RECORD_FORMAT, "key": key, "created": time.time()}
        data["site_packages_entries"] = site_packages_entries(path / str(data["paths"]["site_packages"]))
        if data.get("base_executable"):
            data["base_signature"] = _file_signature(Path(data["base_executable"]))
        _write_atomic(path / RECORD_NAME, json.dumps(data, indent=2, sort_keys=True))
        return Record(key, path, data)

    def touch(self, record: Record) -> None:
        """Record that *record*'s env was used now (the record's mtime; the env itself is never modified)."""
        with contextlib.suppress(OSError):
            os.utime(record.path / RECORD_NAME)

    def remove(self, key: str) -> None:
        """Remove the env of *key*: first moved aside, so no reader ever sees it half-deleted."""
        remove_tree(self.env_dir(key), self.root / "trash")

    # Management: what is cached, who uses it, and removing what nobody needs. A process using
    # envs holds a Lease; removal happens under the maintenance lock, and Lease.add waits for that
    # lock after registering a key, so a prune either sees the lease or finishes before the
    # process looks at the env.

    @property
    def sessions_dir(self) -> Path:
        return self.root / "sessions"

    @property
    def _maintenance_path(self) -> Path:
        return self.root / "locks" / "maintenance.lock"

    def entries(self, *, sizes: bool = True) -> list[Entry]:
        """Every env directory in the cache, least recently used first; *sizes* measures each one."""
        try:
            paths = [p for p in self.envs_dir.iterdir() if p.is_dir() and not p.is_symlink()]
        except FileNotFoundError:
            return []
        return sorted((self._entry(path, sizes) for path in paths), key=lambda entry: entry.last_used)

    def _entry(self, path: Path, sizes: bool) -> Entry:
        try:
            key = json.loads((path / RECORD_NAME).read_text(encoding="utf-8"))["key"]
        except (OSError, ValueError, KeyError, TypeError):
            key = None
        # Without a full key, read_record explains what is wrong with the entry.
        record, problem = self.read_record(key if isinstance(key, str) and self.env_dir(key) == path else path.name)
        last_used = 0.0
        for where in (path / RECORD_NAME, path):
            with contextlib.suppress(OSError):
                last_used = where.stat().st_mtime
                break
        return Entry(path.name, path, record, problem, last_used, tree_size(path) if sizes else None)

    def building(self, name: str) -> str | None:
        """Who is building the env *name* (a key or its directory name) right now, or ``None``."""
        lock = FileLock(self._lock_path(name), mode=0o600, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return _read_owner(self._lock_path(name).with_suffix(".owner"))
        lock.release()
        return None

    def leases(self) -> list[LeaseInfo]:
        """The leases of live processes; those of processes that ended are removed on the way."""
        live = []
        for path in sorted(self.sessions_dir.glob("*.json")):
            lock = FileLock(path.with_suffix(".lock"), mode=0o600, thread_local=False)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    data = json.loads(path.read_text(encoding="utf-8"))
                    live.append(
                        LeaseInfo(path.stem, int(data["pid"]), str(data["host"]), str(data["run_id"]), data["keys"])
                    )
                continue
            try:
                for stale in (path, path.with_suffix(".lock")):
                    with contextlib.suppress(OSError):
                        stale.unlink()
            finally:
                lock.release()
        return live

    def wait_for_maintenance(self, notify: Notify | None = None) -> None:
        """Return once no prune or clear is removing envs (waiting, and saying so, while one is)."""
        lock = FileLock(self._maintenance_path, mode=0o600, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if notify is not None:
                notify("waiting for another process to finish pruning the isoenv cache")
            lock.acquire()
        lock.release()

    def prune(
        self,
        *,
        max_age: float | None = None,
        max_size: int | None = None,
        keep: Collection[str] = (),
        unusable: bool = True,
        now: float | None = None,
    ) -> Pruned:
        """Remove envs that are *unusable* or unused for *max_age* days, then the least recently used.

        The second step goes on while the cache is over *max_size* bytes. Envs
        whose keys are in *keep* or in a live lease, and envs being built, stay.
        """
        now = time.time() if now is None else now

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

        return self._remove_entries(stale, over_size, keep=keep, sizes=max_size is not None)

    def clear(self, *, keep: Collection[str] = ()) -> Pruned:
        """Remove every env, except those in *keep*, in a live lease, or being built."""
        return self._remove_entries(lambda entry: "cleared", None, keep=keep, sizes=False)

    def _remove_entries(
        self,
        reason: Callable[[Entry], str | None],
        then: Callable[[list[Entry]], Iterator[tuple[Entry, str]]] | None,
        *,
        keep: Collection[str],
        sizes: bool,
    ) -> Pruned:
        pruned = Pruned()
        if not self.envs_dir.is_dir():
            return pruned
        moved: list[Path] = []
        with FileLock(self._maintenance_path, mode=0o600, thread_local=False):
            busy = {key[:KEY_LENGTH]: "used by this session" for key in keep}
            for lease in self.leases():
                for key in lease.keys:
                    busy.setdefault(key[:KEY_LENGTH], f"in use by {lease.who}")
            remaining = []
            for entry in self.entries(sizes=sizes):
                why = reason(entry)
                if why is None or not self._move_entry(entry, why, busy.get(entry.name), pruned, moved):
                    remaining.append(entry)
            # Sizes count what stays, busy entries included; only entries nobody holds go.
            for entry, why in then(remaining) if then is not None else ():
                self._move_entry(entry, why, busy.get(entry.name), pruned, moved)
        for path in [*moved, *self._trash_leftovers()]:
            _delete(path)
        return pruned

    def _move_entry(self, entry: Entry, why: str, user: str | None, pruned: Pruned, moved: list[Path]) -> bool:
        if user is not None:
            pruned.kept.append((entry, user))
            return False
        try:
            with self.lock(entry.name, what="removing it from the cache", timeout=0):
                if entry.size is None:
                    entry = replace(entry, size=tree_size(entry.path))
                target = _move_aside(entry.path, self.root / "trash")
                with contextlib.suppress(OSError):
                    self.log_path(entry.name).unlink()
        except CacheError:
            pruned.kept.append(
                (entry, f"being built by {_read_owner(self._lock_path(entry.name).with_suffix('.owner'))}")
            )
            return False
        if target is not None:  # else another process removed it first
            moved.append(target)
            pruned.removed.append((entry, why))
        return True

    def _trash_leftovers(self) -> list[Path]:
        """Whatever an interrupted removal left in the trash."""
        try:
            return list((self.root / "trash").iterdir())
        except OSError:
            return []


@dataclass(frozen=True)
class Entry:
    """One env directory in the cache, as listing and pruning see it."""

    name: str
    """The directory name: the first hex digits of the key."""
    path: Path
    record: Record | None
    """The completion record, or ``None`` when the env cannot be used."""
    problem: str | None
    """Why the env cannot be used, when it cannot."""
    last_used: float
    """When a session last used it (the record's mtime), as a timestamp."""
    size: int | None = None
    """Bytes on disk, when measured."""

    def _data(self, *keys: str) -> Any:
        value: Any = self.record.data if self.record is not None else {}
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    @property
    def description(self) -> str:
        return str(self._data("spec", "description") or "?")

    @property
    def python(self) -> str:
        implementation, version = self._data("interpreter", "implementation"), self._data("interpreter", "version")
        return f"{implementation} {str(version).split()[0]}" if implementation and version else "?"

    @property
    def installer(self) -> str:
        return str(self._data("installer") or "?")

    @property
    def created(self) -> float | None:
        created = self._data("created")
        return float(created) if isinstance(created, (int, float)) else None


@dataclass
class Pruned:
    """What a prune or clear did: the entries removed and the ones it had to keep, each with why."""

    removed: list[tuple[Entry, str]] = field(default_factory=list)
    kept: list[tuple[Entry, str]] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(entry.size or 0 for entry, _ in self.removed)


@dataclass(frozen=True)
class LeaseInfo:
    """A live process's lease, as another process reads it."""

    id: str
    pid: int
    host: str
    run_id: str
    keys: list[str]

    @property
    def who(self) -> str:
        return f"pid {self.pid} on {self.host}"


class Lease:
    """A process's claim on the envs it uses, so that no prune or clear removes them while it runs.

    ``sessions/<id>.lock`` is held as long as the lease lives (the OS lets go of it when the
    process dies) and ``sessions/<id>.json`` lists the keys. Pruning spares every key of a
    lease whose lock it cannot take.
    """

    def __init__(self, cache: Cache, run_id: str) -> None:
        self.cache = cache
        self.run_id = run_id
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.keys: set[str] = set()
        self._json = cache.sessions_dir / f"{self.id}.json"
        # Not thread-local: a lease taken in a worker thread is released by the main thread.
        self._lock = FileLock(cache.sessions_dir / f"{self.id}.lock", mode=0o600, thread_local=False)
        self._mutex = threading.Lock()

    def add(self, key: str, *, notify: Notify | None = None) -> None:
        """Claim *key* before its env is looked at; waits while a prune or clear is removing envs."""
        with self._mutex:
            if key in self.keys:
                return
            if not self._lock.is_locked:
                self._lock.acquire()
            self.keys.add(key)
            data = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "run_id": self.run_id,
                "since": time.time(),
                "keys": sorted(self.keys),
            }
            _write_atomic(self._json, json.dumps(data))
            self.cache.wait_for_maintenance(notify)

    def close(self) -> None:
        """Give up every claim (pruning may remove those envs from now on)."""
        with self._mutex:
            if self._lock.is_locked:
                for path in (self._json, Path(self._lock.lock_file)):
                    with contextlib.suppress(OSError):
                        path.unlink()
                self._lock.release()
            self.keys.clear()


def format_size(size: float) -> str:
    """Bytes for people: ``512 B``, ``12.3 MB`` (powers of 1000, as ``isoenv_max_size``'s ``MB``)."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def format_age(seconds: float) -> str:
    """How long ago, roughly: ``just now``, ``5 min ago``, ``3 h ago``, ``12 days ago``."""
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} day{'s' if seconds >= 2 * 86400 else ''} ago"


def tree_size(path: Path) -> int:
    """Bytes used by the files under *path*, a file with several hard links counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                info = Path(dirpath, name).lstat()
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def remove_tree(path: Path, trash: Path) -> None:
    """Move *path* into *trash* (an atomic rename on the same filesystem), then delete it."""
    target = _move_aside(path, trash)
    if target is not None:
        _delete(target)


def _move_aside(path: Path, trash: Path) -> Path | None:
    """Rename *path* into *trash*, so no reader ever sees it half-deleted; where it is now, or ``None``."""
    if not path.exists() and not path.is_symlink():
        return None
    target = trash / f"{path.name}-{uuid.uuid4().hex[:8]}"
    try:
        path.rename(target)
    except OSError:
        target = path
    return target


def _delete(target: Path) -> None:
    if target.is_symlink():
        target.unlink()
    else:
        shutil.rmtree(target, ignore_errors=True)


def site_packages_entries(site_packages: Path) -> list[str]:
    """The names in a site-packages folder that installs and uninstalls change (bytecode caches left out)."""
    try:
        return sorted(p.name for p in site_packages.iterdir() if p.name != "__pycache__")
    except OSError:
        return []


def _file_signature(path: Path) -> list[int] | None:
    """What changes when a file is replaced (size and mtime), or ``None`` if it is gone."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


#: How long a waiter looks for a new lock holder's owner file (written just after it locks) before
#: announcing the wait without naming the holder. The waiter waits for the build anyway, and stops
#: looking as soon as the lock is free, so this is generous: a loaded machine can stall the holder.
OWNER_PATIENCE = 5.0


def _owner(owner_path: Path) -> str | None:
    """Who holds a lock, from its owner file, or ``None`` if there is none (yet, or any more)."""
    try:
        owner = json.loads(owner_path.read_text(encoding="utf-8"))
        since = time.time() - float(owner["since"])
        who = f"pid {owner['pid']} on {owner['host']}"
        who = f"xdist worker {owner['worker']} ({who})" if owner.get("worker") else who
        return f"{who} for {since:.0f}s"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_owner(owner_path: Path) -> str:
    """Who holds a lock, for a message."""
    return _owner(owner_path) or "another process"


def _holder_unless_free(lock: FileLock, owner_path: Path) -> str | None:
    """Who holds *lock*, giving a new holder :data:`OWNER_PATIENCE` seconds to write its owner file;
    ``None`` once we hold *lock* ourselves, as a holder may finish (and remove its file) while we look."""
    deadline = time.monotonic() + OWNER_PATIENCE
    while (holder := _owner(owner_path)) is None:
        try:
            lock.acquire(timeout=0)
            return None
        except Timeout:
            if time.monotonic() >= deadline:
                return "another process"
            time.sleep(0.02)
    return holder


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _make_private_dir(path: Path) -> None:
    if not path.is_symlink():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _check_owned(path: Path, *, mode: bool = True) -> None:
    """Refuse a cache path that someone else could swap (a symlink) or put code in (theirs, or writable).

    *mode* also refuses group- or world-writable folders; envs are left out of that,
    as virtualenv creates them with the user's umask inside the private root.
    """
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise CacheError(
            f"the isoenv cache path {path} is a symlink; refusing it (another user could redirect it). "
            "Point --isoenv-cache-dir at a real directory of your own, or remove the link"
        )
    if sys.platform == "win32":
        return
    if info.st_uid != os.getuid():
        raise CacheError(
            f"the isoenv cache path {path} is owned by uid {info.st_uid}, not by you (uid {os.getuid()}); "
            "refusing to run code from it. Point --isoenv-cache-dir at a directory of your own"
        )
    if mode and stat.S_IMODE(info.st_mode) & 0o022:
        raise CacheError(
            f"the isoenv cache path {path} is writable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"refusing to run code from it. Fix it with: chmod go-w {path}"
        )
