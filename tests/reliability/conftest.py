"""Fixtures for the reliability tests: caches of their own, build counting, factories, a base interpreter copy.

Each reliability test records the figure it established with ``figure(...)``;
the suite prints them all at the end (see ``pytest_terminal_summary`` in
``tests/conftest.py``), so every run states what it held.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import EnvsFor, MakeEnvs
from reliability_helpers import BuildTrace, Figure, install_base

from pytest_isoenv.session.envs import SessionEnvs


@pytest.fixture
def figure(record_property: Callable[[str, object], None]) -> Figure:
    """Record the figure a test established; the terminal summary lists them under "figures"."""

    def record(text: str) -> None:
        record_property("figure", text)

    return record


@pytest.fixture
def build_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BuildTrace:
    """Every build of a local project made by the test backend, in this process and its children, is counted."""
    trace = BuildTrace(tmp_path / "builds.trace")
    monkeypatch.setenv("ISOENV_TESTBACKEND_TRACE", str(trace.path))
    return trace


@pytest.fixture
def build_gate(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The gate of builds: the test backend holds each build of a local project until this file exists.

    Not created: a test (or :func:`reliability_helpers.run_together`) opens it when the builds may go on.
    """
    gate = pytester.path / "gate"
    monkeypatch.setenv("ISOENV_TESTBACKEND_GATE", str(gate))
    return gate


@pytest.fixture
def envs_for(make_envs: MakeEnvs) -> EnvsFor:
    """``envs_for(cache)``: a new session's envs on *cache*, and the list its warnings go to."""

    def make(cache: Path, **settings: object) -> tuple[SessionEnvs, list[str]]:
        warnings: list[str] = []
        return make_envs(cache, warn=warnings.append, **settings), warnings

    return make


@pytest.fixture
def base_copy(tmp_path: Path) -> Path:
    """A base interpreter the test owns (see :func:`install_base`), made from the running one; its executable.

    So a test can remove, replace or upgrade "the base interpreter" of an env for real.
    """
    if sys.platform == "win32":
        pytest.skip("copies a POSIX interpreter layout")
    exe = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    return install_base(exe, Path(sys.base_prefix), tmp_path / "base", exe.name)
