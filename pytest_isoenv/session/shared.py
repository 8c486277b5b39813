"""The shared envs one session hands out: reused or built in the cache, pinned by its lease, failures remembered."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_isoenv.errors import BuildError, BuildFailedEarlier, CacheError
from pytest_isoenv.key.sources import changed_source
from pytest_isoenv.run.env import IsolatedEnv
from pytest_isoenv.session.build import build_env, env_from_record
from pytest_isoenv.session.cache import SessionCache
from pytest_isoenv.session.keys import EnvKeys
from pytest_isoenv.session.settings import Settings
from pytest_isoenv.session.stats import Outcome, Stats
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.store.cache import Cache
from pytest_isoenv.store.leases import Lease, held_generations
from pytest_isoenv.store.record import Built, Record
from pytest_isoenv.text import LineSink

if TYPE_CHECKING:
    from pytest_isoenv.run.coverage import Measurement


class SharedEnvs:
    """The envs every test that asks for the same spec shares: reused from the cache, or built there once.

    Each is handed out again as it was the first time in the session, and
    pinned by the session's *lease*, so no prune removes it while the session
    lives. A build that failed is not tried again in the run: the first test
    that needs the env reports the whole error, the later ones fail at once
    with a line that points at that report and the log (the cache records the
    failure for the run's other xdist workers). *stats*
    counts what was built, reused and failed; *notify* is told what the
    session waits for, *warn* what it repaired, *echo* the installers' output.
    """

    def __init__(
        self,
        settings: Settings,
        cache: SessionCache,
        keys: EnvKeys,
        lease: Lease,
        stats: Stats,
        *,
        current_test: Callable[[], str | None],
        notify: LineSink | None = None,
        warn: LineSink | None = None,
        echo: LineSink | None = None,
        coverage: Measurement | None = None,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._keys = keys
        self._lease = lease
        self._stats = stats
        self._current_test = current_test
        self._notify = notify
        self._warn = warn
        self._echo = echo
        self._coverage = coverage
        self._started = time.time()
        self._handed_out: dict[EnvSpec, IsolatedEnv] = {}
        self._records: dict[str, Record] = {}
        self._failed: dict[str, BuildError] = {}
        #: The test that reported each failed build in full (``None`` until a test did: the pre-build has none).
        self._reported: dict[str, str | None] = {}
        self._sources_checked: dict[tuple[str, float], str | None] = {}
        self._told_lease_problem = False

    def get(self, spec: EnvSpec, *, wait: bool = True, warn: LineSink | None = None) -> IsolatedEnv:
        """The shared env of *spec*, as this session handed it out before, else reused or built in the cache.

        Without *wait*, an env another process is building is a :class:`~pytest_isoenv.errors.LockTimeout`.
        *warn* is told of a repair instead of the session's own.
        """
        env = self._handed_out.get(spec)
        if env is None:
            env = self._handed_out[spec] = self._from_cache(spec, wait=wait, warn=warn)
        return env

    def handed_out(self) -> list[tuple[EnvSpec, IsolatedEnv]]:
        """Each spec this session handed out a shared env for, with the env."""
        return list(self._handed_out.items())

    def take_back(self, spec: EnvSpec) -> None:
        """Forget the env handed out for *spec*: the next :meth:`get` looks in the cache again."""
        del self._handed_out[spec]

    def record(self, key: str) -> Record | None:
        """The record of the env of *key* as this session got it from the cache, if it did."""
        return self._records.get(key)

    def needs_build(self, key: str) -> bool:
        """Whether *key* has no usable env in the cache (or must be rebuilt in this run), and did not fail in it."""
        if key in self._failed:
            return False
        try:
            record, _ = self._cache.cache.read_record(key)
        except CacheError:  # a bad entry fails the tests that need it, each naming it; it stops nothing else
            return False
        return record is None or self.stale(record)

    def stale(self, record: Record) -> bool:
        """Whether the usable env of *record* is built anew all the same.

        When ``--isoenv-rebuild`` wants it rebuilt: built neither in this run nor
        since it started, so two sessions started together with it build each env
        once, not twice. And when a local source its packages came from changed
        since it was built (see :mod:`pytest_isoenv.key.sources`).
        """
        settings = self._settings
        if settings.rebuild and record.run_id != settings.run_id and record.created < self._started:
            return True
        return self.changed_source(record) is not None

    def changed_source(self, record: Record) -> str | None:
        """Which local source of *record*'s env changed since it was built, or ``None``.

        Read once per generation in a session, not on every use: a few ``stat`` calls per source,
        and a listing of each project folder. A change is told to *notify* when found, once: the
        env is rebuilt, and a build nobody can see the reason for looks like a cache that failed.
        """
        seen = (str(record.path), record.created)
        if seen not in self._sources_checked:
            hashes = self._keys.hashes
            try:
                changed = self._sources_checked[seen] = changed_source(record.built.sources, hashes)
            finally:
                hashes.save()
            if changed is not None and self._notify is not None:
                self._notify(f"rebuilding env ({record.built.description}) [{record.key[:12]}]: {changed}")
        return self._sources_checked[seen]

    def claim(self, key: str) -> Cache:
        """Enter *key* in the session's lease, before its env is looked at, so no prune removes it while it lives.

        The pre-build claims the envs the selected tests will use, so the
        first test that asks for one does not pay for taking the lease. The
        cache, ready to use.
        """
        cache = self._cache.ready()
        self._lease.add(key, notify=self._notify)
        if self._lease.problem is not None and not self._told_lease_problem:
            self._told_lease_problem = True
            if self._notify is not None:
                self._notify(self._lease.problem)
        return cache

    def _from_cache(self, spec: EnvSpec, *, wait: bool, warn: LineSink | None) -> IsolatedEnv:
        key = self._keys.key(spec)
        where = self._current_test()
        if key in self._failed:
            raise self._failed_again(key, where)
        cache = self.claim(key)
        started = time.monotonic()
        try:
            record, built = cache.get_or_build(
                _SharedEnvBuild(
                    self,
                    spec,
                    key,
                    what=f"env ({spec.describe()})",
                    run_id=self._settings.run_id,
                    lock_timeout=self._settings.lock_timeout if wait else 0,
                    notify=self._notify if wait else None,
                    warn=warn or self._warn,
                )
            )
        except BuildFailedEarlier as exc:
            # Another worker of the run failed it, and counts it; this one only points at its report.
            self._failed[key] = exc
            raise (exc.for_test(where) if where else exc) from None
        except BuildError as exc:
            exc = exc.for_test(where) if where else exc
            self._failed[key] = exc
            self._reported[key] = where
            self._stats.failed[key] = self._outcome(spec, time.monotonic() - started)
            raise exc from None
        except CacheError as exc:
            raise self._cache.located(exc) from None
        self._lease.pin(key, record.generation)
        if built:
            self._stats.built[key] = self._outcome(spec, record.built.build_seconds)
        elif key not in self._stats.built and record.run_id != self._settings.run_id:
            # An env another worker of this run built is that worker's to count.
            self._stats.reused.add(key)
        self._records[key] = record
        return env_from_record(record, record.path, spec, coverage=self._coverage)

    def _failed_again(self, key: str, where: str | None) -> BuildError:
        """The error of an env whose build failed earlier in the session, for the test *where* that needs it."""
        failed = self._failed[key]
        if isinstance(failed, BuildFailedEarlier):
            return failed.for_test(where) if where else failed
        first = self._reported.get(key)
        if first is None and where:
            # The pre-build failed it, where no test reports it: the first test that needs it does, in full.
            self._reported[key] = where
            return failed.for_test(where)
        return failed.again(where, first=f"the report of {first}" if first else "the first test that needs it")

    def _build(self, spec: EnvSpec, generation: Path, log: Path) -> Built:
        try:
            return build_env(
                spec,
                generation,
                log,
                interpreter=self._keys.interpreter(spec),
                installer=self._keys.installer(spec),
                index=self._settings.index.for_spec(spec),
                hashes=self._keys.hashes,
                coverage=self._coverage,
                echo=self._echo,
            )
        finally:
            self._keys.hashes.save()  # the sources' digests: the next session's check of them is stat calls only

    def _held_by_others(self, key: str) -> set[str]:
        return held_generations(self._cache.cache, key, exclude=self._lease.id)

    def _outcome(self, spec: EnvSpec, seconds: float) -> Outcome:
        # With a Python matrix one requirement set is several envs: the interpreter tells them apart.
        return Outcome(spec.describe(), self._keys.interpreter(spec).label, self._keys.installer(spec).name, seconds)


@dataclass(frozen=True)
class _SharedEnvBuild:
    """One shared env asked of the cache: the :class:`~pytest_isoenv.store.cache.EnvBuild` that *envs* hands it."""

    envs: SharedEnvs
    spec: EnvSpec
    key: str
    what: str
    run_id: str
    lock_timeout: float
    notify: LineSink | None
    warn: LineSink | None

    def stale(self, record: Record) -> bool:
        return self.envs.stale(record)

    def held(self) -> set[str]:
        return self.envs._held_by_others(self.key)

    def build(self, generation: Path, log: Path) -> Built:
        try:
            return self.envs._build(self.spec, generation, log)
        except BuildError as exc:
            # The cache records the failure for the run's other workers, naming the test whose report has it all.
            where = self.envs._current_test()
            raise (exc.for_test(where) if where and not exc.where else exc) from None
