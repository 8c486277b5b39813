"""Damaged cache entries are found by cheap checks on use and rebuilt, with a line in the output saying why."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import EnvsFor
from reliability_helpers import Figure, env_entries, generation, install_base

from pytest_isoenv import BuildError, InterpreterNotFound, IsoEnvFactory
from pytest_isoenv.store.record import RECORD_FORMAT, RECORD_NAME

ALPHA_TEST = """
import pytest

@pytest.mark.isoenv("alpha==1.0"{python})
def test_alpha(isoenv):
    assert isoenv.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip() == "1.0"
    print("env python:", isoenv.run("python", "-c", "import sys; print(sys.version.split()[0])").stdout.strip())
"""


def only_entry(cache: Path) -> tuple[Path, dict[str, Any]]:
    [entry] = env_entries(cache)
    env = generation(cache, entry)
    return env, json.loads((env / RECORD_NAME).read_text())


def delete_interpreter(env: Path, record: dict[str, Any]) -> None:
    (env / record["built"]["python"]).unlink()


def truncate_record(env: Path, record: dict[str, Any]) -> None:
    path = env / RECORD_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def record_of_another_format(env: Path, record: dict[str, Any]) -> None:
    (env / RECORD_NAME).write_text(json.dumps({**record, "format": RECORD_FORMAT + 1}))


def empty_site_packages(env: Path, record: dict[str, Any]) -> None:
    for path in (env / record["built"]["site_packages"]).iterdir():
        # pip is a link to the cache's image of it: the link goes, the image stays.
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


CORRUPTIONS: dict[str, tuple[Callable[[Path, dict[str, Any]], None], str]] = {
    "interpreter deleted": (delete_interpreter, "its interpreter * is missing"),
    "record truncated": (truncate_record, "its completion record is unreadable (*)"),
    "record of another format": (record_of_another_format, "its completion record is of another format*"),
    "site-packages emptied": (empty_site_packages, "its site-packages * changed since it was built (removed *alpha*)"),
}


@pytest.fixture(scope="module")
def damage_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the damage tests: each starts from the good entry the one before rebuilt."""
    return tmp_path_factory.mktemp("damage-cache")


@pytest.mark.parametrize("damage", CORRUPTIONS)
def test_damaged_entry_is_rebuilt(
    pytester: pytest.Pytester, damage_cache: Path, monkeypatch: pytest.MonkeyPatch, damage: str, figure: Figure
) -> None:
    corrupt, why = CORRUPTIONS[damage]
    monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(damage_cache))
    pytester.makepyfile(ALPHA_TEST.format(python=""))
    pytester.runpytest().assert_outcomes(passed=1)
    env, record = only_entry(damage_cache)
    corrupt(env, record)

    result = pytester.runpytest()

    result.assert_outcomes(passed=1, warnings=0)
    result.stdout.fnmatch_lines(
        [
            f"isoenv: rebuilding env (alpha==1.0) [[]*[]]: {why}",
            f"isoenv: repaired: rebuilding env (alpha==1.0) *: {why}",
        ]
    )
    assert only_entry(damage_cache)[1]["created"] > record["created"]
    said = next(line for line in result.stdout.lines if line.startswith("isoenv: rebuilding"))
    figure(f"{damage}: noticed on use, said {said!r}, rebuilt, test passed")


@pytest.mark.slow
def test_replaced_base_interpreter_is_noticed(
    pytester: pytest.Pytester, private_cache: Path, base_copy: Path, figure: Figure
) -> None:
    pytester.makepyfile(ALPHA_TEST.format(python=f", python={str(base_copy)!r}"))
    pytester.runpytest().assert_outcomes(passed=1)
    # Reinstalled in place, as a package manager does: a new file at the same path.
    new = base_copy.with_name("python.new")
    shutil.copy(base_copy, new)
    os.replace(new, base_copy)

    result = pytester.runpytest()

    result.assert_outcomes(passed=1, warnings=0)
    why = f"its base interpreter {base_copy} was replaced since the env was built (upgraded or reinstalled)"
    result.stdout.fnmatch_lines([f"isoenv: rebuilding env (alpha==1.0) [[]*[]]: {why}"])
    figure(f"base interpreter replaced in place: said {why!r}, rebuilt, test passed")


def other_cpython() -> tuple[Path, Path] | None:
    """Another minor version of CPython installed next to the running one (a pyenv-style layout), newer first."""
    found = {}
    for exe in Path(sys.base_prefix).parent.glob("3.*/bin/python3.*"):
        minor = exe.name[len("python3.") :]
        if minor.isdigit() and int(minor) != sys.version_info[1] and int(minor) >= 9:
            found[int(minor)] = (exe, exe.parent.parent)
    newer = sorted(m for m in found if m > sys.version_info[1])
    return found[newer[0]] if newer else next(iter(found.values()), None)


@pytest.mark.slow
def test_upgraded_base_interpreter_gets_a_new_env(
    pytester: pytest.Pytester, private_cache: Path, base_copy: Path, figure: Figure
) -> None:
    other = other_cpython()
    if other is None:
        pytest.skip("needs another CPython minor version next to the running one")
    pytester.makepyfile(ALPHA_TEST.format(python=f", python={str(base_copy)!r}"))
    # Each session in a process of its own, as sessions are: python-discovery remembers what it learnt
    # about an interpreter for the life of the process, so a second session run in this one would not
    # see the upgrade (what it keeps on disk is checked against the file's modification time).
    before = pytester.runpytest_subprocess("-s")
    before.assert_outcomes(passed=1)
    # Upgraded in place: the same executable path now runs another version, with its own standard library.
    prefix = base_copy.parent.parent
    shutil.rmtree(prefix)
    install_base(other[0], other[1], prefix, base_copy.name)

    after = pytester.runpytest_subprocess("-s")

    after.assert_outcomes(passed=1)
    old, new = (next(line for line in r.stdout.lines if "env python:" in line).split()[-1] for r in (before, after))
    assert old != new
    assert len(env_entries(private_cache)) == 2, "the old entry is keyed by the old version: never handed out again"
    figure(f"base interpreter upgraded in place {old} -> {new}: its key changed, a new env was built and used")


@pytest.mark.slow
def test_removed_base_interpreter_is_never_handed_out(
    private_cache: Path,
    base_copy: Path,
    envs_for: EnvsFor,
    figure: Figure,
) -> None:
    first, _ = envs_for(private_cache)
    IsoEnvFactory(first).get("alpha==1.0", python=str(base_copy))
    first.close()  # that session ended: nobody runs in the env any more
    # A session that resolved the interpreter before it was removed (keys are worked out at collection).
    second, warnings = envs_for(private_cache)
    spec = second.spec(["alpha==1.0"], python=str(base_copy))
    second.key(spec)
    shutil.rmtree(base_copy.parent.parent)

    with pytest.raises(BuildError) as failed:
        second.env(spec)

    [warning] = warnings
    assert warning.endswith(f"its base interpreter {base_copy} was removed")
    assert env_entries(private_cache) == []
    with pytest.raises(InterpreterNotFound) as not_found:
        IsoEnvFactory(envs_for(private_cache)[0]).get("alpha==1.0", python=str(base_copy))
    figure(
        f"base interpreter removed: a session that had resolved it warned {warning!r} and failed the rebuild "
        f"({str(failed.value).splitlines()[0]!r}), leaving no entry; a new session: {not_found.value}"
    )
