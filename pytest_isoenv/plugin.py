"""The pytest plugin: options, the ``isoenv`` marker, the fixtures and report lines. Nothing else lives here."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import uuid
from collections import Counter
from collections.abc import Generator
from typing import Any

import pytest

from . import manage, matrix, options, warm, workers
from .background import PROCESSES
from .coverage_support import Measurement, host_coverage_version, session_measures
from .env import IsolatedEnv
from .errors import InterpreterNotFound, IsoEnvError, SharedEnvError, SpecError
from .factory import IsoEnvFactory, Settings, TestContext
from .index import IndexOptions
from .installer_choice import installer_class, installer_notes
from .installers import resolution_needs_uv
from .reporting import WORKEROUTPUT_KEY, Reporter, installer_note
from .spec import EnvSpec

FACTORY = pytest.StashKey[IsoEnvFactory]()
POLICY = pytest.StashKey[manage.Policy]()
PRUNED = pytest.StashKey[str]()
#: The run's Python matrix (``--isoenv-pythons``), as specs.
PYTHONS = pytest.StashKey[list[str]]()
#: The test being run (or the fixture being set up for it), as the factory needs to know it.
CURRENT_TEST = pytest.StashKey[TestContext]()
#: pytest's temporary directories, where private envs go (set when the ``isoenv_factory`` fixture is first used).
TMP_PATH_FACTORY = pytest.StashKey[pytest.TempPathFactory]()
REPORTER = pytest.StashKey[Reporter]()
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


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """A command that runs no tests works from a project whose ``conftest.py`` files cannot be imported here.

    They would be imported before ``pytest_cmdline_main`` runs the command; it
    needs none of them, so they are skipped as ``--noconftest`` skips them.
    """
    namespace = early_config.known_args_namespace
    if any(getattr(namespace, f"isoenv_{name}", False) for name in manage.NO_TEST_COMMANDS):
        namespace.noconftest = True


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    reporter = config.stash[REPORTER] = Reporter(config)
    # A session run in-process by another (pytester) stops only the warm interpreters it started.
    config.stash[WARM_BEFORE] = warm.servers()
    config.stash[POLICY] = manage.Policy.from_config(config)
    measurement = measurement_from_config(config)
    # Cheap (no I/O until an env is asked for), so it exists for collection-time hooks too.
    config.stash[FACTORY] = IsoEnvFactory(
        settings_from_config(config),
        private_root=lambda: config.stash[TMP_PATH_FACTORY].mktemp("isoenv-private", numbered=True),
        context=lambda: config.stash.get(CURRENT_TEST, TestContext()),
        notify=reporter.progress,
        # A repair is not the fault of the test that meets it: it is said in the output, not warned about.
        warn=reporter.repaired,
        # -v streams installer output; otherwise it only goes to the build's log.
        echo=reporter.echo if reporter.verbosity > 0 else None,
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
    """The specs of ``--isoenv-pythons`` (paths against the invocation dir) or else of ``isoenv_pythons`` (rootdir)."""
    from_flags = config.getoption("isoenv_pythons")
    base = config.invocation_params.dir if from_flags else config.rootpath
    try:
        return matrix.split_specs(from_flags or config.getini("isoenv_pythons"), base)
    except IsoEnvError as exc:
        raise pytest.UsageError(f"--isoenv-pythons / isoenv_pythons: {exc}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    code = manage.run_command(config)
    if code is not None:
        return code
    if config.getoption("isoenv_plan_key"):
        # Collection only, in this process (xdist does not distribute a collect-only run), and stdout
        # is the key alone: the terminal reporter is not started.
        config.option.collectonly = True
        config.pluginmanager.set_blocked("terminalreporter")
        return None
    if not config.getoption("isoenv_list_pythons"):
        return None
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
    args, kwargs = matrix.choose(
        marker.args if marker else (), marker.kwargs if marker else {}, params.get("isoenv_alternatives"), item.nodeid
    )
    if "isoenv_python" in params:
        kwargs["python"] = params["isoenv_python"]
    return factory.spec(args, where=item.nodeid, **kwargs)


def settings_from_config(config: pytest.Config) -> Settings:
    """The session's :class:`Settings`, read from flags and ini keys."""
    workerinput = workers.workerinput(config)
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
    resolution = options.parse_resolution(config)
    if resolution != "highest" and chosen.name == "pip":
        raise pytest.UsageError(resolution_needs_uv(resolution))
    return Settings(
        cache_dir=options.cache_dir(config),
        rootdir=config.rootpath,
        # Every xdist worker of one run shares the controller's id, so --isoenv-rebuild rebuilds once per run.
        run_id=workerinput["testrunuid"] if workerinput else uuid.uuid4().hex,
        index=IndexOptions(
            index_url=options.get(config, "index_url") or None,
            find_links=tuple(options.paths_or_urls(config, "find_links")),
            offline=bool(options.get(config, "offline")),
        ),
        rebuild=bool(options.get(config, "rebuild")),
        lock_timeout=timeout,
        worker=workerinput["workerid"] if workerinput else None,
        installer=installer,
        with_requirements=options.parse_with(config),
        resolution=resolution,
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    installer = config.stash[FACTORY].settings.installer
    settings = config.stash[FACTORY].settings
    label, warnings = installer_notes(installer)
    # A plain "pip" from auto means uv is not installed (else the label says why auto passed it over).
    lines = [f"isoenv: cache {options.cache_dir(config)}, installer {label}{installer_note(installer, label)}"]
    lines += [f"isoenv: warning: {warning}" for warning in warnings]
    misread = options.misread_path_option(config)
    if misread:
        lines.append(f"isoenv: {misread}")
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
    factory = config.stash[FACTORY]
    if workers.worker_id(config) is not None:
        return
    if config.getoption("isoenv_plan_key"):
        if session.testsfailed:
            sys.stderr.write("isoenv: collection failed, so there is no plan key; run without --isoenv-plan-key\n")
        else:
            uses, _ = manage.plan_uses(factory, session.items, lambda item: marker_spec(factory, item))
            sys.stdout.write(manage.plan_key(uses) + "\n")
            sys.stdout.flush()
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if config.getoption("isoenv_plan") and reporter is not None:
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
    factory.prebuild(specs, progress=config.stash[REPORTER].progress, jobs=workers.build_jobs(config))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    matrix_python = getattr(getattr(item, "callspec", None), "params", {}).get("isoenv_python")
    item.config.stash[CURRENT_TEST] = TestContext(item.nodeid, matrix_python)
    result = yield
    if matrix_python is not None:
        # An env a broader fixture made before this test is not on this test's Python, and would be used silently.
        problem = matrix.env_off_the_matrix(getattr(item, "funcargs", {}), matrix_python, item.nodeid)
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
    stash = request.config.stash
    outer = stash.get(CURRENT_TEST, TestContext())
    broad = (fixturedef.argname, fixturedef.scope) if fixturedef.scope != "function" else None
    stash[CURRENT_TEST] = dataclasses.replace(outer, broad_fixture=broad)
    try:
        return (yield)
    finally:
        stash[CURRENT_TEST] = outer
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
    # What runs between tests (session teardown) is in no test and on no test's Python.
    item.config.stash[CURRENT_TEST] = TestContext()
    try:
        if factory is not None:
            factory.check_shared(item.nodeid)
        return
    except SharedEnvError as exc:
        error = str(exc)
    pytest.fail(error, pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for line in config.stash[REPORTER].summary_lines(config.stash[FACTORY].stats):
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
    request.config.stash[TMP_PATH_FACTORY] = tmp_path_factory
    return request.config.stash[FACTORY]


@pytest.fixture
def isoenv_python(request: pytest.FixtureRequest) -> str | None:
    """The ``python=`` spec the test's ``isoenv`` env is built on, when the Python matrix chose it.

    Set when the run lists Pythons (``--isoenv-pythons``) or the test's marker
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
            # Said once in the summary, with where it was looked for; each test gets a short reason, at the
            # test's location as a skip mark's is, so that pytest folds the identical reasons into one line.
            reason = request.config.stash[REPORTER].missing_python(exc)
            raise pytest.skip.Exception(reason, _use_item_location=True) from None
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
    """Hooks that only matter under pytest-xdist: workers' progress and summaries reach the controller."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_configure_node(self, node: Any) -> None:
        """In the controller, before a worker starts: the channel its progress lines come back on."""
        workers.open_progress_channel(node, self.config.stash[REPORTER].write_line)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput: dict[str, Any] | None = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            stats = self.config.stash[FACTORY].stats
            workeroutput[WORKEROUTPUT_KEY] = self.config.stash[REPORTER].to_workeroutput(stats)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        if data:
            self.config.stash[REPORTER].merge(data, self.config.stash[FACTORY].stats)
