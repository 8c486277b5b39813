"""Hold a build lock of an isoenv cache in a process of its own until stdin closes (run as a script).

Usage: ``python lock_holder.py CACHE_DIR KEY WHAT LIMIT [--no-owner]``; prints ``locked``
once it holds the lock. With ``--no-owner`` it takes the lock file alone and names
no holder. Tests start it through ``helpers.hold_lock``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

from filelock import FileLock

from pytest_isoenv.store.cache import Cache


def main() -> None:
    root, key, what, limit, *flags = sys.argv[1:]
    threading.Timer(float(limit), os._exit, [3]).start()  # never outlive a test that failed to release us
    cache = Cache(Path(root))
    cache.ensure()
    lock: contextlib.AbstractContextManager[object]
    lock = FileLock(cache.lock_path(key)) if "--no-owner" in flags else cache.lock(key, what=what)
    with lock:
        print("locked", flush=True)
        sys.stdin.read()
    os._exit(0)  # at once: the timer thread would keep us alive


if __name__ == "__main__":
    main()
