"""Acceptance tests: a test marked ``isoenv`` runs with its env activated, with or without the fixture."""

from __future__ import annotations

import os
import sys

import pytest

#: Checks, in the pytester run's test module, that a test sees the host's variables as they were.
HOST_CHECK = """
import os

HOST_PATH = {path!r}


def host_seen():
    assert os.environ["PATH"] == HOST_PATH
    assert "VIRTUAL_ENV" not in os.environ
    assert os.environ.get("PYTHONPATH") == "host-path"
"""


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> str:
    """The pytester run's host variables: no ``VIRTUAL_ENV``, a ``PYTHONPATH`` the env must not see."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("PYTHONPATH", "host-path")
    return HOST_CHECK.format(path=os.environ["PATH"])


def test_a_marked_test_without_the_fixture_runs_in_its_env(pytester: pytest.Pytester, host: str) -> None:
    pytester.makepyfile(
        host
        + """
import subprocess
import sys

import pytest


def test_before():
    host_seen()


@pytest.mark.isoenv("beta", "clitool")
def test_marked():
    venv = os.environ["VIRTUAL_ENV"]
    assert os.environ["PATH"].split(os.pathsep)[0].startswith(venv)
    assert "PYTHONPATH" not in os.environ
    code = "import alpha, sys; print(alpha.VERSION, sys.prefix)"
    out = subprocess.run(["python", "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1.0", venv]
    said = subprocess.run(["clitool"], capture_output=True, text=True, check=True).stdout
    assert said.strip() == "clitool says hi"


def test_after():
    host_seen()
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)


def test_a_module_pytestmark_activates_every_test_and_the_fixture_gets_the_same(
    pytester: pytest.Pytester, host: str
) -> None:
    pytester.makepyfile(
        test_marked="""
import os
import subprocess

import pytest

pytestmark = pytest.mark.isoenv("clitool")


def test_without_fixture():
    assert subprocess.run(["clitool"], capture_output=True, text=True, check=True).stdout.strip() == "clitool says hi"


def test_with_fixture(isoenv):
    assert os.environ["VIRTUAL_ENV"] == str(isoenv.path)
    assert os.environ["PATH"].split(os.pathsep)[0] == str(isoenv.bin_dir)


@pytest.mark.isoenv("alpha==2.0", private=True)
def test_private():
    venv = os.environ["VIRTUAL_ENV"]
    code = "import alpha, sys; print(alpha.VERSION, sys.prefix)"
    out = subprocess.run(["python", "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2.0", venv]
""",
        test_unmarked=host
        + """
def test_unmarked():
    host_seen()
""",
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=4)


def test_a_warm_env_without_the_fixture_is_activated(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import os
import subprocess

import pytest


@pytest.mark.isoenv("alpha==1.0", warm=True)
def test_warm():
    code = "import alpha; print(alpha.VERSION)"
    assert subprocess.run(["python", "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "1.0"
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_failing_or_erroring_marked_test_still_restores(pytester: pytest.Pytester, host: str) -> None:
    pytester.makepyfile(
        host
        + """
import pytest


@pytest.fixture
def breaks_in_teardown():
    yield
    raise RuntimeError("teardown broke")


@pytest.mark.isoenv("alpha")
def test_fails():
    assert "VIRTUAL_ENV" in os.environ
    assert False, "failed on purpose"


@pytest.mark.isoenv("alpha")
def test_errors(breaks_in_teardown):
    assert "VIRTUAL_ENV" in os.environ


@pytest.mark.isoenv("no-such-dist")
def test_build_fails():
    pass


def test_after():
    host_seen()
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1, errors=2)
    result.stdout.fnmatch_lines(["*failed on purpose*"])


def test_under_xdist_each_worker_restores(pytester: pytest.Pytester, host: str) -> None:
    tests = "".join(
        f"""

@pytest.mark.isoenv("clitool")
def test_marked_{n}():
    assert subprocess.run(["clitool"], capture_output=True, text=True, check=True).stdout.strip() == "clitool says hi"


def test_unmarked_{n}():
    host_seen()
"""
        for n in range(4)
    )
    pytester.makepyfile(host + "\nimport subprocess\n\nimport pytest\n" + tests)
    result = pytester.runpytest("-n", "2")
    result.assert_outcomes(passed=8)


def test_the_matrices_run_a_marked_test_without_the_fixture_once_per_cell(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import os
import subprocess

import pytest


@pytest.mark.isoenv(["alpha==1.0", "alpha==2.0"])
def test_alternatives():
    code = "import alpha; print(alpha.VERSION)"
    version = subprocess.run(["python", "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert os.environ["PYTEST_CURRENT_TEST"].split(" ")[0].endswith(f"-alpha=={version}]")


@pytest.mark.isoenv("alpha==1.0")
class TestPythons:
    def test_python(self):
        code = "import alpha, sys; print(alpha.VERSION, sys.prefix)"
        out = subprocess.run(["python", "-c", code], capture_output=True, text=True, check=True).stdout.split()
        assert out == ["1.0", os.environ["VIRTUAL_ENV"]]
"""
    )
    result = pytester.runpytest("-v", f"--isoenv-pythons={sys.version_info[0]}.{sys.version_info[1]}")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*test_alternatives?py*-alpha==1.0?*PASSED*", "*test_alternatives?py*-alpha==2.0?*PASSED*"]
    )
    result.stdout.fnmatch_lines(["*TestPythons::test_python?py*?*PASSED*"])


def test_an_unmarked_test_is_not_set_up_for_an_env(pytester: pytest.Pytester) -> None:
    # The only work an unmarked test causes is the marker lookup: no env is asked for, so nothing is built.
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--setup-show")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*isoenv: * built*")
    result.stdout.no_fnmatch_line("*SETUP*F isoenv *")
