"""Shared test helpers: a local wheelhouse, tiny local projects, and a pytester set up to use them.

Everything the tests install comes from here, so the suite never depends on a
package index or its contents.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import isoenv_testbackend as backend
import pytest
from helpers import INSTALLER, MakeEnvs, MakeFactory, MakeProject, write_project, write_versions

from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.installers.choice import installer_class
from pytest_isoenv.session.envs import SessionEnvs, TestContext
from pytest_isoenv.session.settings import Settings
from pytest_isoenv.spec.index import IndexOptions
from pytest_isoenv.text import LineSink


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Refuse to run without pytest-timeout, which gives every test its time limit (``timeout`` in pyproject.toml)."""
    if not pluginmanager.has_plugin("timeout"):
        raise pytest.UsageError(
            "the suite needs pytest-timeout (plugin 'timeout'), which gives every test a time limit. "
            'Install the test extra: python -m pip install -e ".[test]"; to wait without a limit, pass --timeout=0'
        )


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of small real wheels: alpha 1.0 and 2.0, beta (needs alpha<2), clitool (a console script)."""
    path = tmp_path_factory.mktemp("wheelhouse")
    write_versions(path, "alpha", "1.0", "2.0")
    backend.write_wheel(path, "beta", "1.0", requires=["alpha<2"], files={"beta/__init__.py": "import alpha\n"})
    backend.write_wheel(
        path,
        "clitool",
        "1.0",
        files={"clitool/__init__.py": "def main():\n    print('clitool says hi')\n"},
        scripts={"clitool": "clitool:main"},
    )
    return path


@pytest.fixture(scope="session")
def installer_name() -> str:
    """The installer the suite's envs are built with: what ``ISOENV_TEST_INSTALLER`` resolves to."""
    return installer_class(INSTALLER).name


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache root for the tests that only need envs, so each distinct env is built once per run."""
    return tmp_path_factory.mktemp("isoenv-cache")


@pytest.fixture(scope="session")
def project_writer() -> Callable[..., Path]:
    """:func:`write_project` itself, for fixtures that outlive one test (``make_project`` writes into its tmp_path)."""
    return write_project


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """Factory: ``make_project(name, version="0.1", dependencies=(), scripts=None, body="", parent=tmp_path)``."""

    def make(name: str, version: str = "0.1", *, parent: Path | None = None, **options: Any) -> Path:
        return write_project(parent or tmp_path, name, version, **options)

    return make


@pytest.fixture
def make_envs(tmp_path: Path, wheelhouse: Path, shared_cache: Path) -> MakeEnvs:
    """Factory of :class:`SessionEnvs` objects, each a new "session", offline on the test wheelhouse."""

    def make(
        cache_dir: Path | None = None,
        *,
        warn: LineSink | None = None,
        current_test: Callable[[], str | None] | None = None,
        **settings: Any,
    ) -> SessionEnvs:
        settings.setdefault("installer", INSTALLER)
        return SessionEnvs(
            Settings(
                cache_dir=cache_dir or shared_cache,
                rootdir=tmp_path,
                run_id=uuid.uuid4().hex,
                index=IndexOptions(find_links=(str(wheelhouse),), offline=True),
                **settings,
            ),
            private_root=lambda: Path(tempfile.mkdtemp(dir=tmp_path, prefix="private-")),
            context=None if current_test is None else (lambda: TestContext(current_test())),
            warn=warn,
        )

    return make


@pytest.fixture
def make_factory(make_envs: MakeEnvs) -> MakeFactory:
    """Factory of :class:`IsoEnvFactory` objects, each of a new "session" (arguments as ``make_envs``)."""

    def make(
        cache_dir: Path | None = None,
        *,
        warn: LineSink | None = None,
        current_test: Callable[[], str | None] | None = None,
        **settings: Any,
    ) -> IsoEnvFactory:
        return IsoEnvFactory(make_envs(cache_dir, warn=warn, current_test=current_test, **settings))

    return make


@pytest.fixture
def pytester(
    pytester: pytest.Pytester, wheelhouse: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """pytester whose runs use the shared test cache and install offline from the test wheelhouse."""
    monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(shared_cache))
    pytester.makeini(
        f"[pytest]\nisoenv_find_links = {wheelhouse}\nisoenv_offline = true\nisoenv_installer = {INSTALLER}\n"
    )
    return pytester


@pytest.fixture
def private_cache(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache root of the test's own (not yet created), also used by its pytester runs.

    For tests that damage entries, count builds or need their envs missing, which the shared cache must not see.
    """
    path = tmp_path / "cache"
    monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def real_pythons() -> dict[tuple[int, int], Path]:
    """Real CPython interpreters installed on this machine, by (major, minor), pytest's own included.

    Found without the plugin (pyenv's versions folder and the usual system
    places, each asked for its version), so tests of discovery can check it.
    """
    pyenv = Path(os.path.expanduser(os.environ.get("PYENV_ROOT") or "~/.pyenv"))
    candidates = [Path(sys.executable), *sorted(pyenv.glob("versions/*/bin/python3"))]
    candidates += sorted(Path("/usr/bin").glob("python3.*")) + sorted(Path("/usr/local/bin").glob("python3.*"))
    found: dict[tuple[int, int], Path] = {}
    for exe in candidates:
        if not exe.is_file() or exe.name.endswith("-config"):
            continue
        proc = subprocess.run(
            [str(exe), "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        parts = proc.stdout.split()
        if proc.returncode == 0 and len(parts) == 3 and parts[0] == "cpython":
            found.setdefault((int(parts[1]), int(parts[2])), Path(os.path.realpath(exe)))
    return found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the figures tests recorded with ``record_property("figure", ...)``: what this run held.

    Recorded properties travel with the reports, so this works under xdist too.
    """
    figures = [
        (report.nodeid, value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if isinstance(report, pytest.TestReport) and report.when == "call"
        for name, value in report.user_properties
        if name == "figure"
    ]
    if figures:
        terminalreporter.section("figures")
        for nodeid, value in figures:
            terminalreporter.line(f"{nodeid}: {value}")
