"""The Python matrix: --isoenv-pythons, the marker's python=, skips, --isoenv-list-pythons (real interpreters)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from helpers import marked_tests

from pytest_isoenv.discovery import Discovery, pyenv_root
from pytest_isoenv.errors import SpecError
from pytest_isoenv.installers.api import oldest_seeded_python
from pytest_isoenv.plugin.matrix import marker_pythons, params_for, split_specs
from pytest_isoenv.store.cache import Cache

Version = tuple[int, int]

#: Set in CI, where fewer than three interpreters to test on means a broken runner, not a reason to skip.
REQUIRE_MATRIX = "ISOENV_REQUIRE_MATRIX"


def dotted(version: Version) -> str:
    return "{}.{}".format(*version)


def lit(text: str) -> str:
    """*text* for fnmatch_lines, its brackets (test ids) matched literally."""
    return re.sub(r"([\[\]])", r"[\1]", text)


@pytest.fixture(autouse=True)
def pyenv_in_sight(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the real pyenv root in sight of pytester runs, which point HOME (pyenv's default root) elsewhere."""
    monkeypatch.setenv("PYENV_ROOT", str(pyenv_root(os.environ)))


@pytest.fixture
def three_pythons(real_pythons: dict[Version, Path]) -> list[str]:
    """Three installed CPython versions virtualenv can make envs for, the newest besides pytest's own, oldest first."""
    oldest = oldest_seeded_python()
    usable = [v for v in real_pythons if oldest is None or v >= oldest]
    usable.sort(key=lambda v: (v == sys.version_info[:2], -v[0], -v[1]))
    if len(usable) < 3:
        message = f"needs three installed CPythons virtualenv supports; found {sorted(map(dotted, usable))}"
        if os.environ.get(REQUIRE_MATRIX):
            pytest.fail(f"{message} (and ${REQUIRE_MATRIX} is set)")
        pytest.skip(message)
    return [dotted(v) for v in sorted(usable[:3])]


def test_split_specs_reads_lists_ranges_and_paths(tmp_path: Path) -> None:
    assert split_specs(["3.10,3.12", " py313 "], tmp_path) == ["3.10", "3.12", "py313"]
    assert split_specs([">=3.10,<3.13", "3.9, >=3.12"], tmp_path) == [">=3.10,<3.13", "3.9", ">=3.12"]
    assert split_specs(["3.12,py312", "cpython3.12"], tmp_path) == ["3.12"]
    assert split_specs(["bin/python3"], tmp_path) == [str(tmp_path / "bin" / "python3")]


@pytest.mark.parametrize("value", [3.12, ["3.12", None], "", ["3.12", ""]])
def test_a_marker_python_that_is_no_spec_is_an_error(tmp_path: Path, value: object) -> None:
    with pytest.raises(
        SpecError, match=r"^python=.* is not an interpreter spec or a list of them\..* \(in tests/t\.py::t\)$"
    ):
        marker_pythons(value, tmp_path, "tests/t.py::t")


def test_the_marker_narrows_the_runs_list(tmp_path: Path, shared_cache: Path, three_pythons: list[str]) -> None:
    low, mid, high = three_pythons
    Cache(shared_cache).ensure()
    discovery = Discovery(shared_cache / "py-info")

    def chosen(session: list[str], marker: object) -> list[tuple[str, str, bool]] | None:
        params = params_for(session, marker, discovery.covers, rootdir=tmp_path, where="t.py::t")
        return None if params is None else [(p.spec, p.label, p.skip is not None) for p in params]

    assert chosen([], None) is None
    assert chosen([], mid) is None
    assert chosen([], [mid, f"py{high.replace('.', '')}"]) == [
        (mid, f"py{mid}", False),
        (f"py{high.replace('.', '')}", f"py{high}", False),
    ]
    assert chosen(three_pythons, None) == [(s, f"py{s}", False) for s in three_pythons]
    assert chosen(three_pythons, [mid, high]) == [(mid, f"py{mid}", False), (high, f"py{high}", False)]
    assert chosen(three_pythons, f">={mid}") == [(mid, f"py{mid}", False), (high, f"py{high}", False)]
    assert chosen(three_pythons, f"cpython{low}") == [(low, f"py{low}", False)]
    # A Python that is not installed still counts by its version; one outside the list skips the test.
    assert chosen([*three_pythons, "3.99"], ">=3.50") == [("3.99", "py3.99", False)]
    assert chosen(three_pythons, "3.99") == [("3.99", "py3.99", True)]


