"""The documentation's tests' fixtures: the wheels their examples install, a pytest run in a folder of the example's
files alone.

The examples install real packages (requests, flask, black, setuptools): their wheels are downloaded once from
the package index into pytest's cache, and every run of an example is offline on that folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from docpages import EXAMPLE_REQUIREMENTS, RunPytest
from helpers import cached_download


@pytest.fixture(scope="session")
def example_wheels(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of :data:`EXAMPLE_REQUIREMENTS` and their dependencies, for this interpreter."""
    return cached_download(pytestconfig, tmp_path_factory, EXAMPLE_REQUIREMENTS)


@pytest.fixture
def run_pytest(tmp_path: Path, request: pytest.FixtureRequest) -> RunPytest:
    """Run ``python -m pytest ARGS`` in a folder, as a user would, offline on :func:`example_wheels`.

    With ``installs=False`` (a run that stops before it installs anything), on an empty folder instead: the
    wheels are then not downloaded.

    The index settings go on the command line (no ini file is added to the folder), and the envs go into a cache
    of the test's own, so the first run builds them. The installer is uv, as the pages' output shows.
    """
    cache = tmp_path / "isoenv-cache"

    def run(
        folder: Path, *args: str, env: dict[str, str] | None = None, installs: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if installs:
            wheels: Path = request.getfixturevalue("example_wheels")
        else:
            wheels = tmp_path / "no-wheels"
            wheels.mkdir(exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--isoenv-offline",
            f"--isoenv-find-links={wheels}",
            "--isoenv-installer=uv",
            *args,  # last, so that they win over the settings above
        ]
        environ = {**os.environ, "PYTEST_ISOENV_CACHE_DIR": str(cache), **(env or {})}
        environ.pop("PYTEST_ADDOPTS", None)
        environ.pop("PYTEST_XDIST_WORKER", None)
        environ.pop("COLUMNS", None)  # uv wraps its messages to it; the pages show them unwrapped
        return subprocess.run(command, cwd=folder, env=environ, capture_output=True, text=True, check=False)

    return run
