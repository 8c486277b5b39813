"""Acceptance tests: the plugin's behaviour in real pytest runs (pytester), with real envs."""

from __future__ import annotations

import pytest


def test_marker_gives_the_test_a_ready_env(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv("beta", "clitool")
        def test_env(isoenv):
            assert isoenv.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip() == "1.0"
            assert isoenv.run("clitool").stdout.strip() == "clitool says hi"
            assert isoenv.installed()["beta"] == "1.0"
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["isoenv: cache *", "isoenv: * reused, * built*"])
