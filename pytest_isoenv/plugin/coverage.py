"""Measuring env processes while the session measures coverage: when to, and the hook that merges their data.

The measurement itself is :class:`pytest_isoenv.run.coverage.Measurement`.
"""

from __future__ import annotations

import sys
from collections.abc import Generator

import pytest

from pytest_isoenv.plugin import options
from pytest_isoenv.run.background import PROCESSES
from pytest_isoenv.run.coverage import Measurement, host_coverage_version


def session_measures(config: pytest.Config) -> bool:
    """Whether this pytest process measures coverage: pytest-cov's ``--cov``, or started by ``coverage run``."""
    # Not imported means not measuring here (coverage run and pytest-cov import it first): stay cheap.
    coverage = sys.modules.get("coverage")
    if coverage is not None and getattr(coverage, "Coverage", None) is not None and coverage.Coverage.current():
        return True
    # An xdist worker starts pytest-cov's measurement only at session start, after the plugin is configured.
    return (
        config.pluginmanager.hasplugin("_cov")
        and bool(config.getoption("cov_source", None))
        and not config.getoption("no_cov", False)
    )


def measurement_from_config(config: pytest.Config) -> Measurement | None:
    """The measurement of env processes, if the session measures coverage and ``isoenv_coverage`` is on."""
    version = host_coverage_version()
    if version is None or not options.get(config, "coverage") or not session_measures(config):
        return None
    return Measurement(version, config.invocation_params.dir)


#: Lines for the terminal summary about the coverage of env processes (problems merging their data).
COVERAGE_LINES = pytest.StashKey[list[str]]()


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
