"""The plugin's output: progress lines under xdist, the summary at each verbosity, the plan key, commands."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from helpers import MakeProject, marked_tests

from pytest_isoenv.environ import cpu_count
from pytest_isoenv.plugin.reporting import installer_note

TWO_ENVS = """
import pytest

@pytest.mark.isoenv("alpha==1.0")
@pytest.mark.parametrize("n", range(4))
def test_one(isoenv, n):
    pass

@pytest.mark.isoenv("beta")
@pytest.mark.parametrize("n", range(4))
def test_two(isoenv, n):
    pass
"""


def test_cpu_count_is_what_this_process_may_use() -> None:
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= cpu_count() <= (allowed or 1)


@pytest.mark.slow
def test_under_xdist_the_controller_alone_says_the_progress_once_on_lines_of_its_own(
    pytester: pytest.Pytester, private_cache: Path
) -> None:
    pytester.makepyfile(TWO_ENVS)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    # Both workers plan the same two builds: the run's plan is said once, and each build once, by the controller.
    assert result.stdout.lines.count("isoenv: building 2 envs before the tests") == 1, result.stdout.str()
    builds = [line for line in result.stdout.lines if re.fullmatch(r"isoenv: \[\d/2\] .*", line)]
    assert len(builds) == 2, result.stdout.str()
    assert {re.sub(r" in \d+\.\ds", "", line.split("] ")[1].split(" (")[0]) for line in builds} == {
        "built: alpha==1.0",
        "built: beta",
    }
    assert not [line for line in result.stdout.lines if "built by another worker" in line or "left to" in line]
    assert "isoenv:" not in result.stderr.str()
    # The controller's summary counts each env once, built by whichever worker built it, in a section of its own,
    # with the time the progress gave it.
    result.stdout.fnmatch_lines(["=* isoenv =*", "isoenv: 2 envs built"])
    for name in ("alpha==1.0", "beta"):
        (said,) = [re.search(r" in (\d+\.\d)s: ", line) for line in builds if f": {name} (" in line]
        assert said is not None
        result.stdout.fnmatch_lines([f"isoenv:   built  py3.*  *  {said.group(1)}s  {name}"])
    result.stdout.no_fnmatch_line("*reused*")


@pytest.mark.slow
def test_summary_counts_what_happened_and_follows_verbosity(pytester: pytest.Pytester, private_cache: Path) -> None:
    # Two specs with one key (python=None and the running Python's version): built once, never "reused".
    version = ".".join(map(str, sys.version_info[:2]))
    pytester.makepyfile(marked_tests(test_default='"alpha==1.0"', test_same_python=f'"alpha==1.0", python={version!r}'))
    first = pytester.runpytest()
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(
        [
            "isoenv: building 1 env before the tests, 1 at a time",
            "isoenv: [[]1/1] built in *s: alpha==1.0 (py3.*)",
            "=* isoenv =*",
            "isoenv: 1 env built",
            "isoenv:   built  py3.*  *  *s  alpha==1.0",
        ]
    )
    first.stdout.no_fnmatch_line("*reused*")

    again = pytester.runpytest()
    again.stdout.fnmatch_lines(["isoenv: 1 env reused from earlier runs, none built"])

    (record,) = private_cache.glob("envs/*/*/isoenv-record.json")
    record.unlink()
    quiet = pytester.runpytest("-q")
    quiet.stdout.fnmatch_lines(["isoenv: rebuilding env (alpha==1.0) *", "isoenv: 1 env built"])
    quiet.stdout.no_fnmatch_line("isoenv:   built *")
    quiet.stdout.no_fnmatch_line("*before the tests*")
    quiet.stdout.no_fnmatch_line("isoenv: repaired: *")

    (record,) = private_cache.glob("envs/*/*/isoenv-record.json")
    record.unlink()
    silent = pytester.runpytest("-qq")
    assert silent.ret == 0
    assert "isoenv: " not in silent.stdout.str().replace("isoenv: rebuilding", "")


def test_a_failed_build_is_summed_up_even_at_qq(pytester: pytest.Pytester, private_cache: Path) -> None:
    pytester.makepyfile('import pytest\n\n@pytest.mark.isoenv("alpha==9.9")\ndef test_it(isoenv):\n    pass\n')
    result = pytester.runpytest("-qq")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["isoenv: 1 env failed to build"])


@pytest.mark.slow
def test_verbose_labels_each_installer_line_with_its_env(pytester: pytest.Pytester, private_cache: Path) -> None:
    pytester.makepyfile(TWO_ENVS)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=8)
    echoed = [line for line in result.stdout.lines if line.startswith("isoenv|")]
    labels = [re.match(r"isoenv\| \[(\S+) py3\.\d+\] ", line) for line in echoed]
    assert all(labels), echoed
    assert {match.group(1) for match in labels if match} == {"alpha==1.0", "beta"}


PLAN = """
import pytest

@pytest.mark.isoenv("alpha==1.0")
def test_one(isoenv):
    pass

def test_two(isoenv):
    pass
