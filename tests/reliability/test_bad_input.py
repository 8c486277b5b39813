"""Bad input: a one-line error naming the test and the value, and nothing written to the cache."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import marked_tests
from reliability_helpers import Figure, tmpfs

BAD_INPUTS = {
    "invalid_requirement": ('"alpha>>1"', "invalid requirement 'alpha>>1'"),
    "unknown_argument": ('"alpha", colour="red"', "unknown isoenv argument(s) 'colour'"),
    "missing_path": ('"./no-such-project"', "local requirement path './no-such-project' does not exist"),
    "not_a_project": ('"./not-a-project"', "local requirement path './not-a-project' is not a Python project"),
    "missing_editable": ('editable=["./gone"]', "editable path './gone' does not exist"),
    "missing_requirements_file": ('requirements_files=["missing.txt"]', "requirements file 'missing.txt' does not"),
    "missing_constraints_file": ('"alpha", constraints="nope.txt"', "constraints file 'nope.txt' does not exist"),
    "non_string_requirement": ("42", "requirement 42 is a int, not a string"),
    "empty_alternatives": ('[], "alpha"', "the isoenv marker has an empty list of alternatives ([])"),
    "bad_extras": ('"./not-a-project[a b]"', "'./not-a-project[a b]' names extras that are not extra names ('a b')"),
    "missing_group": ('groups=["test"]', "groups entry 'test': "),
    "unknown_installer": ('"alpha", installer="conda"', "unknown installer 'conda'"),
    "url_while_offline": (
        '"alpha @ https://example.invalid/alpha-1.0-py3-none-any.whl"',
        "requirement 'alpha @ https://example.invalid/alpha-1.0-py3-none-any.whl' needs the network, but installs are "
        "offline",
    ),
    "unknown_python": ('"alpha", python="snakes3.12"', "python='snakes3.12' is not an interpreter spec"),
}


def setup_errors(pytester: pytest.Pytester, *args: str) -> dict[str, str]:
    """Run the tests in-process; each test's setup error text by test name."""
    reports = pytester.inline_run(*args).getreports("pytest_runtest_logreport")
    return {r.nodeid.split("::")[1]: r.longreprtext for r in reports if r.when == "setup" and r.failed}


def test_bad_input_is_refused_before_the_cache_is_touched(
    pytester: pytest.Pytester, private_cache: Path, figure: Figure
) -> None:
    (pytester.path / "not-a-project").mkdir()
    pytester.makepyfile(marked_tests(**{f"test_{name}": arguments for name, (arguments, _) in BAD_INPUTS.items()}))

    errors = setup_errors(pytester)

    assert sorted(errors) == sorted(f"test_{name}" for name in BAD_INPUTS)
    for name, (_, expected) in BAD_INPUTS.items():
        error = errors[f"test_{name}"]
        assert "\n" not in error, error
        assert error.endswith(f" (in test_bad_input_is_refused_before_the_cache_is_touched.py::test_{name})"), error
        assert expected in error, error
    assert not private_cache.exists(), "bad input is refused before the cache root is even created"
    figure(
        f"{len(errors)} bad inputs refused with one-line errors naming the test and the value; cache dir created: no"
    )


@contextlib.contextmanager
def unwritable_dir(path: Path) -> Iterator[Path]:
    """A folder nobody can create anything in: read-only permissions, or a read-only mount for root."""
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    if os.geteuid() == 0:  # root ignores permissions
        with tmpfs(path, size="1m", readonly=True):
            yield path
    else:
        path.mkdir()
        path.chmod(0o500)
        try:
            yield path
        finally:
            path.chmod(0o700)


def test_unwritable_cache_dir_is_refused(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figure: Figure
) -> None:
    pytester.makepyfile(marked_tests(test_alpha='"alpha"'))
    with unwritable_dir(tmp_path / "locked") as parent:
        monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(parent / "cache"))
        [error] = setup_errors(pytester).values()
        created = list(parent.iterdir())
    assert "\n" not in error
    assert error.startswith("cannot use the isoenv cache dir ")
    assert f"{parent / 'cache'}: " in error
    assert error.endswith(
        "Point --isoenv-cache-dir (or PYTEST_ISOENV_CACHE_DIR) at a writable directory "
        "(in test_unwritable_cache_dir_is_refused.py::test_alpha)"
    )
    assert created == []
    figure(f"cache dir not writable: {error!r}")
