"""Coverage of code run inside envs: real pytest-cov and ``coverage run`` sessions, through pytester.

The project's function runs only in an env's subprocess, never in the pytest process,
so every covered line in the report was measured inside the env.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import write_project

pytest.importorskip("pytest_cov")

#: Lines 1-3 run for a positive number; 4-6 do not.
BODY = textwrap.dedent(
    """\
    def classify(n):
        if n > 0:
            return "positive"
        if n < 0:
            return "negative"
        return "zero"
    """
)


@pytest.fixture(scope="session")
def covdemo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose ``classify()`` the tests below run only inside envs (one per session: one env key)."""
    return write_project(tmp_path_factory.mktemp("coverage"), "covdemo", body=BODY)


def write_test(pytester: pytest.Pytester, marker: str) -> None:
    pytester.makepyfile(
        test_cli=f"""
        import pytest

        @pytest.mark.isoenv({marker})
        def test_positive(isoenv):
            out = isoenv.run("python", "-c", "import covdemo; print(covdemo.classify(1))").stdout
            assert out == "positive\\n"
            assert "coverage" in isoenv.installed()
        """
    )


def report_line(output: str, name: str) -> list[str]:
    """The ``term-missing`` row of the file whose path ends with *name*: name, stmts, miss, cover, missing."""
    for line in output.splitlines():
        if line.split(" ", 1)[0].replace("\\", "/").endswith(name):
            return line.split(maxsplit=4)
    raise AssertionError(f"no report line for {name} in:\n{output}")


def assert_measured(output: str, source: Path) -> None:
    row = report_line(output, "covdemo/__init__.py")
    assert Path(row[0]).resolve() == source.resolve(), "the report names the project's source file"
    assert row[1:] == ["6", "3", "50%", "4-6"], "lines 1-3 ran in the env, 4-6 did not"
    assert "site-packages" not in output


@pytest.mark.slow
def test_editable_project_run_in_an_env_is_covered(pytester: pytest.Pytester, covdemo: Path) -> None:
    write_test(pytester, f"editable=[{str(covdemo)!r}]")
    result = pytester.runpytest_subprocess(f"--cov={covdemo / 'covdemo'}", "--cov-report=term-missing")
    result.assert_outcomes(passed=1)
    assert_measured(result.stdout.str(), covdemo / "covdemo" / "__init__.py")


@pytest.mark.slow
def test_covered_under_xdist(pytester: pytest.Pytester, covdemo: Path) -> None:
    write_test(pytester, f"editable=[{str(covdemo)!r}]")
    pytester.makepyfile(
        test_other=f"""
        import pytest

        @pytest.mark.isoenv(editable=[{str(covdemo)!r}])
        def test_negative(isoenv):
            assert isoenv.run("python", "-c", "import covdemo; print(covdemo.classify(-1))").stdout == "negative\\n"
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--cov=covdemo", "--cov-report=term-missing")
    result.assert_outcomes(passed=2)
    row = report_line(result.stdout.str(), "covdemo/__init__.py")
    # Each worker ran one of the tests: only the data of both together leaves just line 6 out.
    assert row[1:] == ["6", "1", "83%", "6"]


@pytest.mark.slow
def test_non_editable_local_project_is_mapped_to_its_source(pytester: pytest.Pytester, covdemo: Path) -> None:
    write_test(pytester, repr(str(covdemo)))
    result = pytester.runpytest_subprocess(f"--cov={covdemo / 'covdemo'}", "--cov-report=term-missing")
    result.assert_outcomes(passed=1)
    assert_measured(result.stdout.str(), covdemo / "covdemo" / "__init__.py")


def test_off_when_asked(pytester: pytest.Pytester, covdemo: Path) -> None:
    pytester.makepyfile(
        test_cli=f"""
        import pytest

        @pytest.mark.isoenv(editable=[{str(covdemo)!r}])
        def test_positive(isoenv):
            assert isoenv.run("python", "-c", "import covdemo; print(covdemo.classify(1))").stdout == "positive\\n"
            assert "coverage" not in isoenv.installed()
            assert isoenv.spec.coverage is None
        """
    )
    result = pytester.runpytest_subprocess(
        f"--cov={covdemo / 'covdemo'}", "--cov-report=term-missing", "--isoenv-no-coverage"
    )
    result.assert_outcomes(passed=1)
    row = report_line(result.stdout.str(), "covdemo/__init__.py")
    assert row[1:4] == ["6", "6", "0%"], "nothing of the env's run is measured"


def test_no_coverage_package_and_same_key_when_not_measuring(pytester: pytest.Pytester, covdemo: Path) -> None:
    pytester.makepyfile(
        test_keys=f"""
        import pytest

        @pytest.mark.isoenv(editable=[{str(covdemo)!r}])
        def test_key(isoenv):
            assert isoenv.spec.coverage is None
            assert "coverage" not in isoenv.installed()
            print("KEY", isoenv.key)
        """
    )
    plain = pytester.runpytest_subprocess("-s")
    plain.assert_outcomes(passed=1)
    measured_off = pytester.runpytest_subprocess("-s", "--cov=covdemo", "--isoenv-no-coverage")
    measured_off.assert_outcomes(passed=1)
    keys = [re.findall(r"KEY (\w+)", r.stdout.str()) for r in (plain, measured_off)]
    assert keys[0] == keys[1]
    assert len(keys[0]) == 1


@pytest.mark.slow
def test_covered_under_coverage_run(pytester: pytest.Pytester, covdemo: Path) -> None:
    write_test(pytester, f"editable=[{str(covdemo)!r}]")
    source = covdemo / "covdemo"
    pytester.makefile(".coveragerc", **{"": f"[run]\nsource = {source}\n"})
    run = pytester.run(sys.executable, "-m", "coverage", "run", "-m", "pytest", "-p", "no:cacheprovider")
    assert run.ret == 0, run.stdout.str()
    report = pytester.run(sys.executable, "-m", "coverage", "report", "-m")
    assert report.ret == 0, report.stdout.str()
    assert_measured(report.stdout.str(), source / "__init__.py")


@pytest.mark.slow
def test_a_background_process_stopped_at_the_end_of_its_test_is_measured(
    pytester: pytest.Pytester, covdemo: Path
) -> None:
    pytester.makepyfile(
        test_server=f"""
        import subprocess
        import pytest

        SERVER = "import covdemo, time; covdemo.classify(-1); print('up', flush=True); time.sleep(120)"

        @pytest.mark.isoenv(editable=[{str(covdemo)!r}])
        def test_leaves_it_running(isoenv):
            proc = isoenv.popen("python", "-c", SERVER, stdout=subprocess.PIPE, text=True)
            assert proc.stdout.readline() == "up\\n"
        """
    )
    result = pytester.runpytest_subprocess(f"--cov={covdemo / 'covdemo'}", "--cov-report=term-missing", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pid * still running at the end, terminated: *"])
    row = report_line(result.stdout.str(), "covdemo/__init__.py")
    # Terminated, it saved its data (sigterm = true): lines 1, 2, 4 and 5 ran, 3 and 6 did not.
    assert row[1:] == ["6", "2", "67%", "3, 6"]
