"""IsoEnvFactory: turns what a test asks for into a ready env (spec -> key -> cache -> IsolatedEnv)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import warm
from .cache import Cache
from .discovery import Discovery, Interpreter
from .env import Installs, IsolatedEnv, host_environ, introspect, isolated_environ, read_distributions
from .errors import BuildError, CacheError, IsoEnvError, LockTimeout, RunError, SharedEnvError, SpecError, in_test
from .installers import IndexOptions, Installer, InstallerDirs, select_installer
from .keys import FileHashes
from .leases import Lease, held_generations
from .locks import Notify
from .privatecopy import copy_env
from .privatecopy import unsupported as private_envs_unsupported
from .processes import Echo
from .record import Built, Record
from .spec import EnvSpec, PathArg, compute_key
from .workers import cpu_count

if TYPE_CHECKING:
    from .coverage_support import Measurement


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
class Outcome:
    """One env a session built or failed to build, as the terminal summary names it."""

    description: str
    python: str
    installer: str
    seconds: float


@dataclass
class Stats:
    """What a session did with envs, by key, for the terminal summary.

    *reused* holds only envs built before this run: an env another test or
    xdist worker of the same run built is counted once, as built.
    """

    reused: set[str] = field(default_factory=set)
    built: dict[str, Outcome] = field(default_factory=dict)
    failed: dict[str, Outcome] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data, as an xdist worker sends it to the controller."""
        return {
            "reused": sorted(self.reused),
            "built": {key: dataclasses.asdict(outcome) for key, outcome in self.built.items()},
            "failed": {key: dataclasses.asdict(outcome) for key, outcome in self.failed.items()},
        }

    def merge(self, data: dict[str, Any]) -> None:
        """Add what another process of the same run (an xdist worker) did, from :meth:`to_json`."""
        self.built.update({key: Outcome(**value) for key, value in data["built"].items()})
        self.failed.update({key: Outcome(**value) for key, value in data["failed"].items()})
        self.reused.update(data["reused"])
        self.reused.difference_update(self.built)


@dataclass(frozen=True)
class TestContext:
    """What the factory is told of the test being run, for errors and the Python matrix."""

    __test__ = False  # not a test class, whatever pytest makes of its name

    nodeid: str | None = None
    """The test's node id, named in errors."""
    matrix_python: str | None = None
    """The interpreter spec the Python matrix chose for the test, if it chose one."""
    broad_fixture: tuple[str, str] | None = None
    """The name and scope of a fixture broader than a test being set up for it, if one is."""


