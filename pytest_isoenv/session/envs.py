"""One session's envs: what a test asks for becomes a ready env (spec -> key -> cache -> IsolatedEnv).

:class:`SessionEnvs`, which the plugin owns, one per session, runs the chain behind
:class:`~pytest_isoenv.IsoEnvFactory` and keeps what the session learned: keys,
interpreters, installers, the envs handed out and what it did with them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_isoenv.discovery import Discovery, Interpreter
from pytest_isoenv.environ import host_environ
from pytest_isoenv.errors import BuildError, CacheError, IsoEnvError, SharedEnvError, SpecError, in_test
from pytest_isoenv.installers.api import Installer, InstallerDirs
from pytest_isoenv.installers.choice import select_installer
from pytest_isoenv.installers.processes import Echo
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.material import compute_key, spec_material
from pytest_isoenv.run import warm
from pytest_isoenv.run.env import IsolatedEnv
from pytest_isoenv.run.privatecopy import copy_env
from pytest_isoenv.run.privatecopy import unsupported as private_envs_unsupported
from pytest_isoenv.session.build import build_env, env_from_record, labelled_echo
from pytest_isoenv.session.stats import Outcome, Stats
from pytest_isoenv.spec.arguments import EnvOptions, bind_options
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.index import IndexOptions
from pytest_isoenv.store.cache import Cache
from pytest_isoenv.store.leases import Lease, held_generations
from pytest_isoenv.store.locks import Notify
from pytest_isoenv.store.record import Record

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11

    from pytest_isoenv.run.coverage import Measurement


@dataclass(frozen=True)
class Settings:
    """The session's choices, from command-line options and ini keys."""

    cache_dir: Path
    rootdir: Path
    run_id: str
    index: IndexOptions = field(default_factory=IndexOptions)
    installer: str | None = None
    rebuild: bool = False
    lock_timeout: float = -1
    worker: str | None = None  # the xdist worker id, when this session is one
    with_requirements: tuple[str, ...] = ()
    """Canonical requirements every env gets in place of its own of the same names (``--isoenv-with``)."""
    resolution: str = "highest"
    """Which versions installers pick (``--isoenv-resolution``)."""


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
        notify: Notify | None = None,
        warn: Notify | None = None,
        echo: Echo | None = None,
        coverage: Measurement | None = None,
    ) -> None:
        self.settings = settings
        #: Set while the session measures coverage: every env then has coverage.py, and its processes measure.
        self.coverage = coverage
        self.cache = Cache(settings.cache_dir, worker=settings.worker)
        self.stats = Stats()
        #: Told what the session repaired (a broken env rebuilt).
        self.warn = warn
        self._private_root = private_root
        self.context: Callable[[], TestContext] = context or TestContext
        self._started = time.time()
        self._notify = notify
        self._echo = echo
        self._cache_ready = False
        self._discovery: Discovery | None = None
        self._installers: dict[str | None, Installer] = {}
        self._keys: dict[EnvSpec, str] = {}
        self._hashes: FileHashes | None = None
        self._shared: dict[EnvSpec, IsolatedEnv] = {}
        self._records: dict[str, Record] = {}
        self._failed: dict[str, BuildError] = {}
        self._told_lease_problem = False
        #: Claims the shared envs this session hands out, so no prune removes them while it lives.
        self.lease = Lease(self.cache, settings.run_id)

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
        ``--isoenv-resolution`` apply. *options* come bound by
        :func:`~pytest_isoenv.spec.arguments.bind_options`: a ``where`` or
        ``session`` among a marker's arguments would land in the parameters here.
        """
        where = where or self._current_test()
        spec = EnvSpec.from_arguments(requirements, rootdir=self.settings.rootdir, where=where, **options)
        if session:
            spec = spec.with_requirements(self.settings.with_requirements)
            spec = dataclasses.replace(spec, resolution=self.settings.resolution)
        if self.coverage is not None:
            spec = dataclasses.replace(spec, coverage=self.coverage.version)
        self.settings.index.check_reachable(spec, where=where)
        return spec

    def env(self, spec: EnvSpec) -> IsolatedEnv:
        """The env for *spec*: shared from the cache, or a new private one."""
        if spec.private:
            return self._private(spec)
        env = self.shared(spec)
        if (env.spec.warm, env.spec.preload) != (spec.warm, spec.preload):
            env = env.handed_out_as(spec)  # the same env, its programs run warm or not as this spec asks
        return env

    def key(self, spec: EnvSpec, *, where: str | None = None) -> str:
        """The cache key of *spec*: its content plus the interpreter, installer and index settings."""
        key = self._keys.get(spec)
        if key is None:
            where = where or self._current_test()
            # The installer first: an unknown name is refused before the cache is touched.
            installer = self.installer(spec, where=where)
            interpreter = self.interpreter(spec, where=where)
            unsupported = installer.unsupported(interpreter)
            if unsupported:
                raise SpecError(
                    f"python={spec.python!r} is {interpreter.implementation} {interpreter.version_text} at "
                    f"{interpreter.executable}, which the {installer.name} installer cannot make envs from: "
                    f"{unsupported}",
                    where=where,
                )
            try:
                installer.resolution_arguments(spec.resolution)
            except SpecError as exc:
                raise SpecError(exc.problem, where=where, fix=exc.fix) from None
            hashes = self._file_hashes()
            try:
                material = {
                    "spec": spec_material(spec, hashes),
                    "interpreter": interpreter.key_material(),
                    "installer": installer.key_material(self.settings.index.for_spec(spec), hashes),
                }
            except SpecError as exc:
                raise SpecError(exc.problem, where=where, fix=exc.fix) from None
            finally:
                hashes.save()
            key = self._keys[spec] = compute_key(material)
        return key

    def _file_hashes(self) -> FileHashes:
        """The session's file hashes, remembered in the cache root's ``hashes/`` between sessions."""
        if self._hashes is None:
            # Only into a cache that is pytest-isoenv's own: never a folder of the user's given by mistake.
            folder = self.cache.folder("hashes") if self.cache.is_ours() else None
            self._hashes = FileHashes(folder, cache_root=self.cache.root)
        return self._hashes

    def close(self) -> None:
        """Release the lease on the shared envs handed out (the plugin calls this at the end of the session)."""
        self.lease.close()

    @property
    def discovery(self) -> Discovery:
        """Finds the interpreters ``python=`` specs name, remembering what it learns in the cache root."""
        if self._discovery is None:
            self._ensure_cache()
            self._discovery = Discovery(self.cache.folder("py-info"), host_environ())
        return self._discovery

    def interpreter(self, spec: EnvSpec, *, where: str | None = None) -> Interpreter:
        """The base interpreter *spec* builds on."""
        return self.discovery.find(spec.python, where=where or self._current_test())

    def installer(self, spec: EnvSpec, *, where: str | None = None) -> Installer:
        """The installer *spec* uses (its own choice, or the session's)."""
        name = spec.installer or self.settings.installer
        if name not in self._installers:
            dirs = InstallerDirs(app_data=self.cache.folder("virtualenv"), uv_cache=self.cache.folder("uv"))
            self._installers[name] = select_installer(name, dirs=dirs, where=where or self._current_test())
        return self._installers[name]

    def stop_installers(self) -> None:
        """Stop every installer subprocess running for this session (an interrupted prebuild)."""
        for installer in self._installers.values():
            installer.stop()

    def _ensure_cache(self) -> None:
        if not self._cache_ready:
            try:
                self.cache.ensure()
            except CacheError as exc:
                raise self._located(exc) from None
            self._cache_ready = True

    def _located(self, exc: CacheError) -> CacheError:
        """*exc* with the test it happened in named first (cache errors do not know it)."""
        where = self._current_test()
        return CacheError(in_test(str(exc), where)) if where else exc

    def needs_build(self, key: str) -> bool:
        """Whether *key* has no usable env in the cache (or must be rebuilt in this run), and did not fail in it."""
        if key in self._failed:
            return False
        try:
            record, _ = self.cache.read_record(key)
        except CacheError:  # a bad entry fails the tests that need it, each naming it; it stops nothing else
            return False
        return record is None or self._stale(record)

    def _stale(self, record: Record) -> bool:
        """Whether ``--isoenv-rebuild`` wants *record* rebuilt: built neither in this run nor since it started.

        So two sessions started together with ``--isoenv-rebuild`` build each env once, not twice.
        """
        return self.settings.rebuild and record.run_id != self.settings.run_id and record.created < self._started

    def shared(self, spec: EnvSpec, *, wait: bool = True, warn: Notify | None = None) -> IsolatedEnv:
        """The shared env of *spec*, as this session handed it out before, else reused or built in the cache.

        Without *wait*, an env another process is building is a :class:`~pytest_isoenv.errors.LockTimeout`.
        """
        env = self._shared.get(spec)
        if env is None:
            env = self._shared[spec] = self._shared_env(spec, wait=wait, warn=warn)
        return env

    def _shared_env(self, spec: EnvSpec, *, wait: bool = True, warn: Notify | None = None) -> IsolatedEnv:
        key = self.key(spec)
        where = self._current_test()
        if key in self._failed:
            raise self._failed[key].for_test(where) if where else self._failed[key]
        self.claim(key)
        what = f"env ({spec.describe()})"
        started = time.monotonic()
        try:
            record, built = self.cache.get_or_build(
                key,
                lambda path, log: build_env(
                    spec,
                    path,
                    log,
                    interpreter=self.interpreter(spec),
                    installer=self.installer(spec),
                    index=self.settings.index.for_spec(spec),
                    coverage=self.coverage,
                    echo=self._echo,
                ),
                what=what,
                run_id=self.settings.run_id,
                stale=self._stale,
                notify=self._notify if wait else None,
                warn=warn or self.warn,
                lock_timeout=self.settings.lock_timeout if wait else 0,
                held=lambda key: held_generations(self.cache, key, exclude=self.lease.id),
            )
        except BuildError as exc:
            exc = exc.for_test(where) if where else exc
            self._failed[key] = exc
            self.stats.failed[key] = self._outcome(spec, time.monotonic() - started)
            raise exc from None
        except CacheError as exc:
            raise self._located(exc) from None
        self.lease.pin(key, record.generation)
        if built:
            self.stats.built[key] = self._outcome(spec, record.built.build_seconds)
        elif key not in self.stats.built and record.run_id != self.settings.run_id:
            # An env another worker of this run built is that worker's to count.
            self.stats.reused.add(key)
        self._records[key] = record
        return env_from_record(record, record.path, spec, coverage=self.coverage)

    def claim(self, key: str) -> None:
        """Enter *key* in the session's lease, before its env is looked at, so no prune removes it while it lives.

        The pre-build claims the envs the selected tests will use, so the
        first test that asks for one does not pay for taking the lease.
        """
        self._ensure_cache()
        self.lease.add(key, notify=self._notify)
        if self.lease.problem is not None and not self._told_lease_problem:
            self._told_lease_problem = True
            if self._notify is not None:
                self._notify(self.lease.problem)

    def _outcome(self, spec: EnvSpec, seconds: float) -> Outcome:
        # With a Python matrix one requirement set is several envs: the interpreter tells them apart.
        return Outcome(spec.describe(), self.interpreter(spec).label, self.installer(spec).name, seconds)

    def check_shared(self, where: str) -> None:
        """After a test: if a shared env handed out this session was changed, throw it away and rebuild it.

        Raises :class:`SharedEnvError` naming *where* (the test that just ran)
        and each changed env. Cheap enough for every test: a few ``stat`` calls
        and one directory listing per env. The rebuilt env is a new generation
        (other processes may still run in the changed one); env objects handed
        out before it point at the changed env, so get the env again after it.
        """
        errors = []
        for spec, env in list(self._shared.items()):
            record = self._records.get(env.key)
            problem = None if record is None else record.problem()
            if problem is None:
                continue
            del self._shared[spec]
            warm.stop(env.python)  # it may have imported what the test changed
            error = f"the shared env ({spec.describe()}) [{env.key[:12]}] was changed by {where}: {problem}"
            try:
                # The changed generation is no longer usable (its record says so), so this builds the next
                # one, unless another process did already.
                self.shared(spec, warn=lambda message: None)  # the error says it
                error += ". It was thrown away and rebuilt, as other tests reuse it"
            except IsoEnvError as exc:
                error += f". It was thrown away; rebuilding it failed: {exc}"
            errors.append(error)
        if errors:
            raise SharedEnvError(
                "\n".join(errors) + ". Give the test an env of its own with private=True "
                "(@pytest.mark.isoenv(..., private=True) or isoenv_factory.get(..., private=True))"
            )

    def _private(self, spec: EnvSpec) -> IsolatedEnv:
        """A changeable env made from the cached shared env of *spec* (built first if need be), not from the index."""
        if self._private_root is None:
            raise RuntimeError("private envs need a folder: pass private_root to SessionEnvs")
        unsupported = private_envs_unsupported()
        if unsupported:
            raise SpecError(
                unsupported,
                where=self._current_test(),
                fix="Use a shared env, or skip the test on Windows (see the Windows and macOS page of the docs)",
            )
        shared = self.env(dataclasses.replace(spec, private=False))
        path = self._private_root() / "env"
        # A copy of the cached env, its paths fixed: with uv too, as linking the files in-process is
        # several times faster than two uv runs that link the same files from uv's cache.
        copy_env(shared.path, path, bin_dir=shared.bin_dir, site_packages=shared.site_packages)
        # The record's paths are relative to the env, so they hold for the copy as well.
        record = self._records[shared.key]
        return env_from_record(record, path, spec, coverage=self.coverage, installs=self._install_into)

    def _install_into(self, env: IsolatedEnv, requirements: Sequence[object], editable: Sequence[object]) -> None:
        # What install() was given is not typed: its values are checked as a marker's are.
        spec = self.spec(requirements, session=False, **bind_options({"editable": list(editable)}, None))
        self.installer(env.spec).install(
            env.python,
            spec,
            self.settings.index.for_spec(env.spec),
            log=env.path.with_name(f"{env.path.name}.log"),
            environ=env.environ,
            echo=labelled_echo(self._echo, f"private {env.spec.describe()}"),
        )
