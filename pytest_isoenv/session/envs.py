"""One session's envs: what a test asks for becomes a ready env (spec -> key -> cache -> IsolatedEnv).

:class:`SessionEnvs`, which the plugin owns, one per session, runs the chain behind
:class:`~pytest_isoenv.IsoEnvFactory` with a few collaborators, each keeping one
thing the session learns: the keys of specs (:mod:`~pytest_isoenv.session.keys`),
the shared envs it hands out (:mod:`~pytest_isoenv.session.shared`), the check
that no test changes them (:mod:`~pytest_isoenv.session.guard`) and private
copies (:mod:`~pytest_isoenv.session.private`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_isoenv.discovery import Discovery, Interpreter
from pytest_isoenv.installers.api import Installer
from pytest_isoenv.run.env import IsolatedEnv
from pytest_isoenv.session.cache import SessionCache
from pytest_isoenv.session.guard import SharedEnvGuard
from pytest_isoenv.session.keys import EnvKeys
from pytest_isoenv.session.private import PrivateEnvs
from pytest_isoenv.session.settings import Settings
from pytest_isoenv.session.shared import SharedEnvs
from pytest_isoenv.session.stats import Stats
from pytest_isoenv.spec.arguments import EnvOptions
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.store.cache import Cache
from pytest_isoenv.store.leases import Lease
from pytest_isoenv.text import LineSink

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11

    from pytest_isoenv.run.coverage import Measurement


@dataclass(frozen=True)
class TestContext:
    """What the session is told of the test being run, for errors and the Python matrix."""

    __test__ = False  # not a test class, whatever pytest makes of its name

    nodeid: str | None = None
    """The test's node id, named in errors."""
    matrix_python: str | None = None
    """The interpreter spec the Python matrix chose for the test, if it chose one."""
    broad_fixture: tuple[str, str] | None = None
    """The name and scope of a fixture broader than a test being set up for it, if one is."""


class SessionEnvs:
    """One session's envs and what it learned getting them; the plugin owns it, :class:`IsoEnvFactory` calls it.

    *private_root* makes a new folder for each private env; *context* tells
    the test being run; *notify* is told what the session waits for, *warn*
    what it repaired, *echo* the installers' output; *coverage* is set while
    the session measures the coverage of env processes.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        private_root: Callable[[], Path] | None = None,
        context: Callable[[], TestContext] | None = None,
        notify: LineSink | None = None,
        warn: LineSink | None = None,
        echo: LineSink | None = None,
        coverage: Measurement | None = None,
    ) -> None:
        self.settings = settings
        #: Set while the session measures coverage: every env then has coverage.py, and its processes measure.
        self.coverage = coverage
        self.context: Callable[[], TestContext] = context or TestContext
        #: Told what the session repaired (a broken env rebuilt).
        self.warn = warn
        self.cache = Cache(settings.cache_dir, worker=settings.worker)
        self.stats = Stats()
        #: Claims the shared envs this session hands out, so no prune removes them while it lives.
        self.lease = Lease(self.cache, settings.run_id)
        cache = SessionCache(self.cache, self._current_test)
        #: The interpreter, installer and cache key of each spec.
        self.keys = EnvKeys(settings, cache, self._current_test)
        #: The shared envs handed out, and the builds that failed.
        self.shared = SharedEnvs(
            settings,
            cache,
            self.keys,
            self.lease,
            self.stats,
            current_test=self._current_test,
            notify=notify,
            warn=warn,
            echo=echo,
            coverage=coverage,
        )
        #: After each test, finds the shared envs it changed.
        self.guard = SharedEnvGuard(self.shared)
        #: Makes private envs, copies of shared ones.
        self.private = PrivateEnvs(
            self.shared,
            self.keys,
            settings.index,
            root=private_root,
            make_spec=self.spec,
            current_test=self._current_test,
            echo=echo,
            coverage=coverage,
        )

    def _current_test(self) -> str | None:
        return self.context().nodeid

    def spec(
        self,
        requirements: Sequence[object],
        *,
        where: str | None = None,
        session: bool = True,
        **options: Unpack[EnvOptions],
    ) -> EnvSpec:
        """Validate and normalise env arguments (the marker's or ``get()``'s) into an :class:`EnvSpec`.

        *where* names the test in errors (default: the test being run). With
        *session* (the default), the session's ``--isoenv-with`` and
        ``--isoenv-resolution`` apply, except to an env made of a lock file. *options* come bound by
        :func:`~pytest_isoenv.spec.arguments.bind_options`: a ``where`` or
        ``session`` among a marker's arguments would land in the parameters here.
        """
        where = where or self._current_test()
        spec = EnvSpec.from_arguments(requirements, rootdir=self.settings.rootdir, where=where, **options)
        if session and spec.lock is None:  # a lock's env is what it pins: no version of it is the session's to pick
            spec = spec.with_requirements(self.settings.with_requirements)
            spec = dataclasses.replace(spec, resolution=self.settings.resolution)
        if self.coverage is not None:
            spec = dataclasses.replace(spec, coverage=self.coverage.version)
        self.settings.index.check_reachable(spec, where=where)
        return spec

    def env(self, spec: EnvSpec) -> IsolatedEnv:
        """The env for *spec*: shared from the cache, or a new private one."""
        if spec.private:
            return self.private.get(spec)
        env = self.shared.get(spec)
        if (env.spec.warm, env.spec.preload) != (spec.warm, spec.preload):
            env = env.handed_out_as(spec)  # the same env, its programs run warm or not as this spec asks
        return env

    def key(self, spec: EnvSpec, *, where: str | None = None) -> str:
        """The cache key of *spec*: its content plus the interpreter, installer and index settings."""
        return self.keys.key(spec, where=where)

    @property
    def discovery(self) -> Discovery:
        """Finds the interpreters ``python=`` specs name, remembering what it learns in the cache root."""
        return self.keys.discovery

    def interpreter(self, spec: EnvSpec, *, where: str | None = None) -> Interpreter:
        """The base interpreter *spec* builds on."""
        return self.keys.interpreter(spec, where=where)

    def installer(self, spec: EnvSpec, *, where: str | None = None) -> Installer:
        """The installer *spec* uses (its own choice, or the session's)."""
        return self.keys.installer(spec, where=where)

    def check_shared(self, where: str) -> None:
        """After a test: a shared env it changed is thrown away and rebuilt, and a :class:`SharedEnvError` says so.

        See :meth:`SharedEnvGuard.check <pytest_isoenv.session.guard.SharedEnvGuard.check>`.
        """
        self.guard.check(where)

    def stop_installers(self) -> None:
        """Stop every installer subprocess running for this session (an interrupted prebuild)."""
        self.keys.stop_installers()

    def close(self) -> None:
        """Release the lease on the shared envs handed out (the plugin calls this at the end of the session)."""
        self.lease.close()
