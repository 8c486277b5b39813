"""The error catalogue's messages are what the plugin prints: its test file is run, and so are the usage errors,
a cache dir that is a file, and a lock another process holds."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from docpages import ROOT, RunPytest, assert_message, write_files
from helpers import DocBlock, doc_blocks, hold_lock

from pytest_isoenv import errors
from pytest_isoenv.session.envs import SessionEnvs
from pytest_isoenv.session.settings import Settings
from pytest_isoenv.spec.index import IndexOptions

CATALOGUE = ROOT / "docs" / "errors.md"


def catalogue(kind: str) -> list[DocBlock]:
    """The catalogue's blocks tested as *kind*."""
    return [block for block in doc_blocks(CATALOGUE) if block.kind == kind]


def test_every_error_class_has_an_entry() -> None:
    text = CATALOGUE.read_text()
    classes = [name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, Exception)]
    assert len(classes) > 5
    missing = [name for name in classes if name != "IsoEnvError" and f"## {name}:" not in text]
    assert not missing, f"error classes with no entry in {CATALOGUE.name}: {missing}"


def test_every_block_says_how_it_is_tested() -> None:
    untested = [str(block) for block in doc_blocks(CATALOGUE) if block.kind is None]
    assert not untested, f"blocks with no <!-- docs-test: ... --> comment before them: {untested}"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The catalogue's folder, with its test file alone."""
    folder = tmp_path / "project"
    folder.mkdir()
    write_files(catalogue("file"), folder)
    return folder


def paths_for(project: Path) -> dict[Path, str]:
    """The real paths of a run in *project* and the stand-ins the catalogue shows for them."""
    return {project: "/home/me/project", project.parent / "isoenv-cache": "/home/me/.cache/pytest-isoenv"}


@pytest.mark.slow
def test_the_messages_are_what_the_tests_print(project: Path, run_pytest: RunPytest) -> None:
    result = run_pytest(project, "--isoenv-strict-python", "--tb=short")
    assert result.returncode == 1, result.stdout + result.stderr
    blocks = catalogue("error")
    assert {block.argument for block in blocks} == {
        line.split()[1].split("(")[0] for line in catalogue("file")[0].text.splitlines() if line.startswith("def ")
    }
    for block in blocks:
        section = result.stdout[result.stdout.index(f" {block.argument} ") :]
        assert_message(block, section, paths_for(project))


@pytest.mark.parametrize("block", catalogue("usage"), ids=lambda block: block.argument)
def test_the_usage_errors_are_what_pytest_prints(block: DocBlock, project: Path, run_pytest: RunPytest) -> None:
    result = run_pytest(project, *block.argument.split(), installs=False)
    assert result.returncode == 4, result.stdout + result.stderr
    assert_message(block, result.stderr, paths_for(project))


def test_a_cache_dir_that_is_a_file(project: Path, run_pytest: RunPytest) -> None:
    [block] = catalogue("cache-error")
    not_a_dir = project.parent / "notadir"
    not_a_dir.write_text("")
    result = run_pytest(
        project, "test_errors.py::test_command_fails", env={"PYTEST_ISOENV_CACHE_DIR": str(not_a_dir)}, installs=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert_message(block, result.stdout, {not_a_dir: "/home/me/notadir"})


@pytest.mark.slow
def test_a_lock_held_too_long(project: Path, run_pytest: RunPytest, example_wheels: Path) -> None:
    [block] = catalogue("lock-timeout")
    cache = project.parent / "isoenv-cache"
    # The key of the env the run asks for: the same interpreter, installer and index as run_pytest's.
    envs = SessionEnvs(
        Settings(
            cache_dir=cache,
            rootdir=project,
            run_id=uuid.uuid4().hex,
            index=IndexOptions(find_links=(str(example_wheels),), offline=True),
            installer="uv",
        )
    )
    key = envs.key(envs.spec(["requests>=2.28"]))
    envs.close()
    with hold_lock(cache, key, what="env (requests>=2.28)"):
        result = run_pytest(project, "test_errors.py::test_command_fails", "--isoenv-lock-timeout=1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert_message(block, result.stdout, paths_for(project))
