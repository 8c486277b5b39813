"""Building the envs a run's tests need before the first test runs, several at once."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed

from pytest_isoenv.environ import cpu_count
from pytest_isoenv.errors import IsoEnvError, LockTimeout
from pytest_isoenv.session.envs import SessionEnvs
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.text import LineSink


def prebuild(
    envs: SessionEnvs, specs: Iterable[EnvSpec], progress: LineSink | None = None, *, jobs: int | None = None
) -> None:
    """Build the missing shared envs *specs* need, several at once, before any test asks for one.

    At most *jobs* builds run at a time (default: one per CPU; builds wait
    on installer subprocesses). *progress* is told one line per env built. Best effort:
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
    if not todo:
        return
    say = progress or (lambda message: None)
    workers = max(1, min(len(todo), jobs or cpu_count()))
    say(f"building {len(todo)} env(s) before the tests, {workers} at a time")
    # Keys, interpreters and installers are worked out above, in this thread; builds touch only their key.
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="isoenv-build")
    try:
        futures = {pool.submit(_prebuild_one, envs, spec): (key, spec) for key, spec in todo.items()}
        for done, future in enumerate(as_completed(futures), 1):
            key, spec = futures[future]
            what = f"{spec.describe()} ({envs.interpreter(spec).label}, {envs.installer(spec).name})"
            outcome, seconds, warned = future.result()
            say(f"[{done}/{len(todo)}] {outcome} {what} in {seconds:.1f}s")
            for message in warned:
                (envs.warn or say)(message)
    except BaseException:
        # Interrupted (Ctrl-C): stop the running installers rather than wait for them, and wait only for
        # their builds to remove what they had made, so that nothing half-built is left or published.
        envs.stop_installers()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def _prebuild_one(envs: SessionEnvs, spec: EnvSpec) -> tuple[str, float, list[str]]:
    started = time.monotonic()
    warned: list[str] = []
    try:
        env = envs.shared.get(spec, wait=False, warn=warned.append)
    except LockTimeout:
        outcome = "left to the process building it:"
    except Exception:  # the tests that need the env get the same error at setup (BuildError is memoised)
        outcome = "failed to build (the tests that need it report why):"
    else:
        outcome = (
            "built"
            if env.key in envs.stats.built
            else "reused"
            if env.key in envs.stats.reused
            else "built by another worker of this run:"
        )
    return outcome, time.monotonic() - started, warned
