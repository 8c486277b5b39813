"""The migration guide's afters run against the example project they are written for, and so does the hand-made
fixture it starts from; the befores that need another tool (tox, nox, pytest-venv, pytest-virtualenv) are checked
to be well-formed, since that tool is not installed here."""

from __future__ import annotations

import ast
import configparser
import shutil
from pathlib import Path

import pytest
from docpages import ROOT, RunPytest, write_files
from helpers import doc_blocks

GUIDE = ROOT / "docs" / "how-to" / "migrate.md"
GREETER = ROOT / "examples" / "greeter"


def test_every_block_says_how_it_is_tested() -> None:
    untested = [str(block) for block in doc_blocks(GUIDE) if block.kind is None]
    assert not untested, f"blocks with no <!-- docs-test: ... --> comment before them: {untested}"


def test_the_befores_of_other_tools_are_well_formed() -> None:
    shown = {block.argument: block for block in doc_blocks(GUIDE) if block.kind == "shown"}
    assert set(shown) == {"pytest-venv", "pytest-virtualenv", "tox.ini", "noxfile.py"}
    for name in ("pytest-venv", "pytest-virtualenv", "noxfile.py"):
        ast.parse(shown[name].text)
    tox = configparser.ConfigParser()
    tox.read_string(shown["tox.ini"].text)
    assert tox["testenv"]["commands"].split()[0] == "greet"


@pytest.mark.slow
def test_before_and_after_pass_on_the_example_project(
    tmp_path: Path, run_pytest: RunPytest, example_wheels: Path
) -> None:
    project = tmp_path / "greeter"
    shutil.copytree(GREETER, project, ignore=shutil.ignore_patterns("tests", "*.egg-info", "__pycache__", "build"))
    written = write_files([block for block in doc_blocks(GUIDE) if block.kind == "file"], project)
    assert len(written) == 7
    # The hand-made fixture's pip, offline on the same wheels as the plugin.
    result = run_pytest(project, "-rs", env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(example_wheels)})
    assert result.returncode == 0, result.stdout + result.stderr
    # Seven tests, and the tox one once per Python: a Python that is not installed skips its case.
    passed = int(result.stdout.splitlines()[-1].split(" passed")[0].split()[-1])
    assert passed >= 7, result.stdout
