"""The env cache: its layout on disk, per-key locks, completion records and reuse checks.

Layout of a cache root::

    CACHEDIR.TAG, .gitignore
    envs/<key>/                   one env, built in place (venvs hard-code their location)
    envs/<key>/isoenv-record.json the completion record, written last; no record, no env
    locks/<key>.lock              held while building <key>; <key>.owner says who holds it
    logs/<key>.log                the installer output of the last build of <key>
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
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
            for sub in ("envs", "locks", "logs", "trash"):
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
                if notify is not None:
                    # The holder writes its owner file just after locking: give it a moment to appear.
                    holder = _read_owner(owner_path, patience=1.0)
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


def remove_tree(path: Path, trash: Path) -> None:
    """Move *path* into *trash* (an atomic rename on the same filesystem), then delete it."""
    if not path.exists() and not path.is_symlink():
        return
    target = trash / f"{path.name}-{uuid.uuid4().hex[:8]}"
    try:
        path.rename(target)
    except OSError:
        target = path
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


def _read_owner(owner_path: Path, *, patience: float = 0.0) -> str:
    """Who holds a lock, from its owner file; waits up to *patience* seconds for a new holder to write it."""
    deadline = time.monotonic() + patience
    while True:
        try:
            owner = json.loads(owner_path.read_text(encoding="utf-8"))
            since = time.time() - float(owner["since"])
            who = f"pid {owner['pid']} on {owner['host']}"
            who = f"xdist worker {owner['worker']} ({who})" if owner.get("worker") else who
            return f"{who} for {since:.0f}s"
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() >= deadline:
                return "another process"
            time.sleep(0.02)


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
