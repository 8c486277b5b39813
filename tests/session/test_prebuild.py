"""Pre-build: the envs the selected tests need are built before the first test runs, several at once."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from helpers import MakeEnvs, marked_tests

from pytest_isoenv import EnvSpec
from pytest_isoenv.session.prebuild import prebuild
from pytest_isoenv.store.leases import ANY_GENERATION

TESTS = """
import pytest

@pytest.mark.isoenv("alpha==1.0")
def test_one(isoenv):
    assert isoenv.installed()["alpha"] == "1.0"

@pytest.mark.isoenv("beta")
def test_two(isoenv):
    assert isoenv.installed()["beta"] == "1.0"

@pytest.mark.isoenv("beta", private=True)
def test_three(isoenv):
    isoenv.install("clitool")
"""


@pytest.mark.slow
def test_missing_envs_are_built_before_the_tests_with_a_line_each(
    pytester: pytest.Pytester, private_cache: Path
) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "isoenv: building 2 envs before the tests, * at a time",
            "isoenv: [[]?/2] built in *s: * (py3.*, *)",
            "isoenv: [[]?/2] built in *s: * (py3.*, *)",
            "*.py ...*",
        ]
    )
    assert len(list((private_cache / "envs").iterdir())) == 2
    again = pytester.runpytest()
    again.assert_outcomes(passed=3)
    again.stdout.no_fnmatch_line("*building*")


@pytest.mark.slow
def test_no_prebuild_builds_when_tests_ask(pytester: pytest.Pytester, private_cache: Path) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--isoenv-no-prebuild")
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*before the tests*")
    result.stdout.fnmatch_lines(["isoenv: 2 envs built"])


def test_collect_only_builds_nothing(pytester: pytest.Pytester, private_cache: Path) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.OK
    assert not (private_cache / "envs").exists() or not list((private_cache / "envs").iterdir())


def test_bad_markers_and_failed_builds_do_not_stop_the_prebuild(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        marked_tests(
            test_bad_marker="3",
            test_unbuildable='"no-such-dist-anywhere"',
            test_unbuildable_too='"no-such-dist-anywhere"',
            test_fine='"alpha==1.0"',
        )
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines(["isoenv: * failed to build in *s: no-such-dist-anywhere*"])
    result.stdout.fnmatch_lines(["requirement 3 is a int, not a string* (in *::test_bad_marker)"])
    result.stdout.fnmatch_lines(["installing no-such-dist-anywhere failed (in *::test_unbuildable)"])
    result.stdout.fnmatch_lines(
        [
            "installing no-such-dist-anywhere failed earlier in this run: see the report of *::test_unbuildable for "
            "the error, and the log * (in *::test_unbuildable_too)"
        ]
    )


@pytest.mark.slow
def test_xdist_workers_share_the_building(pytester: pytest.Pytester, private_cache: Path, tmp_path: Path) -> None:
    builds = tmp_path / "builds.jsonl"
    pytester.makeconftest(
        f"""
        import json

        def pytest_testnodedown(node, error):
            stats = node.workeroutput["isoenv_report"]["stats"]
            with open({str(builds)!r}, "a") as stream:
                stream.write(json.dumps(sorted(stats["built"])) + "\\n")
        """
    )
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-n", "2")
    result.assert_outcomes(passed=3)
    per_worker = [json.loads(line) for line in builds.read_text().splitlines()]
    assert len(per_worker) == 2
    built = [key for keys in per_worker for key in keys]
    assert len(built) == len(set(built)) == 2, per_worker


@pytest.mark.parametrize("prebuild", [True, False], ids=["prebuild", "no-prebuild"])
def test_a_repair_is_reported_not_warned(pytester: pytest.Pytester, private_cache: Path, prebuild: bool) -> None:
    """An env rebuilt because it was broken is said at once and in the summary, and is no test's fault:
    under ``-W error`` every test still passes."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv("alpha==1.0")
        def test_uses_it(isoenv):
            pass

        def test_unrelated():
            pass
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)
    (record,) = private_cache.glob("envs/*/*/isoenv-record.json")
    record.unlink()  # as an interrupted build leaves it

    result = pytester.runpytest("-W", "error", *([] if prebuild else ["--isoenv-no-prebuild"]))
    result.assert_outcomes(passed=2)
    repaired = "isoenv: rebuilding env (alpha==1.0) [[]*[]]: it has no completion record (an interrupted build)"
    result.stdout.fnmatch_lines(
        [
            *(["isoenv: [[]1/1[]] built in *s: alpha==1.0 *"] if prebuild else []),
            repaired,
            "isoenv: 1 env built",
            "isoenv:   built  *  alpha==1.0",
            "isoenv: repaired: " + repaired.removeprefix("isoenv: "),
        ]
    )
    result.stdout.no_fnmatch_line("*Warning*")


def test_each_tests_spec_is_worked_out_once(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The prebuild, and then the test's ``isoenv`` fixture, use one spec: its arguments are validated once."""
    validated: list[str] = []
    from_arguments = EnvSpec.from_arguments

    def counting(requirements: Iterable[object] = (), **kwargs: Any) -> EnvSpec:
        validated.append(str(kwargs.get("where")))
        return from_arguments(requirements, **kwargs)

    monkeypatch.setattr(EnvSpec, "from_arguments", counting)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv("alpha")
        @pytest.mark.parametrize("n", range(3))
        def test_x(isoenv, n):
            pass
        """
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=3)
    assert sorted(validated) == [f"test_each_tests_spec_is_worked_out_once.py::test_x[{n}]" for n in range(3)]


def test_the_prebuild_claims_the_cached_envs_the_tests_will_use(make_envs: MakeEnvs) -> None:
    first = make_envs()
    spec = first.spec(["alpha==1.0"])
    first.env(spec)  # in the cache now
    first.close()
    envs = make_envs()
    spec = envs.spec(["alpha==1.0"])
    key = envs.key(spec)
    prebuild(envs, [spec])
    # In the lease before any test asks: the first test that does finds the lease taken, and pays for nothing but
    # narrowing it to the generation it runs in.
    assert envs.lease.keys == {key: ANY_GENERATION}
    envs.env(spec)
    assert set(envs.lease.keys) == {key}
    assert envs.lease.keys[key] != ANY_GENERATION
    envs.close()
