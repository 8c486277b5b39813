"""The example project's suite, run the way the README says: in a fresh env with both projects installed editable.

Like the rest of the suite it installs from a wheelhouse of its own, offline: the plugin's dependencies
repacked from this environment, a small stand-in for ``tabulate``, and the two projects' build backends.
Only the backends come from the package index, once: they are kept in pytest's cache, so later runs
need no index at all.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import isoenv_testbackend as backend
import pytest
from helpers import INSTALLER, write_host_wheels

from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.installers.uv import find_uv
from pytest_isoenv.session.envs import SessionEnvs
from pytest_isoenv.session.settings import Settings
from pytest_isoenv.spec.index import IndexOptions

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "greeter"

#: What the example's ``greet --table`` imports of tabulate: ``tabulate(rows, headers=...)`` in its default
#: format, a header, a rule and a row per line, columns left-aligned. Python 3.9 and up, as the example.
TABULATE = '''\
"""A stand-in for tabulate: ``tabulate(rows, headers=())`` in its default ("simple") format."""


def tabulate(tabular_data, headers=()):
    rows = [[str(cell) for cell in row] for row in tabular_data]
    header = [str(name) for name in headers]
    widths = [max(len(cell) for cell in column) for column in zip(*([header] if header else []), *rows)]

    def line(cells):
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    lines = [line(header), line(["-" * width for width in widths])] if header else []
    return "\\n".join(lines + [line(row) for row in rows])
'''


def build_requires(project: Path) -> list[str]:
    """The ``[build-system] requires`` of *project*'s pyproject.toml."""
    with (project / "pyproject.toml").open("rb") as stream:
        return list(tomllib.load(stream)["build-system"]["requires"])


def oldest_python(project: Path) -> str:
    """The oldest Python *project* supports, from its ``requires-python = ">=X.Y"``."""
    with (project / "pyproject.toml").open("rb") as stream:
        found = re.fullmatch(r">=\s*(\d+\.\d+)", tomllib.load(stream)["project"]["requires-python"].strip())
    assert found, f"{project}: requires-python is not of the form '>=X.Y'"
    return found[1]


def download(folder: Path, requirements: Sequence[str], python: str | None = None) -> None:
    """Download wheels of *requirements* and what they need from the index into *folder*, for Python *python*."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:", "--dest", str(folder)]
    if python is not None:
        command += ["--python-version", python]
    proc = subprocess.run([*command, *requirements], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(
            f"could not download the build backends {list(requirements)} from the package index "
            f"(exit code {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )


@pytest.fixture(scope="session")
def build_backends(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of wheels of the two projects' build backends and their dependencies, from the package index.

    The example's backend for every Python it supports: for its oldest and for this one (newer
    releases of a backend may leave older Pythons behind). Kept in pytest's cache, under a name
    made of what was asked, so the index is asked once; without the cache, once a session.
    """
    wanted: dict[str, list[str]] = {}
    wanted.setdefault(f"{sys.version_info[0]}.{sys.version_info[1]}", []).extend(build_requires(ROOT))
    for python in {f"{sys.version_info[0]}.{sys.version_info[1]}", oldest_python(EXAMPLE)}:
        wanted.setdefault(python, []).extend(build_requires(EXAMPLE))
    cache: pytest.Cache | None = getattr(pytestconfig, "cache", None)
    if cache is None:
        folder = tmp_path_factory.mktemp("build-backends")
        for python, requirements in wanted.items():
            download(folder, requirements, python)
        return folder
    name = hashlib.sha256(repr(sorted(wanted.items())).encode()).hexdigest()[:16]
    folder = cache.mkdir("isoenv-example-backends") / name
    if folder.is_dir():
        return folder
    partial = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f"{name}-"))
    try:
        for python, requirements in wanted.items():
            download(partial, requirements, python)
        try:
            partial.rename(folder)
        except OSError:
            if not folder.is_dir():  # not a lost race: another session renamed its own first
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


@pytest.fixture(scope="session")
def example_wheelhouse(tmp_path_factory: pytest.TempPathFactory, build_backends: Path) -> Path:
    """Everything the example's run installs, so it needs no index.

    The plugin's run-time dependencies repacked from this environment's installed
    files, the tabulate stand-in (:data:`TABULATE`), and the build backends.
    """
    folder = tmp_path_factory.mktemp("example-wheelhouse")
    write_host_wheels(folder, "pytest-isoenv")
    backend.write_wheel(folder, "tabulate", "0.9.0", files={"tabulate.py": TABULATE})
    for wheel in build_backends.glob("*.whl"):
        if not (folder / wheel.name).exists():  # a repacked dependency of the plugin is the same release
            shutil.copy(wheel, folder)
    return folder


@pytest.mark.slow
def test_the_example_suite_passes_as_the_readme_runs_it(
    shared_cache: Path, tmp_path: Path, example_wheelhouse: Path
) -> None:
    # python -m pip install -e . -e examples/greeter
    index = IndexOptions(find_links=(str(example_wheelhouse),), offline=True)
    envs = SessionEnvs(
        Settings(cache_dir=shared_cache, rootdir=ROOT, run_id=uuid.uuid4().hex, index=index, installer=INSTALLER)
    )
    env = IsoEnvFactory(envs).get(editable=[ROOT, EXAMPLE])
    envs.close()
    # The env has the plugin without its uv extra, so the run looks for uv on PATH: put the suite's own there.
    uv = find_uv()
    path = os.pathsep.join([str(env.bin_dir), *([str(uv.parent)] if uv else []), os.environ.get("PATH", "")])
    # python -m pytest examples/greeter (its envs in a cache of its own, so the first run builds them)
    result = env.run(
        "python",
        "-m",
        "pytest",
        "examples/greeter",
        "-p",
        "no:cacheprovider",
        "--isoenv-offline",
        f"--isoenv-find-links={example_wheelhouse}",
        f"--isoenv-installer={INSTALLER}",
        cwd=ROOT,
        env={"PYTEST_ISOENV_CACHE_DIR": str(tmp_path / "cache"), "PATH": path},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rootdir: {EXAMPLE}" in result.stdout
    assert "tests/test_cli.py" in result.stdout
    assert " passed" in result.stdout.splitlines()[-1]
