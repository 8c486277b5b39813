"""The quickstart, followed step by step in an empty folder: every block is a file written, an output compared
with a real run's, or an install line checked by its parts."""

from __future__ import annotations

from pathlib import Path

import pytest
from docpages import ROOT, RunPytest, assert_install_command, assert_shows, console_commands, write_files
from helpers import doc_blocks

QUICKSTART = ROOT / "docs" / "quickstart.md"


def test_every_block_says_how_it_is_tested() -> None:
    blocks = doc_blocks(QUICKSTART)
    untested = [str(block) for block in blocks if block.kind is None]
    assert not untested, f"blocks with no <!-- docs-test: ... --> comment before them: {untested}"
    assert {block.kind for block in blocks} == {"install", "file", "output"}


def test_the_install_line_names_the_project_and_its_extra() -> None:
    for block in doc_blocks(QUICKSTART):
        if block.kind == "install":
            assert_install_command(block)


@pytest.mark.slow
def test_the_quickstart_runs_as_written(tmp_path: Path, run_pytest: RunPytest) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    blocks = doc_blocks(QUICKSTART)
    files = [block for block in blocks if block.kind == "file"]
    outputs = {block.argument: block for block in blocks if block.kind == "output"}
    assert [block.argument for block in files[:1]] == ["test_format.py"]

    # "A first test", then "Run it": the first run builds black's env, the second reuses it.
    write_files(files[:1], folder)
    for name in ("first", "again"):
        [command] = console_commands(outputs[name])
        assert command == ["pytest"]
        result = run_pytest(folder)
        assert result.returncode == 0, result.stdout + result.stderr
        assert_shows(outputs[name], result.stdout)

    # "One environment for many tests": the Flask project next to it, installed editable.
    write_files(files[1:], folder)
    result = run_pytest(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout.splitlines()[-1]
