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
    seeds/                        compiled images of pip, one per interpreter, that every env links to
    trash/                        envs being removed (moved here first, so removal is atomic)

A rebuild never touches a generation another process may be running in: it builds
the next generation beside it and switches ``current`` to it. Old generations go
when no live lease holds them (see :mod:`pytest_isoenv.store.leases`).

The cache writes into and deletes from nothing but a folder it created and tagged,
and there only names it could have made; anything else is refused, never adopted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, Protocol

from pytest_isoenv.errors import BuildError, CacheError
from pytest_isoenv.store import locks
from pytest_isoenv.store.fs import check_not_link, check_owned, delete, make_private_dir, move_aside, write_atomic
from pytest_isoenv.store.record import RECORD_NAME, Built, Record, RecordProblem
from pytest_isoenv.text import LineSink

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
#: The folders of a cache root (see the layout above).
Folder = Literal["envs", "locks", "logs", "trash", "sessions", "hashes", "virtualenv", "py-info", "uv", "seeds"]
#: The folders made with the root; virtualenv, interpreter discovery and uv make theirs as they need them.
SKELETON: tuple[Folder, ...] = ("envs", "locks", "logs", "trash", "sessions", "hashes")


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


class EnvBuild(Protocol):
    """One env asked of :meth:`Cache.get_or_build`: which it is, when to rebuild it, how to build it, whom to tell.

    The layer above implements it (it knows interpreters, installers and the
    terminal); the cache knows none of them.
    """

    @property
    def key(self) -> str:
        """The env's cache key."""

    @property
    def what(self) -> str:
        """The env as messages and lock owner files name it, such as ``env (alpha<2)``."""

    @property
    def run_id(self) -> str:
        """The run that a record of a new build says built it."""

    @property
    def lock_timeout(self) -> float:
        """Seconds to wait for another process's build of the env: ``-1`` as long as it takes, ``0`` not at all."""

    @property
    def notify(self) -> LineSink | None:
        """Told what the call waits for, and for whom; ``None``: it waits without a word."""

    @property
    def warn(self) -> LineSink | None:
        """Told that a broken env is rebuilt, and why."""

    def stale(self, record: Record) -> bool:
        """Whether the usable env of *record* is rebuilt all the same (``--isoenv-rebuild``)."""

    def held(self) -> set[str]:
        """The generations of the env that live processes hold (``"*"``: all of them): no build removes those."""

    def build(self, generation: Path, log: Path) -> Built:
        """Make the env in the new folder *generation*, its installers' output in *log*; what its record says."""


