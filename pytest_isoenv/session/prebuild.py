"""Building the envs a run's tests need before the first test runs, several at once."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Protocol

from pytest_isoenv.environ import cpu_count
from pytest_isoenv.errors import BuildFailedEarlier, IsoEnvError, LockTimeout
from pytest_isoenv.session.envs import SessionEnvs
from pytest_isoenv.spec.envspec import EnvSpec


class Progress(Protocol):
    """Told how the pre-build goes: the plugin's reporter, which words it (and, under xdist, says it once)."""

    def starting(self, count: int, at_once: int) -> None:
        """*count* envs are to be built, *at_once* at a time."""

    def finished(self, outcome: str, what: str, seconds: float | None) -> None:
        """One env is done: *outcome* is ``built``, ``reused``, ``failed``, ``waited`` (left to another
        process building it), ``elsewhere`` (another worker of this run built it) or ``failed earlier`` (a
        process of this run failed to build it); *seconds* is the
        build's time as the summary gives it, for ``built`` and ``failed``."""

    def progress(self, message: str) -> None:
        """Any other line, such as a repair when the session has no *warn* callback."""


def prebuild(
    envs: SessionEnvs, specs: Iterable[EnvSpec], progress: Progress | None = None, *, jobs: int | None = None
) -> None:
    """Build the missing shared envs *specs* need, several at once, before any test asks for one.

    At most *jobs* builds run at a time (default: one per CPU; builds wait
    on installer subprocesses). *progress* is told how many envs are built,
    then each one's outcome. Best effort:
    an env another process is building is left to it, and tests wait for
    it when they need it; a spec that cannot be resolved and an env that
    fails to build are reported by each test that needs them. A repair (a
    broken entry rebuilt) is told to the session's *warn* callback, or else
    to *progress*, from this thread.
    """
    todo: dict[str, EnvSpec] = {}
    seen: set[str] = set()
    for spec in specs:
        try:
            key = envs.key(spec)
        except IsoEnvError:
            continue
        if key not in seen:  # many tests share an env: its record is read once
            seen.add(key)
            if envs.shared.needs_build(key):
                todo[key] = dataclasses.replace(spec, private=False)
            else:
                # Claimed now, before the tests: the first test that uses it finds it in the session's lease.
                with contextlib.suppress(IsoEnvError):  # the test that needs it reports it
                    envs.shared.claim(key)
    if not todo:
        return
    workers = max(1, min(len(todo), jobs or cpu_count()))
    if progress is not None:
        progress.starting(len(todo), workers)
    # Keys, interpreters and installers are worked out above, in this thread; builds touch only their key.
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="isoenv-build")
    try:
        futures = {pool.submit(_prebuild_one, envs, spec): (key, spec) for key, spec in todo.items()}
        for future in as_completed(futures):
            key, spec = futures[future]
            what = f"{spec.describe()} ({envs.interpreter(spec).label}, {envs.installer(spec).name})"
            outcome, warned = future.result()
            # The time the summary gives the build: the build's own, not the waits around it.
            measured = envs.stats.built.get(key) or envs.stats.failed.get(key)
            seconds = measured.seconds if measured is not None and outcome in ("built", "failed") else None
            if progress is not None:
                progress.finished(outcome, what, seconds)
            for message in warned:
                if envs.warn is not None:
                    envs.warn(message)
                elif progress is not None:
                    progress.progress(message)
    except BaseException:
        # Interrupted (Ctrl-C): stop the running installers rather than wait for them, and wait only for
        # their builds to remove what they had made, so that nothing half-built is left or published.
        envs.stop_installers()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def _prebuild_one(envs: SessionEnvs, spec: EnvSpec) -> tuple[str, list[str]]:
    warned: list[str] = []
    try:
        env = envs.shared.get(spec, wait=False, warn=warned.append)
    except LockTimeout:
        outcome = "waited"
    except BuildFailedEarlier:
        outcome = "failed earlier"
    except Exception:  # the tests that need the env get the same error at setup (BuildError is memoised)
        outcome = "failed"
    else:
        outcome = "built" if env.key in envs.stats.built else "reused" if env.key in envs.stats.reused else "elsewhere"
    return outcome, warned