class IsoEnvFactory:
    """Hands out isolated envs; one per session (the ``isoenv_factory`` fixture).

    Shared envs come from the cache: built once per distinct spec, then reused
    by every test, session and xdist worker that asks for the same one.
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
        self._private_root = private_root
        self._context = context or TestContext
        self._started = time.time()
        self._notify = notify
        self._warn = warn
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
        #: Claims the shared envs this factory hands out, so no prune removes them while it lives.
        self.lease = Lease(self.cache, settings.run_id)

    def _current_test(self) -> str | None:
        return self._context().nodeid

    def get(
        self,
        *requirements: PathArg,
        editable: PathArg | Sequence[PathArg] = (),
        constraints: PathArg | None = None,
        requirements_files: PathArg | Sequence[PathArg] = (),
        groups: str | Sequence[str] = (),
        python: PathArg | None = None,
        private: bool = False,
        installer: str | None = None,
        find_links: PathArg | Sequence[PathArg] = (),
        index_url: str | None = None,
        warm: bool = False,
        preload: str | Sequence[str] = (),
    ) -> IsolatedEnv:
        """An env with *requirements* (PEP 508 strings or paths to local projects, wheels, sdists).

        *editable* projects are installed in editable mode; relative paths
        resolve against pytest's rootdir. *python* picks the interpreter
        (default: the one running pytest, or in a test that the Python matrix
        runs on several interpreters, that test's; see :doc:`how-to/dependency-matrix`).
        A shared env (the default) must not be changed; ``private=True`` gives
        a fresh env of the caller's own. Every other keyword argument is as in
        the marker; ``warm=True`` runs the env's Python programs in forks of an
        interpreter that started once, with the *preload* modules imported (see
        :mod:`pytest_isoenv.warm`).
        """
        context = self._context()
        if python is None and context.matrix_python is not None:
            python = self._follow_matrix(context)
        spec = self.spec(
            requirements,
            editable=editable,
            constraints=constraints,
            requirements_files=requirements_files,
            groups=groups,
            python=python,
            private=private,
            installer=installer,
            find_links=find_links,
            index_url=index_url,
            warm=warm,
            preload=preload,
        )
        return self.env(spec)

    def _follow_matrix(self, context: TestContext) -> str:
        """The Python matrix's interpreter for a ``get()`` without ``python=``, or a loud error where it cannot be.

        A fixture broader than a test is made once, for the tests on every
        interpreter: following the test that happens to make it would hand its
        env to tests on other Pythons.
        """
        assert context.matrix_python is not None
        if context.broad_fixture is None:
            return context.matrix_python
        name, scope = context.broad_fixture
        raise SpecError(
            f"isoenv_factory.get() without python= in the {scope}-scoped fixture {name!r}, for a test the "
            f"Python matrix runs on {context.matrix_python}: the fixture is made once for the tests on every Python, "
            "so its env cannot follow the matrix",
            where=context.nodeid,
            fix=f"Make {name!r} function-scoped so that each test gets an env on its own Python, or pass python= "
            "to get() (python=sys.executable for the Python running pytest)",
        )

    def spec(
        self, requirements: Sequence[object], *, where: str | None = None, session: bool = True, **kwargs: Any
    ) -> EnvSpec:
        """Validate and normalise env arguments (the marker's or :meth:`get`'s) into an :class:`EnvSpec`.

        *where* names the test in errors (default: the test being run). With
        *session* (the default), the session's ``--isoenv-with`` and
        ``--isoenv-resolution`` apply.
        """
        where = where or self._current_test()
        spec = EnvSpec.from_arguments(requirements, rootdir=self.settings.rootdir, where=where, **kwargs)
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
        env = self._shared.get(spec)
        if env is None:
            env = self._shared[spec] = self._shared_env(spec)
        if (env.spec.warm, env.spec.preload) != (spec.warm, spec.preload):
            env = env.handed_out_as(spec)  # the same env, its programs run warm or not as this spec asks
        return env

    def key(self, spec: EnvSpec, *, where: str | None = None) -> str:
        """The cache key of *spec*: its content plus the interpreter, installer and index settings."""
        key = self._keys.get(spec)
        if key is None:
            where = where or self._current_test()
            installer = self.installer(
                spec, where=where
            )  # first: an unknown name is refused before the cache is touched
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
                    "spec": spec.key_material(hashes),
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

    def prebuild(
        self,
        specs: Iterable[EnvSpec],
        progress: Notify | None = None,
        *,
        jobs: int | None = None,
    ) -> None:
        """Build the missing shared envs *specs* need, several at once, before any test asks for one.

        At most *jobs* builds run at a time (default: one per CPU; builds wait
        on installer subprocesses). *progress* is told one line per env built. Best effort:
        an env another process is building is left to it, and tests wait for
        it when they need it; a spec that cannot be resolved and an env that
        fails to build are reported by each test that needs them. A repair (a
        broken entry rebuilt) is told to the factory's *warn* callback, or else
        to *progress*, from this thread.
        """
        todo: dict[str, EnvSpec] = {}
        for spec in specs:
            try:
                key = self.key(spec)
            except IsoEnvError:
                continue
            if key not in todo and key not in self._failed and self._missing(key):
                todo[key] = dataclasses.replace(spec, private=False)
        if not todo:
            return
        say = progress or (lambda message: None)
        workers = max(1, min(len(todo), jobs or cpu_count()))
        say(f"building {len(todo)} env(s) before the tests, {workers} at a time")
        # Keys, interpreters and installers are worked out above, in this thread; builds touch only their key.
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="isoenv-build")
        try:
            futures = {pool.submit(self._prebuild_one, spec): (key, spec) for key, spec in todo.items()}
            for done, future in enumerate(as_completed(futures), 1):
                key, spec = futures[future]
                what = f"{spec.describe()} ({self.interpreter(spec).label}, {self.installer(spec).name})"
                outcome, seconds, warned = future.result()
                say(f"[{done}/{len(todo)}] {outcome} {what} in {seconds:.1f}s")
                for message in warned:
                    (self._warn or say)(message)
        except BaseException:
            # Interrupted (Ctrl-C): stop the running installers rather than wait for them, and wait only for
            # their builds to remove what they had made, so that nothing half-built is left or published.
            for installer in self._installers.values():
                installer.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()

    def _prebuild_one(self, spec: EnvSpec) -> tuple[str, float, list[str]]:
        started = time.monotonic()
        warned: list[str] = []
        try:
            env = self._shared_env(spec, wait=False, warn=warned.append)
        except LockTimeout:
            outcome = "left to the process building it:"
        except Exception:  # the tests that need the env get the same error at setup (BuildError is memoised)
            outcome = "failed to build (the tests that need it report why):"
        else:
            self._shared[spec] = env
            outcome = (
                "built"
                if env.key in self.stats.built
                else "reused"
                if env.key in self.stats.reused
                else "built by another worker of this run:"
            )
        return outcome, time.monotonic() - started, warned

    def _missing(self, key: str) -> bool:
        """Whether *key* has no usable env in the cache (or must be rebuilt in this run)."""
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

    def _shared_env(self, spec: EnvSpec, *, wait: bool = True, warn: Notify | None = None) -> IsolatedEnv:
        key = self.key(spec)
        where = self._current_test()
        if key in self._failed:
            raise self._failed[key].for_test(where) if where else self._failed[key]
        self._ensure_cache()
        self.lease.add(key, notify=self._notify)
        if self.lease.problem is not None and not self._told_lease_problem:
            self._told_lease_problem = True
            if self._notify is not None:
                self._notify(self.lease.problem)
        what = f"env ({spec.describe()})"
        started = time.monotonic()
        try:
            record, built = self.cache.get_or_build(
                key,
                lambda path, log: self._build(spec, path, log),
                what=what,
                run_id=self.settings.run_id,
                stale=self._stale,
                notify=self._notify if wait else None,
                warn=warn or self._warn,
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
        return self._env_from_record(record, record.path, spec)

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
                self._shared[spec] = self._shared_env(spec, warn=lambda message: None)  # the error says it
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
            raise RuntimeError("private envs need a folder: pass private_root to IsoEnvFactory")
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
        return self._env_from_record(self._records[shared.key], path, spec, installs=self._install_into)

    def _env_from_record(
        self, record: Record, path: Path, spec: EnvSpec, installs: Installs | None = None
    ) -> IsolatedEnv:
        """The env described by *record*, at *path* (the record's own generation, or a private copy of it)."""
        return IsolatedEnv(
            path,
            python=path / record.built.python,
            bin_dir=path / record.built.bin_dir,
            site_packages=path / record.built.site_packages,
            key=record.key,
            spec=spec,
            installs=installs,
            coverage=self.coverage if spec.coverage else None,
        )

    def _build(self, spec: EnvSpec, path: Path, log: Path) -> Built:
        """Create the env at *path* and install *spec* into it; what the record says of it."""
        interpreter = self.interpreter(spec)
        installer = self.installer(spec)
        log.parent.mkdir(parents=True, exist_ok=True)
        header = f"building {spec.describe()} with {installer.name} on {interpreter.executable}"
        log.write_text(f"# pytest-isoenv: {header}\n", encoding="utf-8")
        echo = self._labelled_echo(f"{spec.describe()} {interpreter.label}")
        if echo is not None:
            echo(f"{header} (log: {log})")
        started = time.monotonic()
        installs = spec if self.coverage is None else self.coverage.install_spec(spec, interpreter)
        python = installer.build(
            path,
            interpreter.executable,
            installs,
            self.settings.index.for_spec(spec),
            log=log,
            environ=host_environ(),
            echo=echo,
        )
        venv_paths = dict(interpreter.venv_paths)
        dirs = [path / venv_paths[k] for k in ("scripts", "purelib", "platlib") if k in venv_paths]
        if len(dirs) == 3 and all(d.is_dir() for d in dirs):
            # Read from here what the env's interpreter would report: a subprocess less per build.
            packages, dist_infos = read_distributions(*dirs[1:])
            scripts, purelib = str(dirs[0]), str(dirs[1])
        else:  # a layout the interpreter's venv scheme did not predict: ask the env itself
            try:
                info = introspect(python, isolated_environ(path, python.parent))
            except RunError as exc:
                raise BuildError(
                    f"the new env of {spec.describe()} cannot report its paths and packages",
                    cmd=exc.cmd,
                    returncode=exc.returncode,
                    output=exc.stderr or exc.stdout,
                    log=log,
                ) from exc
            packages, dist_infos, scripts, purelib = (
                info["packages"],
                info["dist_infos"],
                info["scripts"],
                info["purelib"],
            )

        def rel(value: str | Path) -> str:
            return os.path.relpath(value, path)

        return Built(
            description=spec.describe(),
            python_spec=spec.python,
            installer=installer.name,
            interpreter=interpreter.key_material(),
            base_executable=str(interpreter.executable),
            python=rel(python),
            bin_dir=rel(scripts),
            site_packages=rel(purelib),
            packages=packages,
            dist_infos=[rel(d) for d in dist_infos if Path(d).is_relative_to(path)],
            build_seconds=round(time.monotonic() - started, 3),
            resolution=spec.resolution,
        )

    def _labelled_echo(self, label: str) -> Echo | None:
        """The echo callback with each line labelled by the env it belongs to: builds run in parallel."""
        echo = self._echo
        if echo is None:
            return None
        label = label if len(label) <= 40 else label[:39] + "…"
        return lambda line: echo(f"[{label}] {line}")

    def _install_into(self, env: IsolatedEnv, requirements: Sequence[object], editable: Sequence[object]) -> None:
        spec = self.spec(requirements, session=False, editable=list(editable))
        self.installer(env.spec).install(
            env.python,
            spec,
            self.settings.index.for_spec(env.spec),
            log=env.path.with_name(f"{env.path.name}.log"),
            environ=env.environ,
            echo=self._labelled_echo(f"private {env.spec.describe()}"),
        )
