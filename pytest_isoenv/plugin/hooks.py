"""The pytest plugin: options, the ``isoenv`` marker, the fixtures and report lines. Nothing else lives here."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections import Counter
from collections.abc import Callable, Generator
from typing import Any, TypeVar

import pytest

from pytest_isoenv.errors import InterpreterNotFound, IsoEnvError, SharedEnvError, SpecError
from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.installers.choice import installer_notes
from pytest_isoenv.plugin import commands as manage
from pytest_isoenv.plugin import matrix, options
from pytest_isoenv.plugin import xdist as workers
from pytest_isoenv.plugin.coverage import COVERAGE_LINES, CoverageHooks, measurement_from_config
from pytest_isoenv.plugin.options import marker_spec, session_pythons, settings_from_config
from pytest_isoenv.plugin.reporting import Reporter, XdistHooks, installer_note
from pytest_isoenv.run import warm
from pytest_isoenv.run.background import PROCESSES
from pytest_isoenv.run.env import IsolatedEnv
from pytest_isoenv.session.envs import SessionEnvs, TestContext
from pytest_isoenv.session.prebuild import prebuild
from pytest_isoenv.spec.arguments import signature

#: The session's envs, behind the ``isoenv_factory`` fixture.
ENVS = pytest.StashKey[SessionEnvs]()
POLICY = pytest.StashKey[manage.Policy]()
PRUNED = pytest.StashKey[str]()
#: The run's Python matrix (``--isoenv-pythons``), as specs.
PYTHONS = pytest.StashKey[list[str]]()
#: The test being run (or the fixture being set up for it), as the factory needs to know it.
CURRENT_TEST = pytest.StashKey[TestContext]()
#: pytest's temporary directories, where private envs go (set by the ``isoenv_factory`` and ``isoenv`` fixtures).
TMP_PATH_FACTORY = pytest.StashKey[pytest.TempPathFactory]()
REPORTER = pytest.StashKey[Reporter]()
WARM_BEFORE = pytest.StashKey[list[warm.WarmServer]]()
#: Set on a test that the ``isoenv`` fixture skipped: its report then points at the test, as a skip mark's does.
SKIPPED_BY_FIXTURE = pytest.StashKey[bool]()

#: The marker's line in ``pytest --markers``, its arguments as the spec layer defines them.
MARKER = (
    f"isoenv({signature()}): the packages the test's `isoenv` env has; "
    "a list in place of a requirement runs the test once per alternative; the closest marker wins"
)

_Function = TypeVar("_Function", bound=Callable[..., Any])


def _with_signature(fixture: _Function) -> _Function:
    """*fixture* with ``{signature}`` in its docstring replaced by the marker's arguments, so that they cannot drift."""
    fixture.__doc__ = (fixture.__doc__ or "").replace("{signature}", signature())
    return fixture


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
    envs = config.stash[ENVS] = SessionEnvs(
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
        config.pluginmanager.register(XdistHooks(config, reporter, envs.stats), "isoenv-xdist")


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
    envs = SessionEnvs(settings_from_config(config))
    try:
        lines = matrix.report(envs.discovery, envs.installer(envs.spec(())), session_pythons(config))
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
    envs = metafunc.config.stash[ENVS]
    try:
        params = matrix.params_for(
            session,
            marker.kwargs.get("python") if marker is not None else None,
            lambda spec, wanted: envs.discovery.covers(spec, wanted),
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


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[ENVS].settings
    installer = settings.installer
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
        discovery = config.stash[ENVS].discovery
        lines += [f"isoenv: python {spec}: {matrix.describe(discovery, spec)}" for spec in config.stash[PYTHONS]]
    return lines


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    envs = config.stash[ENVS]
    if workers.worker_id(config) is not None:
        return
    if config.getoption("isoenv_plan_key"):
        if session.testsfailed:
            sys.stderr.write("isoenv: collection failed, so there is no plan key; run without --isoenv-plan-key\n")
        else:
            uses, _ = manage.plan_uses(envs, session.items, lambda item: marker_spec(envs, item))
            sys.stdout.write(manage.plan_key(uses) + "\n")
            sys.stdout.flush()
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if config.getoption("isoenv_plan") and reporter is not None:
        for line in manage.plan_lines(envs, session.items, lambda item: marker_spec(envs, item)):
            reporter.write_line(line)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    PROCESSES.stop(wide=True)
    try:
        line = manage.auto_prune(config, config.stash[ENVS], config.stash[POLICY])
    except IsoEnvError as exc:
        line = f"isoenv: pruning the cache failed: {exc}"
    if line:
        config.stash[PRUNED] = line


def pytest_unconfigure(config: pytest.Config) -> None:
    # They would go with this process anyway; stopping them here is tidy.
    before: list[warm.WarmServer] = config.stash.get(WARM_BEFORE, [])
    warm.stop(keep=before)
    envs = config.stash.get(ENVS, None)
    if envs is not None:
        envs.close()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Build the envs the selected tests' markers ask for, several at once, before the first test runs.

    Under xdist every worker collects every test and pre-builds: the per-key lock
    lets one process build each env while the others move on to the next one.
    """
    config = session.config
    if (
        not options.get(config, "prebuild")
        or config.option.collectonly
        or getattr(config.option, "setupplan", False)
        or (session.testsfailed and not config.option.continue_on_collection_errors)
    ):
        return
    envs = config.stash[ENVS]
    specs = []
    for item in session.items:
        if "isoenv" in getattr(item, "fixturenames", ()):
            with contextlib.suppress(SpecError):  # the test's setup reports it, naming the test
                specs.append(marker_spec(envs, item))
    # xdist workers share the CPUs: together they run about one build per CPU, each worker at least one.
    prebuild(envs, specs, progress=config.stash[REPORTER].progress, jobs=workers.build_jobs(config))


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
    # Most fixtures are function-scoped inside a test: the context stays as it is.
    stash[CURRENT_TEST] = outer if broad == outer.broad_fixture else dataclasses.replace(outer, broad_fixture=broad)
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
    if report.skipped and item.stash.get(SKIPPED_BY_FIXTURE, False) and isinstance(report.longrepr, tuple):
        # At the test's location, as pytest places a skip mark's reason: the identical reasons of the
        # tests of one function then fold into one line of the short summary.
        path, line = item.reportinfo()[:2]
        report.longrepr = (os.fspath(path), (line or 0) + 1, report.longrepr[2])
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After the test's own teardown: the processes it left running are stopped and named in its report,
    and a shared env it changed is an error of that test, and is rebuilt."""
    yield
    stopped = PROCESSES.stop()
    if stopped:
        item.add_report_section("teardown", "isoenv", "processes started with popen():\n" + "\n".join(stopped))
    envs = item.config.stash.get(ENVS, None)
    # What runs between tests (session teardown) is in no test and on no test's Python.
    item.config.stash[CURRENT_TEST] = TestContext()
    try:
        if envs is not None:
            envs.check_shared(item.nodeid)
        return
    except SharedEnvError as exc:
        error = str(exc)
    pytest.fail(error, pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for line in config.stash[REPORTER].summary_lines(config.stash[ENVS].stats):
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
@_with_signature
def isoenv_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> IsoEnvFactory:
    """Session-scoped factory of isolated envs, for fixtures of your own:
    ``isoenv_factory.get({signature})``.

    ``get()`` takes the marker's arguments and returns an
    :class:`~pytest_isoenv.IsolatedEnv`, built once per distinct set of
    arguments and cached across tests, sessions and xdist workers.
    """
    request.config.stash[TMP_PATH_FACTORY] = tmp_path_factory
    return IsoEnvFactory(request.config.stash[ENVS])


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
@_with_signature
def isoenv(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    isoenv_python: str | None,
    isoenv_alternatives: tuple[object, ...] | None,
) -> IsolatedEnv:
    """The isolated env the test's closest ``isoenv`` marker asks for:
    ``@pytest.mark.isoenv({signature})``.

    Without a marker: an env with pip and no other packages. Shared envs are
    reused across tests and must not be changed (a test that installs into or
    removes from one gets an error at teardown, and the env is rebuilt); mark
    the test with ``private=True`` to get an env of its own that it may change.
    A test whose interpreter is not installed is skipped (an error with
    ``--isoenv-strict-python``).
    """
    # tmp_path_factory is requested for the folder of private envs (not isoenv_factory: a test that requests
    # that, itself or through a fixture, makes envs that --isoenv-plan cannot list); isoenv_python and
    # isoenv_alternatives so that the matrices can parametrise them (marker_spec reads their values).
    request.config.stash[TMP_PATH_FACTORY] = tmp_path_factory
    envs = request.config.stash[ENVS]
    skip = None
    try:
        return envs.env(marker_spec(envs, request.node))
    except InterpreterNotFound as exc:
        if not options.get(request.config, "strict_python"):
            # Said once in the summary, with where it was looked for; each test gets a short reason.
            skip = request.config.stash[REPORTER].missing_python(exc)
        problem = f"{exc} (--isoenv-strict-python)"
    except IsoEnvError as exc:
        problem = str(exc)
    # Outside the except blocks, so the report is the message alone, not a chain of exceptions.
    if skip is not None:
        request.node.stash[SKIPPED_BY_FIXTURE] = True  # reported at the test's location: see pytest_runtest_makereport
        pytest.skip(skip)
    pytest.fail(problem, pytrace=False)