@pytest.mark.slow
def test_each_test_that_uses_isoenv_runs_once_per_python(pytester: pytest.Pytester, three_pythons: list[str]) -> None:
    pytester.makepyfile(
        """
        def test_version(isoenv, isoenv_python):
            code = "import sys; print('%d.%d' % sys.version_info[:2])"
            assert isoenv.run("python", "-c", code).stdout.strip() == isoenv_python

        def test_without_isoenv(isoenv_factory):
            pass
        """
    )
    result = pytester.runpytest("--isoenv-pythons", ",".join(three_pythons), "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"isoenv: python {spec}: CPython {spec}.* at *" for spec in three_pythons])
    result.stdout.fnmatch_lines([lit(f"*::test_version[py{spec}] PASSED*") for spec in three_pythons])
    result.stdout.fnmatch_lines(["*::test_without_isoenv PASSED*"])


@pytest.mark.slow
def test_markers_narrow_or_list_pythons(pytester: pytest.Pytester, three_pythons: list[str]) -> None:
    low, mid, high = three_pythons
    pytester.makepyfile(
        marked_tests(
            test_listed=f"python=[{mid!r}, {high!r}]", test_range=f'python=">={mid}"', test_outside='python="3.99"'
        )
    )
    result = pytester.runpytest("--isoenv-pythons", low, "--isoenv-pythons", f"{mid},{high}", "-v", "-rs")
    result.assert_outcomes(passed=4, skipped=1)
    result.stdout.fnmatch_lines(
        [
            lit(f"*::test_listed[py{mid}] PASSED*"),
            lit(f"*::test_listed[py{high}] PASSED*"),
            lit(f"*::test_range[py{mid}] PASSED*"),
            lit(f"*::test_range[py{high}] PASSED*"),
            lit("*::test_outside[py3.99] SKIPPED*"),
            f"SKIPPED * python='3.99' is none of this run's Pythons (--isoenv-pythons={low},{mid},{high})",
        ]
    )

    # Without a list for the run, a marker that lists Pythons runs the test on each; one spec runs it once.
    result = pytester.runpytest("-v", "-k", "listed")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([lit(f"*::test_listed[py{mid}] PASSED*"), lit(f"*::test_listed[py{high}] PASSED*")])


@pytest.mark.slow
def test_the_ini_key_lists_pythons(pytester: pytest.Pytester, three_pythons: list[str]) -> None:
    ini = pytester.path / "tox.ini"
    ini.write_text(ini.read_text() + "\nisoenv_pythons =\n    " + "\n    ".join(three_pythons[:2]) + "\n")
    pytester.makepyfile("def test_it(isoenv):\n    pass\n")
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([lit(f"*::test_it[py{spec}] PASSED*") for spec in three_pythons[:2]])


def test_a_missing_python_skips_unless_strict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_matrix(isoenv):
            pass

        @pytest.mark.isoenv(python="3.98")
        def test_marker(isoenv):
            pass
        """
    )
    result = pytester.runpytest("--isoenv-pythons", "3.99", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "isoenv: python 3.99: not found (looked in: the running interpreter, PATH, pyenv versions (*), *",
            "isoenv: 1 test skipped: no Python interpreter matches '3.99' (looked in: *PATH*pyenv versions*",
            "SKIPPED [[]1[]] test_a_missing_python_skips_unless_strict.py:*: python='3.99' is not installed (*)",
            "SKIPPED [[]1[]] *: python='3.98' is none of this run's Pythons*",
        ]
    )

    result = pytester.runpytest("--isoenv-pythons", "3.99", "--isoenv-strict-python")
    result.assert_outcomes(errors=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["*no Python interpreter matches '3.99' *(in *::test_matrix[[]py3.99[]]) (--isoenv-strict-python)"]
    )
    assert "During handling" not in result.stdout.str()

    # Without --isoenv-pythons, a marker's Python that is not installed skips the same way.
    result = pytester.runpytest("-rs", "-k", "marker")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "isoenv: 1 test skipped: no Python interpreter matches '3.98' *",
            "SKIPPED * python='3.98' is not installed (*)",
        ]
    )


def test_a_python_too_old_for_virtualenv_fails_the_test(
    pytester: pytest.Pytester, real_pythons: dict[Version, Path]
) -> None:
    oldest = oldest_seeded_python()
    old = [v for v in sorted(real_pythons) if oldest is not None and v < oldest]
    if not old:
        pytest.skip("no installed CPython older than the oldest virtualenv can make envs for")
    pytester.makepyfile("def test_it(isoenv):\n    pass\n")
    result = pytester.runpytest("--isoenv-pythons", dotted(old[-1]))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*python='{dotted(old[-1])}' is CPython *, which the * installer * (in *::test_it[[]py{dotted(old[-1])}[]])*"]
    )


def test_a_marker_python_that_is_no_spec_fails_that_test_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.isoenv(python=3.12)\ndef test_it(isoenv):\n    pass\n\n"
        "def test_other():\n    pass\n"
    )
    result = pytester.runpytest("--isoenv-pythons", "3.99")
    result.assert_outcomes(errors=1, passed=1)
    result.stdout.fnmatch_lines(["*python=3.12 is not an interpreter spec*(in *::test_it)*"])


def test_isoenv_pythons_lists_what_it_finds_and_exits(
    pytester: pytest.Pytester, real_pythons: dict[Version, Path]
) -> None:
    pytester.makepyfile("def test_it():\n    raise AssertionError('no test runs')\n")
    result = pytester.runpytest("--isoenv-list-pythons", "--isoenv-pythons", "3.99", "-v")
    assert result.ret == 0
    running = os.path.realpath(sys.executable)
    result.stdout.fnmatch_lines(
        [
            "Python interpreters found (*):",
            "  spec * version * implementation * path * found in",
            f"  py{dotted(sys.version_info[:2])} * {'.'.join(map(str, sys.version_info[:3]))} * CPython * {running} * running pytest",
            "--isoenv-pythons selects:",
            "  3.99: not found (looked in: *",
        ]
    )
    for version, exe in real_pythons.items():
        result.stdout.fnmatch_lines([f"  py{dotted(version)} * CPython * {exe} *"])
    assert "no test runs" not in result.stdout.str()
    # Without -v, every line fits the terminal (80 columns when pytest cannot tell), and says how to see more.
    narrow = pytester.runpytest("--isoenv-list-pythons", "--isoenv-pythons", "3.99")
    assert all(len(line) <= 80 for line in narrow.stdout.lines), narrow.stdout.str()
    assert narrow.stdout.lines[0] == result.stdout.lines[0]
