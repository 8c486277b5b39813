"""Per-key build locks: taking one, and saying who holds it.

``locks/<name>.lock`` is held while the env ``<name>`` is built, switched or
removed. ``locks/<name>.owner`` beside it says who holds it (pid, host, xdist
worker, what for, since when): written just after the lock is taken, removed
just before it is released, and only ever read for messages. The lock decides.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_isoenv.errors import LockTimeout
from pytest_isoenv.store.fs import check_not_link, write_atomic
from pytest_isoenv.text import LineSink

#: How long a waiter looks for a new lock holder's owner file (written just after it locks) before
#: announcing the wait without naming the holder. The waiter waits for the build anyway, and stops
#: looking as soon as the lock is free, so this is generous: a loaded machine can stall the holder.
OWNER_PATIENCE = 5.0


def acquire(lock_path: Path, *, key: str, what: str, notify: LineSink | None = None, timeout: float = -1) -> FileLock:
    """Take the lock at *lock_path*, telling *notify* what we wait for and who holds it when it is taken.

    :class:`LockTimeout` after *timeout* seconds (``-1``: no limit); an :class:`OSError` of the lock file as it is.
    """
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
                holder = _holder_unless_free(lock, _owner_path(lock_path))
                if holder is not None:  # else it finished while we looked: there is no wait to announce
                    notify(f"waiting for {what} [{key[:12]}], being built by {holder}")
                    lock.acquire(timeout=timeout)
    except Timeout:
        raise LockTimeout(
            f"gave up waiting {timeout:g}s for the lock of {what} [{key[:12]}], held by "
            f"{read_owner(lock_path)} (lock file {lock_path}). Raise isoenv_lock_timeout, or end "
            "that process if it is stuck"
        ) from None
    return lock


@contextlib.contextmanager
def owned(lock: FileLock, *, what: str, worker: str | None) -> Iterator[None]:
    """Hold the taken *lock* with its owner file saying who we are, and release it at the end."""
    owner_path = _owner_path(Path(lock.lock_file))
    try:
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "worker": worker, "what": what, "since": time.time()}
        with contextlib.suppress(OSError):
            write_atomic(owner_path, json.dumps(owner))
        yield
    finally:
        with contextlib.suppress(OSError):
            owner_path.unlink()
        lock.release()


def holder(lock_path: Path) -> str | None:
    """Who holds the lock at *lock_path* right now, or ``None`` if nobody does."""
    if lock_path.is_symlink():
        return None
    lock = FileLock(lock_path, mode=0o600, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return read_owner(lock_path)
    except OSError:  # a read-only cache: nobody can be building in it
        return None
    lock.release()
    return None


def read_owner(lock_path: Path) -> str:
    """Who holds the lock at *lock_path*, for a message."""
    return _owner(_owner_path(lock_path)) or "another process"


def _owner_path(lock_path: Path) -> Path:
    return lock_path.with_suffix(".owner")


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
