"""The env store: its layout on disk, ownership of its folder, per-key locks and generations of each env.

Layout of a cache root::

    CACHEDIR.TAG, .gitignore      written with the skeleton; the tag marks the folder as pytest-isoenv's own
    envs/<name>/                  one env (name: the key's first hex digits), in one or more generations
    envs/<name>/current           the generation handed out, by name; replaced atomically to switch
    envs/<name>/<n>/              generation n: a venv built in place (venvs hard-code their location),
                                  with isoenv-record.json written last (no record, no env)
    locks/<name>.lock             held while building or switching <name>; <name>.owner says who holds it
    locks/maintenance.lock        held while pruning or clearing moves envs aside
    logs/<name>.log               the installer output of the last build of <name>
    sessions/<id>.lock, <id>.json a live process's lease (see leases.py)
    hashes/                       content hashes of input files, by path and stat (see keys.py)
    virtualenv/, py-info/, uv/    virtualenv's app-data, what interpreter discovery learned, uv's cache
    trash/                        envs being removed (moved here first, so removal is atomic)

A rebuild never touches a generation another process may be running in: it builds
the next generation beside it and switches ``current`` to it. Old generations go
when no live lease holds them (see :mod:`pytest_isoenv.leases`).

The cache writes into and deletes from nothing but a folder it created and tagged,
and there only names it could have made; anything else is refused, never adopted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from ._fs import check_not_link, check_owned, delete, make_private_dir, move_aside, tree_size, write_atomic
from .errors import BuildError, CacheError, LockTimeout
from .record import RECORD_NAME, Built, Record, RecordProblem

KEY_LENGTH = 20  # hex digits of the key used for directory names: 80 bits, short paths for Windows
CURRENT_NAME = "current"

#: The names the cache makes, and so the only ones it ever removes.
ENTRY_NAME = re.compile(rf"[0-9a-f]{{{KEY_LENGTH}}}")
GENERATION_NAME = re.compile(r"[0-9]+")
TRASH_NAME = re.compile(r"[0-9a-zA-Z._-]+-[0-9a-f]{8}")

SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
CACHEDIR_TAG = (
    f"{SIGNATURE}\n"
    "# This file is a cache directory tag created by pytest-isoenv.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/spec.html\n"
)
SUBFOLDERS = ("envs", "locks", "logs", "trash", "sessions", "hashes")

#: Told, as a sentence, what a waiting process waits for (the terminal, or a warning).
Notify = Callable[[str], None]


def cache_write_error(root: Path, exc: OSError, doing: str) -> str:
    """A one-line account of a write into the cache that failed, with what to do about it."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        fix = "free some space, run pytest --isoenv-prune, or point --isoenv-cache-dir at another disk"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "the cache is read-only: envs already built are still used; make it writable to record more"
    else:
        fix = "check the cache dir, or point --isoenv-cache-dir at another directory"
    return f"cannot {doing} in the isoenv cache {root} ({reason}): {fix}"


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

    @property
    def hashes_dir(self) -> Path:
        return self.root / "hashes"

    @property
    def sessions_dir(self) -> Path:
        return self.root / "sessions"

    @property
    def trash_dir(self) -> Path:
        return self.root / "trash"

    @property
    def maintenance_lock_path(self) -> Path:
        return self.root / "locks" / "maintenance.lock"

    def entry_dir(self, key: str) -> Path:
        """The folder of every generation of the env of *key* (a key or an entry name)."""
        return self.envs_dir / key[:KEY_LENGTH]

    def log_path(self, key: str) -> Path:
        return self.root / "logs" / f"{key[:KEY_LENGTH]}.log"

    def lock_path(self, key: str) -> Path:
        return self.root / "locks" / f"{key[:KEY_LENGTH]}.lock"

    # -- ownership ---------------------------------------------------------------------------------------

    def is_ours(self) -> bool:
        """Whether the root exists and carries pytest-isoenv's tag (so the cache may write and delete in it)."""
        try:
            text = (self.root / "CACHEDIR.TAG").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        return text.startswith(SIGNATURE) and "pytest-isoenv" in text

    def check(self) -> bool:
        """Whether the cache exists, refusing a root that is unsafe or not pytest-isoenv's. Writes nothing.

        An empty folder is no cache yet (:meth:`ensure` may make one there).
        """
        try:
            check_owned(self.root)
        except FileNotFoundError:
            return False
        if not self.is_ours():
            if any(self.root.iterdir()):
                self._refuse_foreign()
            return False
        for sub in SUBFOLDERS:
            with contextlib.suppress(FileNotFoundError):
                check_owned(self.root / sub)
        return True

    def _refuse_foreign(self) -> None:
        raise CacheError(
            f"the isoenv cache dir {self.root} is not empty and was not made by pytest-isoenv (it has no "
            "CACHEDIR.TAG of pytest-isoenv's); refusing to write into it or delete anything from it. Point "
            "--isoenv-cache-dir (or PYTEST_ISOENV_CACHE_DIR) at a new or empty directory, or at an existing "
            "pytest-isoenv cache"
        )

    def ensure(self) -> None:
        """Create the root (private to the user) with its tag and folders, refusing places that are not safe.

        A new root is made whole under a temporary name and renamed into place, so a
        folder without the tag is never one the cache made. An existing folder is
        used only if it carries the tag, or is empty (it is tagged first, then filled).
        """
        try:
            if not self.check():
                self._create()
                check_owned(self.root)
            if not self.is_ours():
                if any(self.root.iterdir()):
                    self._refuse_foreign()
                write_atomic(self.root / "CACHEDIR.TAG", CACHEDIR_TAG)
            gitignore = self.root / ".gitignore"
            if not gitignore.exists() and not gitignore.is_symlink():
                write_atomic(gitignore, "# created by pytest-isoenv\n*\n")
            for sub in SUBFOLDERS:
                if not (self.root / sub).is_dir():
                    make_private_dir(self.root / sub)
                check_owned(self.root / sub)
        except OSError as exc:
            raise CacheError(
                f"cannot use the isoenv cache dir {self.root}: {exc.strerror or exc}. "
                "Point --isoenv-cache-dir (or PYTEST_ISOENV_CACHE_DIR) at a writable directory"
            ) from exc

    def _create(self) -> None:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        skeleton = self.root.with_name(f".{self.root.name}.{uuid.uuid4().hex[:8]}.new")
        try:
            skeleton.mkdir(mode=0o700)
            write_atomic(skeleton / "CACHEDIR.TAG", CACHEDIR_TAG)
            write_atomic(skeleton / ".gitignore", "# created by pytest-isoenv\n*\n")
            for sub in SUBFOLDERS:
                (skeleton / sub).mkdir(mode=0o700)
            try:
                skeleton.rename(self.root)
            except OSError:
                if not self.root.is_dir():  # else another process made it first: use theirs
                    raise
        finally:
            if skeleton.exists():
                delete(skeleton)

    # -- records and generations -------------------------------------------------------------------------

    def current(self, key: str) -> Path | None:
        """The folder of *key*'s current generation, or ``None`` if no build of it was ever completed."""
        entry = self.entry_dir(key)
        try:
            check_owned(entry, mode=False)
            name = (entry / CURRENT_NAME).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return entry / name if GENERATION_NAME.fullmatch(name) else None

    def read_record(self, key: str) -> tuple[Record | None, str | None]:
        """The usable record of *key*, or ``None`` and why the entry cannot be used (``None`` if absent)."""
        generation = self.current(key)
        if generation is None:
            entry = self.entry_dir(key)
            return None, ("it has no completion record (an interrupted build)" if entry.exists() else None)
        try:
            check_owned(generation, mode=False)
            record = Record.load(generation, key)
        except FileNotFoundError:
            return None, f"its current generation {generation.name} is missing"
        except RecordProblem as exc:
            return None, str(exc)
        problem = record.problem()
        return (None, problem) if problem else (record, None)

    def _next_generation(self, key: str) -> Path:
        entry = self.entry_dir(key)
        make_private_dir(entry)
        check_owned(entry, mode=False)
        # The lowest free number: a broken generation nobody holds was removed just before, and its
        # successor takes its path, so env objects handed out for it earlier in this process work again.
        taken = {p.name for p in entry.iterdir()}
        number = 1
        while str(number) in taken:
            number += 1
        return entry / str(number)

    def generations(self, key: str) -> list[Path]:
        """Every generation folder of *key*, current or not."""
        try:
            return sorted(
                (p for p in self.entry_dir(key).iterdir() if GENERATION_NAME.fullmatch(p.name)),
                key=lambda p: int(p.name),
            )
        except OSError:
            return []

    @contextlib.contextmanager
    def lock(self, key: str, *, what: str, notify: Notify | None = None, timeout: float = -1) -> Iterator[None]:
        """Hold the build lock of *key*, saying what we wait for and who holds it when it is taken."""
        lock_path = self.lock_path(key)
        owner_path = lock_path.with_suffix(".owner")
        # Recent filelock opens with O_NOFOLLOW, older ones follow links: refuse a link either way.
        check_not_link(lock_path, "lock file")
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
                f"{read_owner(owner_path)} (lock file {lock_path}). Raise isoenv_lock_timeout, or end "
                "that process if it is stuck"
            ) from None
        except OSError as exc:
            raise CacheError(cache_write_error(self.root, exc, f"lock {lock_path.name}")) from exc
        try:
            owner = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "worker": self.worker,
                "what": what,
                "since": time.time(),
            }
            with contextlib.suppress(OSError):
                write_atomic(owner_path, json.dumps(owner))
            yield
        finally:
            with contextlib.suppress(OSError):
                owner_path.unlink()
            lock.release()

    def get_or_build(
        self,
        key: str,
        build: Callable[[Path, Path], Built],
        *,
        what: str,
        run_id: str,
        stale: Callable[[Record], bool] | None = None,
        notify: Notify | None = None,
        warn: Notify | None = None,
        lock_timeout: float = -1,
        held: Callable[[str], set[str]] | None = None,
    ) -> tuple[Record, bool]:
        """The env of *key*: reused when a usable one exists, else built by ``build(generation_dir, log)``.

        Check, lock, check again: the lock is taken only when a build looks
        needed, and whoever held it may have built the env meanwhile. A record
        for which *stale* says true is rebuilt (``--isoenv-rebuild``). A build
        makes a new generation beside the current one and switches to it only
        once complete; a failed or interrupted build leaves nothing. Returns the
        record and whether this call built it. *held* tells which generations of
        a key live processes hold, so the ones nobody holds can go.
        """

        def usable() -> tuple[Record | None, str | None]:
            record, problem = self.read_record(key)
            if record is not None and stale is not None and stale(record):
                return None, None
            return record, problem

        record, _ = usable()
        if record is not None:
            self.touch(record)
            return record, False
        with self.lock(key, what=what, notify=notify, timeout=lock_timeout):
            record, problem = usable()
            if record is not None:
                self.touch(record)
                return record, False
            # Only under the lock: before it, a missing record may be a build in progress.
            if problem is not None:
                if warn is not None:
                    warn(f"rebuilding {what} [{key[:12]}]: {problem}")
                # A broken env is no fallback: it goes now, unless another process still runs in it.
                self.sweep(key, held(key) if held is not None else set(), current_too=True)
            log = self.log_path(key)
            try:
                check_not_link(log, "build log")
                generation = self._next_generation(key)
            except OSError as exc:
                raise CacheError(cache_write_error(self.root, exc, f"start building {what}")) from exc
            try:
                record = Record.complete(key, generation, build(generation, log), run_id)
                record.dump()
                write_atomic(self.entry_dir(key) / CURRENT_NAME, generation.name)
            except OSError as exc:
                # A full disk or a vanished folder: the same clean failure as an installer's.
                self._discard(generation)
                raise BuildError(
                    f"building {what} failed: {cache_write_error(self.root, exc, 'build')}", log=log
                ) from exc
            except BaseException:
                self._discard(generation)
                raise
            self.sweep(key, held(key) if held is not None else set())
        return record, True

    def touch(self, record: Record) -> None:
        """Record that *record*'s env was used now (the record's mtime; the env itself is never modified)."""
        with contextlib.suppress(OSError):
            os.utime(record.path / RECORD_NAME)

    def sweep(self, key: str, held: set[str], *, current_too: bool = False) -> list[Path]:
        """Remove the generations of *key* that are not current and not in *held*; call it under the key's lock.

        *held* names the generations live processes hold (``"*"``: all of them).
        With *current_too*, the current one goes too if nobody holds it (it is broken).
        """
        if "*" in held:
            return []
        current = self.current(key)
        if current_too and current is not None and current.name not in held:
            with contextlib.suppress(OSError):
                (self.entry_dir(key) / CURRENT_NAME).unlink()
            current = None
        removed = []
        for generation in self.generations(key):
            if generation != current and generation.name not in held:
                self._discard(generation)
                removed.append(generation)
        return removed

    def _discard(self, path: Path) -> None:
        """Remove *path* from the cache: first moved aside, so no reader ever sees it half-deleted.

        An entry left with no generation goes too (``rmdir`` only removes an empty folder).
        """
        with contextlib.suppress(OSError):
            target = move_aside(path, self.trash_dir)
            if target is not None:
                delete(target)
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def remove_entry(self, name: str) -> Path | None:
        """Move the entry *name* (every generation) into the trash; where it is now, or ``None`` if it was gone.

        Only a name the cache could have made is touched; a link is moved as a link, never followed.
        """
        if not ENTRY_NAME.fullmatch(name):
            raise CacheError(f"refusing to remove {self.envs_dir / name}: not a name pytest-isoenv makes")
        target = move_aside(self.envs_dir / name, self.trash_dir)
        with contextlib.suppress(OSError):
            if not self.log_path(name).is_symlink():
                self.log_path(name).unlink()
        return target

    def trash_leftovers(self) -> list[Path]:
        """Whatever an interrupted removal left in the trash (only names the cache makes there)."""
        try:
            return [p for p in self.trash_dir.iterdir() if TRASH_NAME.fullmatch(p.name)]
        except OSError:
            return []

    # -- listing -----------------------------------------------------------------------------------------

    def entries(self, *, sizes: bool = True) -> list[Entry]:
        """Every env entry in the cache, least recently used first; *sizes* measures each one.

        Folders and links whose names the cache does not make are listed as foreign, and never removed.
        """
        try:
            paths = [p for p in self.envs_dir.iterdir() if not p.name.startswith(".")]
        except FileNotFoundError:
            return []
        return sorted((self._entry(path, sizes) for path in paths), key=lambda entry: entry.last_used)

    def _entry(self, path: Path, sizes: bool) -> Entry:
        if not ENTRY_NAME.fullmatch(path.name):
            return Entry(path.name, path, None, "not made by pytest-isoenv (left alone)", 0.0, None, foreign=True)
        try:
            check_owned(path, mode=False)
        except CacheError as exc:
            return Entry(path.name, path, None, str(exc).split(";")[0], 0.0, None)
        except FileNotFoundError:
            return Entry(path.name, path, None, "removed meanwhile", 0.0, None)
        generation = self.current(path.name)
        key: object = None
        if generation is not None:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                key = json.loads((generation / RECORD_NAME).read_text(encoding="utf-8"))["key"]
        # Without a full key, read_record explains what is wrong with the entry.
        record, problem = self.read_record(key if isinstance(key, str) and key.startswith(path.name) else path.name)
        last_used = 0.0
        for where in ((generation / RECORD_NAME) if generation else path, path):
            with contextlib.suppress(OSError):
                last_used = where.stat().st_mtime
                break
        return Entry(path.name, path, record, problem, last_used, tree_size(path) if sizes else None)

    def building(self, name: str) -> str | None:
        """Who is building the env *name* (a key or its directory name) right now, or ``None``."""
        if self.lock_path(name).is_symlink():
            return None
        lock = FileLock(self.lock_path(name), mode=0o600, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return read_owner(self.lock_path(name).with_suffix(".owner"))
        except OSError:  # a read-only cache: nobody can be building in it
            return None
        lock.release()
        return None


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


def read_owner(owner_path: Path) -> str:
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