"""


def test_plan_key_prints_the_key_alone_and_runs_nothing(pytester: pytest.Pytester, private_cache: Path) -> None:
    pytester.makepyfile(PLAN)
    plan = pytester.runpytest("--collect-only", "--isoenv-plan")
    (key,) = re.findall(r"^isoenv plan key: ([0-9a-f]{64})$", plan.stdout.str(), re.MULTILINE)

    for extra in ([], ["-p", "no:terminal"], ["-n", "2"], ["-q"]):
        result = pytester.runpytest_subprocess("--isoenv-plan-key", *extra)
        assert result.ret == 0, result.stderr.str()
        assert result.stdout.lines == [key], extra
    assert not (private_cache / "envs").exists() or not any((private_cache / "envs").iterdir()), "nothing was built"


FIXTURE_ENV = """
import pytest

@pytest.fixture(scope="session")
def web_env(isoenv_factory):
    return isoenv_factory.get("beta")

def test_web(web_env):
    pass
"""


def test_plan_key_of_fixture_envs_alone_is_refused_with_what_to_do(
    pytester: pytest.Pytester, private_cache: Path
) -> None:
    pytester.makepyfile(FIXTURE_ENV)
    result = pytester.runpytest_subprocess("--isoenv-plan-key")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stdout.lines == [], "no key of an empty plan, which would never change"
    result.stderr.fnmatch_lines(
        ["*isoenv: no plan key: 1 test(s) make envs with isoenv_factory.get()*restored by prefix*ci-cache*"]
    )
    plan = pytester.runpytest_subprocess("--isoenv-plan")
    plan.stdout.fnmatch_lines(["isoenv plan key: none (no test takes the isoenv fixture)"])


def test_plan_key_says_on_stderr_what_it_does_not_cover(pytester: pytest.Pytester, private_cache: Path) -> None:
    pytester.makepyfile(test_marked=PLAN, test_fixture=FIXTURE_ENV)
    result = pytester.runpytest_subprocess("--isoenv-plan-key")
    assert result.ret == 0, result.stderr.str()
    assert len(result.stdout.lines) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", result.stdout.lines[0])
    result.stderr.fnmatch_lines(
        [
            "isoenv: the plan key covers the 2 env(s) of the isoenv fixture only: 1 test(s) make envs with "
            "isoenv_factory.get()*which it does not cover; keep the CI cache with a key that changes*"
        ]
    )


def test_plan_key_fails_when_collection_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import no_such_module_anywhere\n")
    result = pytester.runpytest_subprocess("--isoenv-plan-key")
    assert result.ret != 0
    assert result.stdout.lines == []
    assert "isoenv: collection failed, so there is no plan key" in result.stderr.str()


@pytest.mark.parametrize("command", ["--isoenv-list", "--isoenv-prune", "--isoenv-list-pythons"])
def test_commands_that_run_no_tests_do_not_import_conftest(
    pytester: pytest.Pytester, tmp_path: Path, command: str
) -> None:
    pytester.makeconftest("import no_such_module_anywhere\n")
    result = pytester.runpytest_subprocess(command, f"--isoenv-cache-dir={tmp_path / 'cache'}")
    assert result.ret == 0, result.stderr.str()
    assert "no_such_module_anywhere" not in result.stdout.str() + result.stderr.str()


def test_a_rootdir_moved_by_a_two_word_path_option_is_pointed_out(pytester: pytest.Pytester, tmp_path: Path) -> None:
    cache = tmp_path / "elsewhere" / "cache"
    cache.mkdir(parents=True)
    pytester.makepyfile("def test_it():\n    pass\n")
    result = pytester.runpytest_subprocess("--isoenv-cache-dir", str(cache))
    result.stdout.fnmatch_lines(
        [
            f"isoenv: the rootdir * is where pytest found {str(cache)!r}: *. Write --isoenv-cache-dir={cache} (one argument)"
        ]
    )
    fine = pytester.runpytest_subprocess(f"--isoenv-cache-dir={cache}")
    fine.stdout.no_fnmatch_line("*rootdir * is where pytest found*")


def test_header_names_the_fast_path_when_auto_falls_back_to_pip() -> None:
    assert installer_note("auto", "pip") == " (install pytest-isoenv[uv] to build with uv, several times faster)"
    assert installer_note(None, "pip") == installer_note("auto", "pip")
    assert installer_note("auto", "uv") == ""
    assert installer_note("pip", "pip") == "", "pip was asked for"


@pytest.mark.slow
def test_a_rebuild_for_a_changed_source_says_which(
    pytester: pytest.Pytester, private_cache: Path, make_project: MakeProject
) -> None:
    lib = make_project("lib", parent=pytester.path / "repo", body="VALUE = 'old'\n")
    # An editable project's own path dependency: the key does not name it, the record of the env does.
    make_project("app", parent=pytester.path / "repo", dependencies=[f"lib @ {lib.as_uri()}"])
    pytester.makepyfile('import pytest\n\n@pytest.mark.isoenv(editable=["repo/app"])\ndef test_it(isoenv):\n    pass\n')
    pytester.runpytest().assert_outcomes(passed=1)
    assert "rebuilding" not in pytester.runpytest().stdout.str(), "a reuse says nothing"

    (lib / "lib" / "__init__.py").write_text("VALUE = 'new'\n")
    result = pytester.runpytest()

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"isoenv: rebuilding env (-e *app*) [[]*[]]: the project {lib} it was installed from changed since it was built"
        ]
    )
