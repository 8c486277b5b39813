"""The pytest plugin's entry point: its hooks. The marker and the fixtures are in :mod:`~pytest_isoenv.plugin.fixtures`.

pytest imports this module in every run of every project whose venv has the
plugin, so it imports only what registering the options, the marker and the
fixtures needs. The core (the session's envs, the cache, the installers,
finding interpreters) is started by :func:`~pytest_isoenv.plugin.state.session_envs`
when a test first asks for an env or a command needs it (:mod:`pytest_isoenv.plugin.core`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_isoenv.errors import IsoEnvError, SharedEnvError, SpecError
from pytest_isoenv.plugin import access, activation, fixtures, options
from pytest_isoenv.plugin import xdist as workers
from pytest_isoenv.plugin.access import ENVS
from pytest_isoenv.plugin.coverage import COVERAGE_LINES, CoverageHooks, wants_measurement
from pytest_isoenv.plugin.fixtures import MARKER, marker_spec
from pytest_isoenv.plugin.options import Policy, session_pythons
from pytest_isoenv.plugin.reporting import Reporter, XdistHooks, line_width
from pytest_isoenv.plugin.state import (
    BROAD_FIXTURE,
    CURRENT_ITEM,
    HEADER_SHOWN,
    LATE_HEADER,
    REPORTER,
    SKIPPED_BY_FIXTURE,
    session_envs,
    session_stats,
)

POLICY = pytest.StashKey[Policy]()
#: What the session's end said of pruning the cache, for the summary.
PRUNED = pytest.StashKey[str]()
#: The run's Python matrix (``--isoenv-pythons``), as specs.
PYTHONS = pytest.StashKey[list[str]]()
#: The cache root as given and resolved, each a string, worked out once: what collection never enters.
CACHE_ROOTS = pytest.StashKey[tuple[str, ...]]()
#: Seconds a session that asked for no env leaves the prune to later sessions after one pruned: pruning lists
#: every env, and such a session (most runs of a project that has a few isoenv tests) should cost nothing.
PRUNE_INTERVAL = 3600.0


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """A command that runs no tests works from a project whose ``conftest.py`` files cannot be imported here.

    They would be imported before ``pytest_cmdline_main`` runs the command; it
    needs none of them, so they are skipped as ``--noconftest`` skips them.
    """
    namespace = early_config.known_args_namespace
    if any(getattr(namespace, f"isoenv_{name}", False) for name in options.NO_TEST_COMMANDS):
        namespace.noconftest = True


def pytest_configure(config: pytest.Config) -> None:
    # No I/O and nothing of the core here: every run pays for this, and most never ask for an env.
    config.addinivalue_line("markers", MARKER)
    config.pluginmanager.register(fixtures, "isoenv-fixtures")
    config.pluginmanager.register(activation, "isoenv-activation")
    reporter = config.stash[REPORTER] = Reporter(config)
    config.stash[POLICY] = Policy.from_config(config)
    options.check(config)  # bad values are usage errors before anything runs
    if wants_measurement(config):
        config.pluginmanager.register(CoverageHooks(config), "isoenv-coverage")
    access.configure(config, lambda: session_envs(config))
    config.stash[PYTHONS] = session_pythons(config)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(
            XdistHooks(config, reporter, lambda create: session_stats(config, create=create)), "isoenv-xdist"
        )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Neither collect nor walk the cache, whatever its name and wherever it is.

    A cache inside the rootdir holds other projects' tests (pip's vendored ones) and is large:
    pytest must not enter it. A string comparison per path: no I/O.
    """
    roots = config.stash.get(CACHE_ROOTS, None)
    if roots is None:
        # From the options, not the session's envs: the core need not have started for collection.
        root = options.cache_dir(config)
        # pytest's paths may reach the cache through a link, or the cache may be one.
        roots = config.stash[CACHE_ROOTS] = tuple(dict.fromkeys((str(root), os.path.realpath(root))))
    path = str(collection_path)
    return True if any(path == root or path.startswith(root + os.sep) for root in roots) else None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if any(config.getoption(f"isoenv_{name}") for name in options.COMMANDS):
        from pytest_isoenv.plugin import commands as manage

        return manage.run_command(config)
    if config.getoption("isoenv_plan_key"):
        # Collection only, in this process (xdist does not distribute a collect-only run), and stdout
        # is the key alone: the terminal reporter is not started.
        config.option.collectonly = True
        config.pluginmanager.set_blocked("terminalreporter")
        return None
    if not config.getoption("isoenv_list_pythons"):
        return None
    from pytest_isoenv.plugin import matrix
    from pytest_isoenv.session.envs import SessionEnvs

    envs = SessionEnvs(options.settings_from_config(config))
    try:
        lines = matrix.report(
            envs.discovery, envs.installer(envs.spec(())), session_pythons(config), line_width(config)
        )
    except IsoEnvError as exc:
        raise pytest.UsageError(str(exc)) from None
    print("\n".join(lines))
    return 0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # The Python matrix first, so that ids read [py3.12-attrs==22.*].
    if "isoenv_python" in metafunc.fixturenames:
        _python_matrix(metafunc)
    if "isoenv_alternatives" in metafunc.fixturenames:
        from pytest_isoenv.plugin import matrix

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
    from pytest_isoenv.plugin import matrix

    marker = metafunc.definition.get_closest_marker("isoenv")
    session: list[str] = metafunc.config.stash[PYTHONS]
    config = metafunc.config
    try:
        params = matrix.params_for(
            session,
            marker.kwargs.get("python") if marker is not None else None,
            lambda spec, wanted: session_envs(config).discovery.covers(spec, wanted),
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
    """The plugin's settings; the installer as set, since choosing one reads configuration and looks for uv.

    Once the core starts (the first env), the installer chosen, with why, and
    its warnings are said in the summary (see :func:`session_envs`).
    """
    pythons = config.stash[PYTHONS]
    if pythons or ENVS in config.stash:
        # The Python matrix's lines need its interpreters found: a run with a matrix starts the core here.
        from pytest_isoenv.plugin import core, matrix

        envs = session_envs(config)
        lines = core.installer_lines(config, envs)
    else:
        lines = [f"isoenv: cache {options.cache_dir(config)}, installer {options.get(config, 'installer') or 'auto'}"]
    misread = options.misread_path_option(config)
    if misread:
        lines.append(f"isoenv: {misread}")
    resolution = options.parse_resolution(config)
    if resolution != "highest":
        lines.append(f"isoenv: resolution {resolution} (--isoenv-resolution): keyed apart from highest")
    lines += [
        f"isoenv: with {requirement} (--isoenv-with): in every env, replacing any requirement of the same name "
        "that a marker or get() asks for"
        for requirement in options.parse_with(config)
    ]
    if pythons:
        discovery = session_envs(config).discovery
        lines += [f"isoenv: python {spec}: {matrix.describe(discovery, spec)}" for spec in pythons]
    config.stash[HEADER_SHOWN] = lines
    return lines


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if workers.worker_id(config) is not None:
        return
    plan_key, plan = config.getoption("isoenv_plan_key"), config.getoption("isoenv_plan")
    if not plan_key and not plan:
        return
    from pytest_isoenv.plugin import commands as manage

    envs = session_envs(config)
    if plan_key:
        if session.testsfailed:
            sys.stderr.write("isoenv: collection failed, so there is no plan key; run without --isoenv-plan-key\n")
        else:
            uses, _ = manage.plan_uses(envs, session.items, lambda item: marker_spec(envs, item))
            problem, no_key = manage.plan_key_problem(uses, session.items)
            if no_key:
                raise pytest.UsageError(problem)
            if problem:
                sys.stderr.write(problem + "\n")
            sys.stdout.write(manage.plan_key(uses) + "\n")
            sys.stdout.flush()
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if plan and reporter is not None:
        for line in manage.plan_lines(envs, session.items, lambda item: marker_spec(envs, item)):
            reporter.write_line(line)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    policy = config.stash[POLICY]
    envs = config.stash.get(ENVS, None)
    if envs is not None:
        from pytest_isoenv.run.background import PROCESSES

        PROCESSES.stop(wide=True)
    elif not policy.auto or workers.worker_id(config) is not None or not _prune_due(config, policy):
        return  # the core never started, and there is nothing for this process to prune now: it need not start
    from pytest_isoenv.plugin import commands as manage

    try:
        line = manage.auto_prune(config, envs, policy)
    except IsoEnvError as exc:
        line = f"isoenv: pruning the cache failed: {exc}"
    if line:
        config.stash[PRUNED] = line


def _prune_due(config: pytest.Config, policy: Policy) -> bool:
    """Whether a session that asked for no env prunes the cache at its end: two ``stat`` calls decide.

    It does if the cache has envs and no session's end pruned it in the last
    :data:`PRUNE_INTERVAL` seconds (or ``isoenv_max_age``, if shorter).
    """
    root = options.cache_dir(config)
    if not (root / "envs").is_dir():
        return False
    from pytest_isoenv.store.pruned import pruned_at

    last = pruned_at(root)
    return last is None or time.time() - last >= min(PRUNE_INTERVAL, policy.max_age * 86400)


def pytest_unconfigure(config: pytest.Config) -> None:
    envs = config.stash.get(ENVS, None)
    if envs is None:
        return  # the core never started: no warm interpreter, no lease
    from pytest_isoenv.plugin import core

    core.stop(config, envs)


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
    items = [item for item in session.items if activation.uses_env(item)]
    if not items:
        return  # no selected test uses the isoenv fixture: the core need not start
    from pytest_isoenv.session.prebuild import prebuild

    envs = session_envs(config)
    specs = []
    for item in items:
        with contextlib.suppress(SpecError):  # the test's setup reports it, naming the test
            specs.append(marker_spec(envs, item))
    # xdist workers share the CPUs: together they run about one build per CPU, each worker at least one.
    prebuild(envs, specs, progress=config.stash[REPORTER], jobs=workers.build_jobs(config))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    item.config.stash[CURRENT_ITEM] = item
    result = yield
    matrix_python = getattr(getattr(item, "callspec", None), "params", {}).get("isoenv_python")
    if matrix_python is not None:
        from pytest_isoenv.plugin import matrix

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
    stash = request.config.stash
    outer = stash.get(BROAD_FIXTURE, None)
    stash[BROAD_FIXTURE] = (fixturedef.argname, fixturedef.scope) if fixturedef.scope != "function" else None
    try:
        return (yield)
    finally:
        stash[BROAD_FIXTURE] = outer


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "isoenv_python" in params or "isoenv_alternatives" in params:
        from pytest_isoenv.plugin import matrix

        cell = matrix.cell_of(params)
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
    # What runs between tests (session teardown) is in no test and on no test's Python.
    del item.config.stash[CURRENT_ITEM]
    envs = item.config.stash.get(ENVS, None)
    if envs is None:
        return  # the core never started: no env was handed out, and nothing was started with popen()
    from pytest_isoenv.run.background import PROCESSES

    stopped = PROCESSES.stop()
    if stopped:
        item.add_report_section("teardown", "isoenv", "processes started with popen():\n" + "\n".join(stopped))
    try:
        envs.check_shared(item.nodeid)
        return
    except SharedEnvError as exc:
        error = str(exc)
    pytest.fail(error, pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The plugin's summary, under a section line of its own: envs built, pruning, the matrix, warm, coverage."""
    reporter = config.stash[REPORTER]
    stats = session_stats(config)
    lines = reporter.summary_lines(stats) if stats is not None else []
    # First, the installer chosen once the first env was asked for (optional), and its warnings (not).
    late = config.stash.get(LATE_HEADER, [])
    warnings = [line for line in late if line.startswith("isoenv: warning:")]
    lines = reporter.optional([line for line in late if line not in warnings]) + warnings + lines
    optional = [config.stash[PRUNED]] if PRUNED in config.stash else []
    if any(getattr(report, "isoenv_cell", None) for reports in terminalreporter.stats.values() for report in reports):
        from pytest_isoenv.plugin import matrix

        cells: dict[str, Counter[str]] = {}
        for outcome in matrix.OUTCOMES:
            for report in terminalreporter.stats.get(outcome, ()):
                cell = getattr(report, "isoenv_cell", None)
                if cell is not None:
                    cells.setdefault(cell, Counter())[outcome] += 1
        optional += matrix.summary_lines(cells)
    if ENVS in config.stash:
        from pytest_isoenv.plugin import core

        optional += core.warm_summary()
    # Problems with the coverage data are not optional: they change what the coverage report says.
    reporter.summary(terminalreporter, lines + reporter.optional(optional) + config.stash.get(COVERAGE_LINES, []))
