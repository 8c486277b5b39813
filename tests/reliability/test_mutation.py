"""A test that changes a shared env is an error of that test, and no later test sees the change."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_helpers import Figure


@pytest.mark.slow
def test_changing_a_shared_env_is_reported_and_undone(
    pytester: pytest.Pytester, private_cache: Path, wheelhouse: Path, figure: Figure
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        PIP = ("python", "-m", "pip", "--disable-pip-version-check")

        @pytest.mark.isoenv("alpha==1.0")
        def test_upgrades(isoenv):
            isoenv.run(*PIP, "install", "--no-index", "--find-links", {str(wheelhouse)!r}, "alpha==2.0")

        @pytest.mark.isoenv("alpha==1.0")
        def test_after_upgrade(isoenv):
            assert isoenv.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip() == "1.0"

        @pytest.fixture(scope="session")
        def beta_env(isoenv_factory):
            return isoenv_factory.get("beta")

        def test_uninstalls(beta_env):
            beta_env.run(*PIP, "uninstall", "--yes", "alpha")

        def test_after_uninstall(beta_env):
            beta_env.run("python", "-c", "import beta")

        def test_only_reads(beta_env):
            # Imports write bytecode caches into the env: not a change.
            beta_env.run("python", "-c", "import alpha, beta, json")
            beta_env.run(*PIP, "list")
        """
    )
    result = pytester.runpytest()

    result.assert_outcomes(passed=5, errors=2)
    errors = [line for line in result.stdout.lines if line.startswith("ERROR ")]
    assert "During handling" not in result.stdout.str()
    assert [e.split()[1] for e in errors] == [
        "test_changing_a_shared_env_is_reported_and_undone.py::test_upgrades",
        "test_changing_a_shared_env_is_reported_and_undone.py::test_uninstalls",
    ]
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_upgrades*",
            "the shared env (alpha==1.0) [[]*[]] was changed by *::test_upgrades: its site-packages * changed since it "
            "was built (added alpha-2.0.dist-info; removed alpha-1.0.dist-info). It was thrown away and rebuilt, as "
            "other tests reuse it. Give the test an env of its own with private=True *",
            "*ERROR at teardown of test_uninstalls*",
            "the shared env (beta) [[]*[]] was changed by *::test_uninstalls: its site-packages * changed since it was "
            "built (removed alpha, alpha-1.0.dist-info). It was thrown away and rebuilt*",
        ]
    )
    message = next(line for line in result.stdout.lines if "was changed by" in line and "::test_upgrades" in line)
    figure(f"2 of 2 changes to shared envs reported at teardown and undone; 3 later tests passed; {message!r}")
