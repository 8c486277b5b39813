"""The example project's suite, run the way the README says: in a fresh env with both projects installed editable.

Unlike the rest of the suite this uses the package index: the example installs its build
backend and a third-party package from it, exactly as a user running the README's command does.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.session.envs import SessionEnvs
from pytest_isoenv.session.settings import Settings

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "greeter"


@pytest.mark.slow
def test_the_example_suite_passes_as_the_readme_runs_it(shared_cache: Path, tmp_path: Path) -> None:
    # python -m pip install -e . -e examples/greeter
    envs = SessionEnvs(Settings(cache_dir=shared_cache, rootdir=ROOT, run_id=uuid.uuid4().hex))
    env = IsoEnvFactory(envs).get(editable=[ROOT, EXAMPLE])
    envs.close()
    # python -m pytest examples/greeter (its envs in a cache of its own, so the first run builds them)
    result = env.run(
        "python",
        "-m",
        "pytest",
        "examples/greeter",
        "-p",
        "no:cacheprovider",
        cwd=ROOT,
        env={"PYTEST_ISOENV_CACHE_DIR": str(tmp_path / "cache")},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rootdir: {EXAMPLE}" in result.stdout
    assert "tests/test_cli.py" in result.stdout
    assert " passed" in result.stdout.splitlines()[-1]
