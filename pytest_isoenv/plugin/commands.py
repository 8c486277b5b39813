"""Looking after the cache from the command line: list, prune, clear, the plan of a run, and pruning at its end.

The cache itself decides what may go (see :meth:`Cache.prune`); this module
reads the options, calls it and puts the result into words and tables.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence

import pytest

from pytest_isoenv.errors import CacheError, InterpreterNotFound, IsoEnvError
from pytest_isoenv.plugin import options
from pytest_isoenv.plugin.activation import uses_env
from pytest_isoenv.plugin.options import COMMANDS, Policy
from pytest_isoenv.plugin.reporting import fit_lines, line_width
from pytest_isoenv.plugin.xdist import worker_id
from pytest_isoenv.session.envs import SessionEnvs
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.store.cache import KEY_LENGTH, Cache
from pytest_isoenv.store.clearing import clear
from pytest_isoenv.store.fs import tree_size
from pytest_isoenv.store.leases import Entry, Pruned, list_entries, live_leases, prune
from pytest_isoenv.store.pruned import note_pruned
from pytest_isoenv.text import format_age, format_size, table


def run_command(config: pytest.Config) -> int | None:
    """Run ``--isoenv-list``, ``--isoenv-prune`` or ``--isoenv-clear`` if one was given; its exit code."""
    chosen = [name for name in COMMANDS if config.getoption(f"isoenv_{name}")]
    if not chosen:
        return None
    if len(chosen) > 1:
        flags = " and ".join(f"--isoenv-{name}" for name in chosen)
        raise pytest.UsageError(f"{flags} are separate commands: give one at a time")
    policy = Policy.from_config(config)
    cache = Cache(options.cache_dir(config))
    # Rows as wide as the terminal; whole, with every column, under -v.
    width = line_width(config)
    try:
        # Nothing is written for these commands: a cache that does not exist has nothing to list or remove.
        exists = cache.exists()
        if chosen[0] == "list":
            lines = list_lines(cache, width)
        elif chosen[0] == "prune":
            lines = pruned_lines(
                cache, prune(cache, max_age=policy.max_age, max_size=policy.max_size) if exists else Pruned(), width
            )
        else:
            lines = pruned_lines(cache, clear(cache) if exists else Pruned(), width)
    except CacheError as exc:
        raise pytest.UsageError(str(exc)) from None
    print("\n".join(lines))
    return 0


def list_lines(cache: Cache, width: int | None = None) -> list[str]:
    """The ``--isoenv-list`` table: one row per env, least recently used first.

    Rows are cut to *width*, the packages last so that a narrow terminal cuts them; with
    *width* ``None`` (``-v``) they are whole and name each env's resolution and creation too.
    """
    entries = list_entries(cache)
    total = sum(entry.size or 0 for entry in entries)
    head = f"isoenv cache {cache.root}: {len(entries)} env(s), {format_size(total)}"
    shared = tree_size(cache.folder("seeds"))
    if shared:
        head += f", and {format_size(shared)} of pip that they share in seeds/"
    if not entries:
        return [head]
    users = {key[:KEY_LENGTH]: lease.who for lease in live_leases(cache) for key in lease.keys}
    builders = cache.builders()
    now = time.time()
    rows: list[tuple[str, ...]] = [
        ("KEY", "PYTHON", "INSTALLER", "RESOLUTION", "SIZE", "CREATED", "LAST USED", "STATE", "PACKAGES")
    ]
    for entry in entries:
        created = entry.created
        rows.append(
            (
                entry.name,
                entry.python,
                entry.installer,
                entry.resolution,
                format_size(entry.size or 0),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else "?",
                format_age(now - entry.last_used),
                _state(entry, users, builders),
                entry.description,
            )
        )
    if width is not None:  # the details -v adds: resolution and creation time
        rows = [(row[0], row[1], row[2], row[4], row[6], row[7], row[8]) for row in rows]
    return [head, *fit_lines(table(rows), width)]


def _state(entry: Entry, users: dict[str, str], builders: dict[str, str]) -> str:
    if entry.foreign:
        return f"foreign: {entry.problem}"
    builder = builders.get(entry.name)
    if builder is not None:
        return f"being built by {builder}"
    if entry.name in users:
        return f"in use by {users[entry.name]}"
    return "ready" if entry.record is not None else f"unusable: {entry.problem}"


def pruned_lines(cache: Cache, pruned: Pruned, width: int | None = None) -> list[str]:
    """What a prune or clear removed, with the space each freed, and what it kept, with reasons.

    The rows are cut to *width* characters (``None``: any length).
    """
    lines = [
        f"isoenv cache {cache.root}: removed {len(pruned.removed)} env(s), freed {format_size(pruned.freed)}"
        + (f", kept {len(pruned.kept)} in use" if pruned.kept else "")
    ]
    rows = [
        ("removed", entry.name, format_size(entry.size or 0), f"{entry.description}  ({why})")
        for entry, why in pruned.removed
    ]
    rows += [("removed", f"{name}/", format_size(size), what) for name, what, size in pruned.folders]
    rows += [("kept", entry.name, "", f"{entry.description}  ({why})") for entry, why in pruned.kept]
    rows += [("kept", f"{name}/", "", f"{what}  ({why})") for name, what, why in pruned.kept_folders]
    return lines + fit_lines([f"  {row}" for row in table(rows)], width)


def auto_prune(config: pytest.Config, envs: SessionEnvs | None, policy: Policy) -> str | None:
    """Prune at the end of a session that no other run shares the cache with; a line for the summary.

    *envs* is ``None`` for a session that asked for no env: it prunes all the
    same, holding no env and counting none as its own.
    """
    if not policy.auto or worker_id(config) is not None:
        return None
    if envs is None:
        envs = SessionEnvs(options.settings_from_config(config))
        try:
            return auto_prune(config, envs, policy)
        finally:
            envs.close()
    if not envs.cache.folder("envs").is_dir():
        return None
    if envs.lease.problem is not None or not envs.cache.is_ours():  # read-only, full, or not a cache at all
        return None
    # xdist workers share the run id: their leases are this run's, not another process's.
    others = [lease for lease in live_leases(envs.cache) if lease.run_id != envs.settings.run_id]
    if others:
        return (
            f"isoenv: not pruning the cache: {others[0].who} is using it"
            if int(config.getoption("verbose", 0)) > 0
            else None
        )
    used = {*envs.stats.reused, *envs.stats.built, *envs.lease.keys}
    # Unusable entries are left to age: the next session that needs one rebuilds it, saying why.
    pruned = prune(envs.cache, max_age=policy.max_age, max_size=policy.max_size, keep=used, unusable=False)
    note_pruned(envs.cache.root)
    if not pruned.removed:
        return None
    return (
        f"isoenv: pruned {len(pruned.removed)} env(s) from the cache ({format_size(pruned.freed)} freed), "
        f"unused for {policy.max_age:g} day(s) or over isoenv_max_size; see pytest --isoenv-list"
    )


def plan_lines(envs: SessionEnvs, items: Sequence[pytest.Item], spec_of: Callable[[pytest.Item], EnvSpec]) -> list[str]:
    """The ``--isoenv-plan`` report: each env the ``isoenv`` fixture of *items* needs, and a key over them all."""
    uses, errors = plan_uses(envs, items, spec_of)
    return _plan_table(envs, uses, errors)


def plan_uses(
    envs: SessionEnvs, items: Sequence[pytest.Item], spec_of: Callable[[pytest.Item], EnvSpec]
) -> tuple[dict[str, list[EnvSpec]], list[str]]:
    """The envs *items* need, by key, each with the specs that ask for it; and a line per test that cannot say."""
    uses: dict[str, list[EnvSpec]] = {}
    errors: list[str] = []
    for item in items:
        if not uses_env(item):
            continue
        try:
            spec = spec_of(item)
            uses.setdefault(envs.key(spec, where=item.nodeid), []).append(spec)
        except InterpreterNotFound as exc:
            errors.append(f"  skipped: {str(exc).splitlines()[0]}")
        except IsoEnvError as exc:
            errors.append(f"  error: {str(exc).splitlines()[0]}")
    factory = factory_tests(items)
    if factory:
        errors.append(
            f"  not listed: the envs that {factory} test(s) make with isoenv_factory.get(), in the test or "
            "its fixtures, are known only when they run (the plan key does not cover them)"
        )
    return uses, errors


def plan_key_problem(uses: dict[str, list[EnvSpec]], items: Sequence[pytest.Item]) -> tuple[str | None, bool]:
    """What ``--isoenv-plan-key`` says on stderr about *items*' plan, if anything, and whether it prints no key.

    A plan key covers the marker's envs only: the envs that tests make with
    ``isoenv_factory.get()`` are known when they run. A key that covers some of
    the envs is printed, with a warning; the key of an empty plan, which would
    cover none of them and never change, is not printed at all.
    """
    factory = factory_tests(items)
    if not factory:
        return None, False
    how = (
        "keep the CI cache with a key that changes with the envs a run builds, restored by prefix "
        "(see the CI cache guide: https://pytest-isoenv.readthedocs.io/en/latest/how-to/ci-cache.html)"
    )
    made = f"{factory} test(s) make envs with isoenv_factory.get(), in the test or its fixtures"
    if not uses:
        return (
            f"isoenv: no plan key: {made}, and no test takes the isoenv fixture, so no key covers them; {how}",
            True,
        )
    return (
        f"isoenv: the plan key covers the {len(uses)} env(s) of the isoenv fixture only: {made}, which it does not cover; {how}",
        False,
    )


def plan_key(uses: Iterable[str]) -> str:
    """The plan key: a hash of the keys of the envs a run needs, for the key of a CI cache."""
    return hashlib.sha256("\n".join(sorted(uses)).encode()).hexdigest()


def _plan_table(envs: SessionEnvs, uses: dict[str, list[EnvSpec]], errors: list[str]) -> list[str]:
    rows, cached = [], 0
    for key, specs in uses.items():
        spec = specs[0]
        # Private envs are copies of the cached env of their spec, so they need it built all the same.
        state = "cached" if envs.cache.read_record(key)[0] is not None else "to build"
        cached += state == "cached"
        tests = (
            f"({len(specs)} test{'s' if len(specs) > 1 else ''}{', private' if any(s.private for s in specs) else ''})"
        )
        python = envs.interpreter(spec).label
        rows.append(
            (state, key[:KEY_LENGTH], python, envs.installer(spec).name, spec.resolution, spec.describe(), tests)
        )
    head = (
        f"isoenv plan: {len(uses)} env(s) for {sum(map(len, uses.values()))} test(s): "
        f"{cached} cached, {len(uses) - cached} to build"
    )
    # The key of an empty plan would cover nothing and never change: --isoenv-plan-key refuses it too.
    key = plan_key(uses) if uses else "none (no test takes the isoenv fixture)"
    return [head, *(f"  {line}" for line in table(rows)), *errors, f"isoenv plan key: {key}"]


def factory_tests(items: Sequence[pytest.Item]) -> int:
    """How many of *items* ask for ``isoenv_factory``, themselves or through a fixture.

    The ``isoenv`` fixture does not (it needs only ``tmp_path_factory``), so
    the fixtures a test needs, which pytest lists, say whether it does.
    """
    return sum("isoenv_factory" in getattr(item, "fixturenames", ()) for item in items)