class Cache:
    """A cache root shared by every session and process that points at it."""

    def __init__(self, root: Path, *, worker: str | None = None) -> None:
        self.root = root
        #: The xdist worker id of this process, if it is one: named to processes that wait for our builds.
        self.worker = worker

    def folder(self, name: Folder) -> Path:
        """The folder *name* of the cache root."""
        return self.root / name

    @property
    def maintenance_lock_path(self) -> Path:
        """Held while a prune or clear moves envs aside."""
        return self.folder("locks") / "maintenance.lock"

    def entry_dir(self, key: str) -> Path:
        """The folder of every generation of the env of *key* (a key or an entry name)."""
        return self.folder("envs") / key[:KEY_LENGTH]

    def log_path(self, key: str) -> Path:
        return self.folder("logs") / f"{key[:KEY_LENGTH]}.log"

    def lock_path(self, key: str) -> Path:
        return self.folder("locks") / f"{key[:KEY_LENGTH]}.lock"

    # -- ownership ---------------------------------------------------------------------------------------

    def is_ours(self) -> bool:
        """Whether the root exists and carries pytest-isoenv's tag (so the cache may write and delete in it)."""
        try:
            text = (self.root / "CACHEDIR.TAG").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        return text.startswith(SIGNATURE) and "pytest-isoenv" in text

    def exists(self) -> bool:
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
        for sub in SKELETON:
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
            if not self.exists():
                self._create()
                check_owned(self.root)
            if not self.is_ours():
                if any(self.root.iterdir()):
                    self._refuse_foreign()
                write_atomic(self.root / "CACHEDIR.TAG", CACHEDIR_TAG)
            gitignore = self.root / ".gitignore"
            if not gitignore.exists() and not gitignore.is_symlink():
                write_atomic(gitignore, "# created by pytest-isoenv\n*\n")
            for sub in SKELETON:
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
            for sub in SKELETON:
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

    def read_record(self, key: str, *, name_only: bool = False) -> tuple[Record | None, str | None]:
        """The usable record of *key*, or ``None`` and why the entry cannot be used (``None`` if absent).

        With *name_only*, *key* is an entry's name (the first digits of a key), as
        a listing knows it: a record of any key that starts with it belongs.
        """
        generation = self.current(key)
        if generation is None:
            entry = self.entry_dir(key)
            return None, ("it has no completion record (an interrupted build)" if entry.exists() else None)
        try:
            check_owned(generation, mode=False)
            record = Record.load(generation, key, name_only=name_only)
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
    def lock(self, key: str, *, what: str, notify: LineSink | None = None, timeout: float = -1) -> Iterator[None]:
        """Hold the build lock of *key*, saying what we wait for and who holds it when it is taken."""
        lock_path = self.lock_path(key)
        try:
            lock = locks.acquire(lock_path, key=key, what=what, notify=notify, timeout=timeout)
        except OSError as exc:
            raise CacheError(cache_write_error(self.root, exc, f"lock {lock_path.name}")) from exc
        with locks.owned(lock, what=what, worker=self.worker):
            yield

    def get_or_build(self, env: EnvBuild) -> tuple[Record, bool]:
        """The env *env* asks for: reused when a usable one exists, else built by ``env.build(generation_dir, log)``.

        Check, lock, check again: the lock is taken only when a build looks
        needed, and whoever held it may have built the env meanwhile. A record
        for which ``env.stale`` says true is rebuilt (``--isoenv-rebuild``). A build
        makes a new generation beside the current one and switches to it only
        once complete; a failed or interrupted build leaves nothing. Returns the
        record and whether this call built it. ``env.held`` tells which
        generations live processes hold, so the ones nobody holds can go.
        """
        key, what = env.key, env.what

        def usable() -> tuple[Record | None, str | None]:
            record, problem = self.read_record(key)
            if record is not None and env.stale(record):
                return None, None
            return record, problem

        record, _ = usable()
        if record is not None:
            self.touch(record)
            return record, False
        with self.lock(key, what=what, notify=env.notify, timeout=env.lock_timeout):
            record, problem = usable()
            if record is not None:
                self.touch(record)
                return record, False
            # Only under the lock: before it, a missing record may be a build in progress.
            if problem is not None:
                if env.warn is not None:
                    env.warn(f"rebuilding {what} [{key[:12]}]: {problem}")
                # A broken env is no fallback: it goes now, unless another process still runs in it.
                self.sweep(key, env.held(), current_too=True)
            log = self.log_path(key)
            try:
                check_not_link(log, "build log")
                generation = self._next_generation(key)
            except OSError as exc:
                raise CacheError(cache_write_error(self.root, exc, f"start building {what}")) from exc
            try:
                record = Record.complete(key, generation, env.build(generation, log), env.run_id)
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
            self.sweep(key, env.held())
        return record, True

    def touch(self, record: Record) -> None:
        """Record that *record*'s env was used now (the record's mtime; the env itself is never modified)."""
        now = time.time()  # the clock of Record.created (a file system's own may lag it)
        with contextlib.suppress(OSError):
            os.utime(record.path / RECORD_NAME, (now, now))

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
            target = move_aside(path, self.folder("trash"))
            if target is not None:
                delete(target)
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def remove_entry(self, name: str) -> Path | None:
        """Move the entry *name* (every generation) into the trash; where it is now, or ``None`` if it was gone.

        Only a name the cache could have made is touched; a link is moved as a link, never followed.
        """
        if not ENTRY_NAME.fullmatch(name):
            raise CacheError(f"refusing to remove {self.entry_dir(name)}: not a name pytest-isoenv makes")
        target = move_aside(self.entry_dir(name), self.folder("trash"))
        with contextlib.suppress(OSError):
            if not self.log_path(name).is_symlink():
                self.log_path(name).unlink()
        return target

    def trash_leftovers(self) -> list[Path]:
        """Whatever an interrupted removal left in the trash (only names the cache makes there)."""
        try:
            return [p for p in self.folder("trash").iterdir() if TRASH_NAME.fullmatch(p.name)]
        except OSError:
            return []

    def building(self, name: str) -> str | None:
        """Who is building the env *name* (a key or its directory name) right now, or ``None``."""
        return locks.holder(self.lock_path(name))

    def builders(self) -> dict[str, str]:
        """Who is building which env right now, by entry name, for a listing of every env.

        One listing of ``locks/``: only a lock whose owner file is there is tried (a
        holder writes it just after taking the lock and removes it just before letting
        go), so a cache of many envs is not a lock per env. A build that has just
        taken its lock, or could not write its owner file, may be missed: the listing
        is a view, and whatever removes envs takes each one's lock anyway.
        """
        try:
            names = [p.name[: -len(".owner")] for p in self.folder("locks").iterdir() if p.name.endswith(".owner")]
        except OSError:
            return {}
        found = {}
        for name in names:
            who = self.building(name) if ENTRY_NAME.fullmatch(name) else None
            if who is not None:
                found[name] = who
        return found
