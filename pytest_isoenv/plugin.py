"""The pytest plugin: options, the ``isoenv`` marker, the fixtures and report lines. Nothing else lives here."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
import warnings
from collections import Counter
from collections.abc import Generator
from typing import Any

import pytest

from . import manage, matrix, options, warm
from .background import PROCESSES
from .cache import Notify
from .coverage_support import Measurement, host_coverage_version, session_measures
from .env import IsolatedEnv
from .errors import InterpreterNotFound, IsoEnvError, IsoEnvWarning, SharedEnvError, SpecError
from .factory import IsoEnvFactory, Settings
from .installers import IndexOptions, installer_class, installer_notes, resolution_needs_uv
from .spec import RESOLUTIONS, EnvSpec, parse_requirement

FACTORY = pytest.StashKey[IsoEnvFactory]()
POLICY = pytest.StashKey[manage.Policy]()
PRUNED = pytest.StashKey[str]()
#: The run's Python matrix (``--isoenv-python``), as specs.
PYTHONS = pytest.StashKey[list[str]]()
NOTIFY = pytest.StashKey[Notify]()
WARM_BEFORE = pytest.StashKey[list[warm.WarmServer]]()
#: Lines for the terminal summary about the coverage of env processes (problems merging their data).
COVERAGE_LINES = pytest.StashKey[list[str]]()

MARKER = (
    "isoenv(*requirements, editable=(), constraints=None, requirements_files=(), groups=(), python=None, "
    "private=False, installer=None, find_links=(), index_url=None, warm=False, preload=()): the packages the "
    "test's `isoenv` env has; "
    "a list in place of a requirement runs the test once per alternative; the closest marker wins"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    capman = config.pluginmanager.getplugin("capturemanager")
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)

    def write(prefix: str, message: str) -> None:
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if capman is None:
            return
        with capman.global_and_fixture_disabled():
            if workerinput is not None:
                # An xdist worker's terminal output is dropped, but its stderr is the controller's: say it there.
                sys.stderr.write(f"{prefix} [{workerinput['workerid']}] {message}\n")
                sys.stderr.flush()
            elif reporter is not None:
                reporter.write_line(f"{prefix} {message}")

    def notify(message: str) -> None:
        write("isoenv:", message)

    config.stash[NOTIFY] = notify
    # A session run in-process by another (pytester) stops only the warm interpreters it started.
    config.stash[WARM_BEFORE] = warm.servers()
    config.stash[POLICY] = manage.Policy.from_config(config)
    measurement = measurement_from_config(config)
    # Cheap (no I/O until an env is asked for), so it exists for collection-time hooks too.
    config.stash[FACTORY] = IsoEnvFactory(
        settings_from_config(config),
        notify=notify,
        warn=lambda message: warnings.warn(IsoEnvWarning(message), stacklevel=1),
        # -v streams installer output; otherwise it only goes to the build's log.
        echo=(lambda line: write("isoenv|", line)) if config.get_verbosity() > 0 else None,
        coverage=measurement,
    )
    if measurement is not None:
        config.pluginmanager.register(CoverageHooks(config, measurement), "isoenv-coverage")
    config.stash[PYTHONS] = session_pythons(config)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(config), "isoenv-xdist")


def measurement_from_config(config: pytest.Config) -> Measurement | None:
    """The measurement of env processes, if the session measures coverage and ``isoenv_coverage`` is on."""
    version = host_coverage_version()
    if version is None or not options.get(config, "coverage") or not session_measures(config):
        return None
    return Measurement(version, config.invocation_params.dir)


def session_pythons(config: pytest.Config) -> list[str]:
    """The specs of ``--isoenv-python`` (paths against the invocation dir) or else of ``isoenv_python`` (rootdir)."""
    from_flags = config.getoption("isoenv_python")
    base = config.invocation_params.dir if from_flags else config.rootpath
    try:
        return matrix.split_specs(from_flags or config.getini("isoenv_python"), base)
    except IsoEnvError as exc:
        raise pytest.UsageError(f"--isoenv-python / isoenv_python: {exc}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    code = manage.run_command(config)
    if code is not None or not config.getoption("isoenv_pythons"):
        return code
    factory = IsoEnvFactory(settings_from_config(config))
    try:
        lines = matrix.report(factory.discovery, factory.installer(factory.spec(())), session_pythons(config))
    except IsoEnvError as exc:
        raise pytest.UsageError(str(exc)) from None
    print("\n".join(lines))
    return 0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # The Python matrix first, so that ids read [py3.12-attrs==22.*].
    if "isoenv_python" in metafunc.fixturenames:
        _python_matrix(metafunc)
    if "isoenv_alternatives" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("isoenv")
        try:
            cells = None if marker is None else matrix.dependency_cells(marker.args, marker.kwargs, "")
        except IsoEnvError:
            return  # the test's setup reports it, naming the test, as for the Python matrix
        if cells is not None:
            metafunc.parametrize(
                "isoenv_alternatives", [pytest.param(c.chosen, id=c.label) for c in cells], indirect=True
            )


def _python_matrix(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("isoenv")
    session: list[str] = metafunc.config.stash[PYTHONS]
    factory = metafunc.config.stash[FACTORY]
    try:
        params = matrix.params_for(
            session,
            marker.kwargs.get("python") if marker is not None else None,
            lambda spec, wanted: factory.discovery.covers(spec, wanted),
            rootdir=metafunc.config.rootpath,
            where=metafunc.definition.nodeid,
        )
    except IsoEnvError:
        # Left unparametrised: the test's setup validates the marker again and fails that test alone,
        # where a collection error would stop the whole run.
        return
    if params is not None:
        values = [
            pytest.param(p.spec, id=p.label, marks=[pytest.mark.skip(reason=p.skip)] if p.skip else []) for p in params
        ]
        metafunc.parametrize("isoenv_python", values, indirect=True)


def marker_spec(factory: IsoEnvFactory, item: pytest.Item) -> EnvSpec:
    """The spec a test's closest ``isoenv`` marker asks for (no marker: an env with no extra packages).

    On the interpreter the Python matrix gave the test, if it gave one, and
    with the alternatives of its cell of the dependency matrix.
    """
    marker = item.get_closest_marker("isoenv")
    params = getattr(getattr(item, "callspec", None), "params", {})
    factory.current_test = item.nodeid
    args, kwargs = matrix.choose(
        marker.args if marker else (), marker.kwargs if marker else {}, params.get("isoenv_alternatives"), item.nodeid
    )
    if "isoenv_python" in params:
        kwargs["python"] = params["isoenv_python"]
    return factory.spec(args, **kwargs)


def settings_from_config(config: pytest.Config) -> Settings:
    """The session's :class:`Settings`, read from flags and ini keys."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    lock_timeout = options.get(config, "lock_timeout")
    try:
        timeout = -1.0 if lock_timeout in (None, "") else float(lock_timeout)
    except ValueError:
        raise pytest.UsageError(f"isoenv_lock_timeout must be a number of seconds, not {lock_timeout!r}") from None
    installer = options.get(config, "installer") or None
    try:
        chosen = installer_class(installer)
    except SpecError as exc:
        raise pytest.UsageError(f"--isoenv-installer / isoenv_installer: {exc}") from None
    resolution = str(options.get(config, "resolution") or "highest").strip()
    if resolution not in RESOLUTIONS:
        raise pytest.UsageError(
            f"--isoenv-resolution / isoenv_resolution: {resolution!r} is no resolution strategy. "
            f"Choose one of: {', '.join(RESOLUTIONS)}"
        )
    if resolution != "highest" and chosen.name == "pip":
        raise pytest.UsageError(resolution_needs_uv(resolution))
    with_requirements = []
    for value in options.get(config, "with"):
        if not value.strip():
            continue
        try:
            with_requirements.append(parse_requirement(value))
        except SpecError as exc:
            raise pytest.UsageError(f"--isoenv-with / isoenv_with: {exc}") from None
    return Settings(
        cache_dir=options.cache_dir(config),
        rootdir=config.rootpath,
        # Every xdist worker of one run shares the controller's id, so --isoenv-rebuild rebuilds once per run.
        run_id=workerinput["testrunuid"] if workerinput else uuid.uuid4().hex,
        index=IndexOptions(
            index_url=options.get(config, "index_url") or None,
            find_links=tuple(options.get(config, "find_links")),
            offline=bool(options.get(config, "offline")),
        ),
        rebuild=bool(options.get(config, "rebuild")),
        lock_timeout=timeout,
        worker=workerinput["workerid"] if workerinput else None,
        installer=installer,
        with_requirements=tuple(dict.fromkeys(with_requirements)),
        resolution=resolution,
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    installer = config.stash[FACTORY].settings.installer
    settings = config.stash[FACTORY].settings
    label, warnings = installer_notes(installer)
    lines = [f"isoenv: cache {options.cache_dir(config)}, installer {label}"]
    lines += [f"isoenv: warning: {warning}" for warning in warnings]
    unavailable = warm.unavailable()
    if unavailable is not None:
        lines.append(f"isoenv: {unavailable}: warm=True envs run every call as a plain subprocess")
    if settings.resolution != "highest":
        lines.append(f"isoenv: resolution {settings.resolution} (--isoenv-resolution): keyed apart from highest")
    lines += [
        f"isoenv: with {requirement} (--isoenv-with): in every env, replacing any requirement of the same name "
        "that a marker or get() asks for"
        for requirement in settings.with_requirements
    ]
    if config.stash[PYTHONS]:
        discovery = config.stash[FACTORY].discovery
        lines += [f"isoenv: python {spec}: {matrix.describe(discovery, spec)}" for spec in config.stash[PYTHONS]]
    return lines


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if config.getoption("isoenv_plan") and reporter is not None and not hasattr(config, "workerinput"):
        factory = config.stash[FACTORY]
        for line in manage.plan_lines(factory, session.items, lambda item: marker_spec(factory, item)):
            reporter.write_line(line)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    PROCESSES.stop(wide=True)
    try:
        line = manage.auto_prune(config, config.stash[FACTORY], config.stash[POLICY])
    except IsoEnvError as exc:
        line = f"isoenv: pruning the cache failed: {exc}"
    if line:
        config.stash[PRUNED] = line


def pytest_unconfigure(config: pytest.Config) -> None:
    # They would go with this process anyway; stopping them here is tidy.
    before: list[warm.WarmServer] = config.stash.get(WARM_BEFORE, [])
    warm.stop(keep=before)
    factory = config.stash.get(FACTORY, None)
    if factory is not None:
        factory.close()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Build the envs the selected tests' markers ask for, several at once, before the first test runs.

    Under xdist every worker collects every test and pre-builds: the per-key lock
    lets one process build each env while the others move on to the next one.
    """
    config = session.config
    if (
        options.get(config, "no_prebuild")
        or config.option.collectonly
        or getattr(config.option, "setupplan", False)
        or (session.testsfailed and not config.option.continue_on_collection_errors)
    ):
        return
    factory = config.stash[FACTORY]
    specs = []
    for item in session.items:
        if "isoenv" in getattr(item, "fixturenames", ()):
            with contextlib.suppress(SpecError):  # the test's setup reports it, naming the test
                specs.append(marker_spec(factory, item))
    # xdist workers share the CPUs: together they run about one build per CPU, each worker at least one.
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    jobs = max(1, (os.cpu_count() or 1) // int(workerinput["workercount"])) if workerinput else None
    factory.prebuild(specs, progress=config.stash[NOTIFY], jobs=jobs)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    factory = item.config.stash.get(FACTORY, None)
    if factory is None:
        return (yield)
    factory.current_test = item.nodeid
    factory.matrix_python = getattr(getattr(item, "callspec", None), "params", {}).get("isoenv_python")
    result = yield
    if factory.matrix_python is not None:
        # An env a broader fixture made before this test is not on this test's Python, and would be used silently.
        problem = matrix.env_off_the_matrix(getattr(item, "funcargs", {}), factory.matrix_python, item.nodeid)
        if problem:
            pytest.fail(problem, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[Any, Any, Any]:
    """While a fixture broader than a test runs, the factory knows it: its ``get()`` cannot follow the test's Python.
    And what a fixture starts with ``popen()`` belongs to its scope."""
    PROCESSES.enter_fixture(fixturedef.scope)
    try:
        factory = request.config.stash.get(FACTORY, None)
        if factory is None:
            return (yield)
        outer = factory.broad_fixture
        factory.broad_fixture = (fixturedef.argname, fixturedef.scope) if fixturedef.scope != "function" else None
        try:
            return (yield)
        finally:
            factory.broad_fixture = outer
    finally:
        PROCESSES.exit_fixture()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    cell = matrix.cell_of(getattr(getattr(item, "callspec", None), "params", {}))
    if cell is not None:
        report.isoenv_cell = cell  # plain data: it travels with the report from xdist workers
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After the test's own teardown: the processes it left running are stopped and named in its report,
    and a shared env it changed is an error of that test, and is rebuilt."""
    yield
    stopped = PROCESSES.stop()
    if stopped:
        item.add_report_section("teardown", "isoenv", "processes started with popen():\n" + "\n".join(stopped))
    factory = item.config.stash.get(FACTORY, None)
    try:
        if factory is not None:
            factory.check_shared(item.nodeid)
        return
    except SharedEnvError as exc:
        error = str(exc)
    pytest.fail(error, pytrace=False)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    stats = config.stash[FACTORY].stats
    if stats.reused or stats.built or stats.failed:
        built = ", ".join(f"{what} in {seconds:.1f}s" for what, seconds in stats.built.values())
        line = f"isoenv: {len(stats.reused)} env(s) reused, {len(stats.built)} built"
        line += f" ({built})" if built else ""
        line += f", {len(stats.failed)} failed" if stats.failed else ""
        terminalreporter.write_line(line)
    if PRUNED in config.stash:
        terminalreporter.write_line(config.stash[PRUNED])
    cells: dict[str, Counter[str]] = {}
    for outcome in matrix.OUTCOMES:
        for report in terminalreporter.stats.get(outcome, ()):
            cell = getattr(report, "isoenv_cell", None)
            if cell is not None:
                cells.setdefault(cell, Counter())[outcome] += 1
    if cells:
        for line in matrix.summary_lines(cells):
            terminalreporter.write_line(line)
    for line in warm.unsupported():
        terminalreporter.write_line(f"isoenv: warm=True ran plain subprocesses for {line}")
    for line in config.stash.get(COVERAGE_LINES, []):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def isoenv_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> IsoEnvFactory:
    """Session-scoped factory of isolated envs, for fixtures of your own.

    ``isoenv_factory.get(*requirements, editable=(), constraints=None,
    requirements_files=(), python=None, private=False, installer=None,
    warm=False, preload=())``
    returns an :class:`~pytest_isoenv.IsolatedEnv`, built once per distinct
    set of arguments and cached across tests, sessions and xdist workers.
    """
    factory = request.config.stash[FACTORY]
    factory.private_root = lambda: tmp_path_factory.mktemp("isoenv-private", numbered=True)
    return factory


@pytest.fixture
def isoenv_python(request: pytest.FixtureRequest) -> str | None:
    """The ``python=`` spec the test's ``isoenv`` env is built on, when the Python matrix chose it.

    Set when the run lists Pythons (``--isoenv-python``) or the test's marker
    lists several (``python=["3.12", "3.13"]``); the test then runs once per
    interpreter, with ids such as ``test_x[py3.12]``. ``None`` otherwise.
    """
    spec: str | None = getattr(request, "param", None)
    return spec


@pytest.fixture
def isoenv_alternatives(request: pytest.FixtureRequest) -> tuple[object, ...] | None:
    """The alternatives the dependency matrix chose for this test, one per list in its marker, else ``None``.

    ``@pytest.mark.isoenv(["attrs==22.*", "attrs==23.*"], "requests")`` runs the
    test twice, with ids ``test_x[attrs==22.*]`` and ``test_x[attrs==23.*]``;
    this fixture is then ``("attrs==22.*",)`` and ``("attrs==23.*",)``.
    """
    chosen: tuple[object, ...] | None = getattr(request, "param", None)
    return chosen


@pytest.fixture
def isoenv(
    request: pytest.FixtureRequest,
    isoenv_factory: IsoEnvFactory,
    isoenv_python: str | None,
    isoenv_alternatives: tuple[object, ...] | None,
) -> IsolatedEnv:
    """The isolated env the test's closest ``@pytest.mark.isoenv(...)`` marker asks for.

    Without a marker: an env with pip and no other packages. Shared envs are
    reused across tests and must not be changed (a test that installs into or
    removes from one gets an error at teardown, and the env is rebuilt); mark
    the test with ``private=True`` to get an env of its own that it may change.
    A test whose interpreter is not installed is skipped (an error with
    ``--isoenv-strict-python``).
    """
    # isoenv_python and isoenv_alternatives are requested so that the matrices can parametrise them;
    # marker_spec reads their values.
    try:
        return isoenv_factory.env(marker_spec(isoenv_factory, request.node))
    except InterpreterNotFound as exc:
        problem, strict = str(exc), bool(options.get(request.config, "strict_python"))
        if not strict:
            pytest.skip(problem)
        problem += " (--isoenv-strict-python)"
    except IsoEnvError as exc:
        problem = str(exc)
    # Outside the except blocks, so the report is the message alone, not a chain of exceptions.
    pytest.fail(problem, pytrace=False)


class CoverageHooks:
    """Registered only while the session measures coverage: the envs' data join the session's."""

    def __init__(self, config: pytest.Config, measurement: Measurement) -> None:
        self.config = config
        self.measurement = measurement

    # Innermost: done before pytest-cov (or coverage run) stops, saves and combines its data.
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            PROCESSES.stop(wide=True)  # a stopped server saves its data (sigterm = True)
            _, problems = self.measurement.finish()
            lines = sorted(self.measurement.notes) + problems
            self.config.stash[COVERAGE_LINES] = [f"isoenv: coverage of env processes: {line}" for line in lines]


class XdistHooks:
    """Hooks that only matter under pytest-xdist: a worker's env statistics reach the controller's summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput: dict[str, Any] | None = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            stats = self.config.stash[FACTORY].stats
            workeroutput["isoenv_stats"] = {
                "reused": sorted(stats.reused),
                "built": {k: list(v) for k, v in stats.built.items()},
                "failed": stats.failed,
            }

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get("isoenv_stats")
        if data:
            stats = self.config.stash[FACTORY].stats
            stats.built.update({k: (v[0], v[1]) for k, v in data["built"].items()})
            stats.failed.update(data["failed"])
            stats.reused.update(data["reused"])
            stats.reused.difference_update(stats.built)
