"""Measuring env processes while the session measures coverage: when to, and the hook that merges their data.

The measurement itself is :class:`pytest_isoenv.run.coverage.Measurement`.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from pytest_isoenv.plugin import options

if TYPE_CHECKING:
    from pytest_isoenv.run.coverage import Measurement

#: The measurement of env processes, made when the session's core starts (the first env or command).
MEASUREMENT = pytest.StashKey["Measurement | None"]()


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


def wants_measurement(config: pytest.Config) -> bool:
    """Whether env processes are to be measured: the session measures coverage and ``isoenv_coverage`` is on."""
    return bool(options.get(config, "coverage")) and session_measures(config)


def measurement_from_config(config: pytest.Config) -> Measurement | None:
    """The measurement of env processes, if :func:`wants_measurement` and coverage.py is installed here."""
    if not wants_measurement(config):
        return None
    from pytest_isoenv.run.coverage import Measurement, host_coverage_version

    version = host_coverage_version()
    return None if version is None else Measurement(version, config.invocation_params.dir)


#: Lines for the terminal summary about the coverage of env processes (problems merging their data).
COVERAGE_LINES = pytest.StashKey[list[str]]()


class CoverageHooks:
    """Registered only while the session measures coverage: the envs' data join the session's.

    Registered when the session is configured, since a hook wrapper registered
    while the test loop runs would not wrap it; it has work only if the core
    started and made a :data:`MEASUREMENT`.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    # Innermost: done before pytest-cov (or coverage run) stops, saves and combines its data.
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            measurement = self.config.stash.get(MEASUREMENT, None)
            if measurement is not None:
                self._finish(measurement)

    def _finish(self, measurement: Measurement) -> None:
        from pytest_isoenv.run.background import PROCESSES

        PROCESSES.stop(wide=True)  # a stopped server saves its data (sigterm = True)
        _, problems = measurement.finish()
        lines = sorted(measurement.notes) + problems
        self.config.stash[COVERAGE_LINES] = [f"isoenv: coverage of env processes: {line}" for line in lines]
