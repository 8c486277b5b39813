"""The README's code blocks, each run or checked: the example in an empty folder, the install line by its parts,
the commands that other runs carry out by the name of the run that does."""

from __future__ import annotations

from pathlib import Path

import pytest
from docpages import ROOT, RunPytest, assert_install_command, write_files
from helpers import doc_blocks

README = ROOT / "README.md"
INDEX = ROOT / "docs" / "index.md"


def test_every_block_says_how_it_is_tested() -> None:
    for page in (README, INDEX):
        untested = [str(block) for block in doc_blocks(page) if block.kind is None]
        assert not untested, f"blocks with no <!-- docs-test: ... --> comment before them: {untested}"


def test_the_docs_index_shows_the_readmes_example() -> None:
    readme = [block for block in doc_blocks(README) if block.kind == "file"]
    index = [block for block in doc_blocks(INDEX) if block.kind == "file"]
    assert [block.text for block in index] == [block.text for block in readme]


@pytest.mark.slow
def test_the_example_passes_in_an_empty_folder(tmp_path: Path, run_pytest: RunPytest) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    write_files([block for block in doc_blocks(README) if block.kind == "file"], folder)

    first = run_pytest(folder)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 passed" in first.stdout.splitlines()[-1]
    assert "isoenv: 2 envs built" in first.stdout

    again = run_pytest(folder)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "isoenv: 2 envs reused from earlier runs, none built" in again.stdout


def test_the_install_line_names_the_project_and_its_extra() -> None:
    blocks = [block for block in doc_blocks(README) if block.kind == "install"]
    assert blocks
    for block in blocks:
        assert_install_command(block)


def test_commands_run_elsewhere_are_run_there() -> None:
    blocks = [block for block in doc_blocks(README) if block.kind == "run-by"]
    assert {block.argument for block in blocks} == {"tests/test_example.py", ".ci/run", "benchmarks/run.py"}
    for block in blocks:
        runner = ROOT / block.argument
        assert runner.is_file(), block
        if block.argument == ".ci/run":  # CI runs the README's test command as it is written
            assert block.text.strip() in runner.read_text().splitlines(), block
        elif block.argument == "tests/test_example.py":  # the test names each step it carries out
            for step in block.text.split("&&"):
                assert f"# {step.strip()}" in runner.read_text(), (block, step)
        elif block.argument == "benchmarks/run.py":  # it needs the network: its path is all that can be checked
            assert block.text.strip() == f"python {block.argument}", block
