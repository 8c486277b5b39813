"""The ``greet`` command, run the way its users run it: installed, in an environment of its own.

Every env below has this project installed editable (``editable=["."]``: paths resolve
against pytest's rootdir, this directory), so an edit to ``src/`` is picked up without a
rebuild. Each distinct env is built once and cached for later tests and runs.
"""

from __future__ import annotations

import pytest

from pytest_isoenv import IsolatedEnv

pytestmark = pytest.mark.isoenv(editable=["."])


def test_greet_greets(isoenv: IsolatedEnv) -> None:
    assert isoenv.run("greet", "Ada", "Grace", "--greeting", "Hi").stdout == "Hi, Ada!\nHi, Grace!\n"


def test_greet_fails_clearly_without_a_name(isoenv: IsolatedEnv) -> None:
    result = isoenv.run("greet", " ", check=False)
    assert result.returncode == 2
    assert result.stderr == "greet: a greeting needs a name\n"


# One test across a Python matrix: an interpreter that is not installed skips its case.
@pytest.mark.isoenv(editable=["."], python=["3.9", "3.11", "3.13"])
def test_greet_runs_on_every_supported_python(isoenv: IsolatedEnv) -> None:
    assert isoenv.run("greet", "--version").stdout.strip() == "greet 1.0.0"
    assert isoenv.run("python", "-m", "greeter", "Ada").stdout == "Hello, Ada!\n"


# A third-party package from the index, next to the project.
@pytest.mark.isoenv("tabulate>=0.9", editable=["."])
def test_greet_prints_a_table_with_tabulate(isoenv: IsolatedEnv) -> None:
    table = isoenv.run("greet", "--table", "Ada", "Grace").stdout.splitlines()
    assert table[0].split() == ["name", "greeting"]
    assert table[2].split() == ["Ada", "Hello,", "Ada!"]
    assert table[3].split() == ["Grace", "Hello,", "Grace!"]


# A private env: this test may change it, and no other test sees the change.
@pytest.mark.isoenv(editable=["."], private=True)
def test_greet_asks_for_the_table_extra_until_it_is_installed(isoenv: IsolatedEnv) -> None:
    missing = isoenv.run("greet", "--table", "Ada", check=False)
    assert missing.returncode == 2
    assert "pip install 'greeter[table]'" in missing.stderr

    isoenv.install("tabulate>=0.9")
    assert "Ada" in isoenv.run("greet", "--table", "Ada").stdout


# Many calls of one command: with warm=True each call is forked from an interpreter of the env that
# has already imported the CLI, and the modules it imports while it runs, instead of starting Python.
@pytest.mark.isoenv(editable=["."], warm=True, preload=("greeter.cli", "shutil", "locale"))
@pytest.mark.parametrize("greeting", ["Hi", "Hello", "Good morning"])
def test_greet_uses_the_greeting_it_is_given(isoenv: IsolatedEnv, greeting: str) -> None:
    assert isoenv.run("greet", "Ada", "--greeting", greeting).stdout == f"{greeting}, Ada!\n"
