"""What the plugin's hooks and fixtures share for one session: its stash keys, and the core started on first use.

The core (the session's envs, the cache, the installers, finding interpreters)
starts in :func:`session_envs` when a test first asks for an env or a command
needs it (:mod:`pytest_isoenv.plugin.core`); until then only these keys exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_isoenv.plugin import access
from pytest_isoenv.plugin import xdist as workers
from pytest_isoenv.plugin.access import ENVS
from pytest_isoenv.plugin.coverage import MEASUREMENT, measurement_from_config
from pytest_isoenv.plugin.reporting import Reporter

if TYPE_CHECKING:
    from pytest_isoenv.session.envs import SessionEnvs, TestContext
    from pytest_isoenv.session.stats import Stats

#: The report lines of the session, made when it is configured.
REPORTER = pytest.StashKey[Reporter]()
#: The counts of a session whose core never started: what its xdist workers built and reused.
STATS = pytest.StashKey["Stats"]()
#: The test being run, and the fixture broader than a test being set up for it (its name and scope), if one is:
#: plain pytest objects, which the core reads as a ``TestContext`` when it needs to know them.
CURRENT_ITEM = pytest.StashKey[pytest.Item]()
BROAD_FIXTURE = pytest.StashKey["tuple[str, str] | None"]()
#: The report header's lines, once written: what the core adds to them when it starts goes to the summary.
HEADER_SHOWN = pytest.StashKey[list[str]]()
#: What the header would have said had the core started before it: the summary says it (see :func:`session_envs`).
LATE_HEADER = pytest.StashKey[list[str]]()
#: Set on a test that the ``isoenv`` fixture skipped: its report then points at the test, as a skip mark's does.
SKIPPED_BY_FIXTURE = pytest.StashKey[bool]()


def session_envs(config: pytest.Config) -> SessionEnvs:
    """The session's envs, the core started on the first call: when a test first asks for an env or a command runs.

    Nothing is read from disk here either: the cache, the interpreters and the
    installers are looked at when an env is asked for.
    """
    envs = config.stash.get(ENVS, None)
    if envs is not None:
        return envs
    from pytest_isoenv.plugin import core
    from pytest_isoenv.run.background import PROCESSES

    reporter = config.stash[REPORTER]
    measurement = config.stash[MEASUREMENT] = measurement_from_config(config)
    envs = config.stash[ENVS] = core.start(
        config,
        reporter,
        private_root=lambda: access.private_root(config),
        context=lambda: _test_context(config),
        measurement=measurement,
    )
    # What a fixture broader than a test starts with popen() lives as long as its scope.
    PROCESSES.in_wide_fixture = lambda: config.stash.get(BROAD_FIXTURE, None) is not None
    shown = config.stash.get(HEADER_SHOWN, None)
    if shown is not None and workers.worker_id(config) is None:
        # In the summary, not now: a line written while tests run breaks their progress line in two.
        config.stash[LATE_HEADER] = [line for line in core.installer_lines(config, envs) if line not in shown]
    return envs


def session_stats(config: pytest.Config, *, create: bool = False) -> Stats | None:
    """The session's counts of envs built and reused: the core's, or (with *create*) made to merge workers' into."""
    envs = config.stash.get(ENVS, None)
    if envs is not None:
        return envs.stats
    if STATS not in config.stash and create:
        from pytest_isoenv.session.stats import Stats

        config.stash[STATS] = Stats()
    return config.stash.get(STATS, None)


def _test_context(config: pytest.Config) -> TestContext:
    from pytest_isoenv.session.envs import TestContext

    item = config.stash.get(CURRENT_ITEM, None)
    if item is None:
        return TestContext(broad_fixture=config.stash.get(BROAD_FIXTURE, None))
    matrix_python = getattr(getattr(item, "callspec", None), "params", {}).get("isoenv_python")
    return TestContext(item.nodeid, matrix_python, config.stash.get(BROAD_FIXTURE, None))
