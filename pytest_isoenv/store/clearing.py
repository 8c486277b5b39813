"""Clearing the cache: every env nobody uses, then the folders installers keep inside it, when nobody can be reading them.

Removal itself is :func:`~pytest_isoenv.store.leases.remove_entries`, as pruning's is:
under the maintenance lock, sparing what live leases hold and what is being built.
"""

from __future__ import annotations

from pathlib import Path

from pytest_isoenv.errors import CacheError
from pytest_isoenv.store.cache import ENTRY_NAME, Cache, Folder
from pytest_isoenv.store.fs import check_owned, delete_all, move_aside, tree_size
from pytest_isoenv.store.leases import Pruned, live_leases, maintenance_held, remove_entries
from pytest_isoenv.store.locks import holder

#: The folders of the cache root that installers and interpreter discovery keep their data in, with what
#: each holds: :func:`clear` frees them too, when no live process can be using them. Each is made again
#: when needed.
DATA_FOLDERS: tuple[tuple[Folder, str], ...] = (
    ("uv", "uv's cache"),
    ("virtualenv", "virtualenv's app-data (the seed wheels pip's envs start from)"),
    ("py-info", "what interpreter discovery learned"),
    ("hashes", "the content hashes of input files"),
    ("seeds", "the pip images envs link to"),
)


def clear(cache: Cache) -> Pruned:
    """Remove every env, except those in a live lease or being built; then the installers' folders, if nothing is.

    uv's cache, virtualenv's app-data, what interpreter discovery learned and
    the content hashes go only when no live process holds a lease and no env
    is being built: a build in progress may be reading any of them.
    """
    pruned = remove_entries(cache, lambda entry: "cleared", None, keep=())
    if cache.is_ours():  # never remove from a folder the cache did not make
        _clear_folders(cache, pruned)
    return pruned


def _clear_folders(cache: Cache, pruned: Pruned) -> None:
    moved: list[Path] = []
    with maintenance_held(cache, "clear"):
        leases = live_leases(cache)
        busy = f"in use by {leases[0].who}" if leases else _building(cache)
        for name, what in DATA_FOLDERS:
            path = cache.folder(name)
            if not path.exists() and not path.is_symlink():
                continue
            if busy is not None:
                pruned.kept_folders.append((name, what, busy))
                continue
            if name == "seeds" and _entries_left(cache):
                pruned.kept_folders.append((name, what, "envs left in the cache link to it"))
                continue
            try:
                check_owned(path, mode=False)
            except (CacheError, OSError) as exc:
                pruned.kept_folders.append((name, what, str(exc).split(";")[0]))
                continue
            size = tree_size(path)
            target = move_aside(path, cache.folder("trash"))
            if target is not None and target != path:  # a link is moved as a link: what it points to stays
                moved.append(target)
                pruned.folders.append((name, what, size))
    delete_all(moved)


def _entries_left(cache: Cache) -> bool:
    """Whether any env the cache made is still in it."""
    try:
        return any(ENTRY_NAME.fullmatch(p.name) for p in cache.folder("envs").iterdir())
    except OSError:
        return False


def _building(cache: Cache) -> str | None:
    """Who is building an env in *cache* right now, in words, or ``None``."""
    try:
        lock_paths = sorted(cache.folder("locks").glob("*.lock"))
    except OSError:
        return None
    for path in lock_paths:
        if path != cache.maintenance_lock_path:
            who = holder(path)
            if who is not None:
                return f"an env is being built by {who}"
    return None
