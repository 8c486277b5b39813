"""The cache owns its folder and nothing else: it writes into and deletes from only a folder it made and tagged,
and there only names it makes; a bad entry fails only the tests that need it; a read-only cache still serves."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import EnvsFor, marked_tests
from reliability_helpers import PRECIOUS, Figure, plant_link

from pytest_isoenv import CacheError, IsoEnvFactory
from pytest_isoenv.store.cache import Cache

posix = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
OLD = time.time() - 60 * 86400


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every path under *root* with its content (files) and mtime: what must not change."""
    found = {}
    for path in sorted(root.rglob("*")):
        content = path.read_text() if path.is_file() else "<dir>"
        found[str(path.relative_to(root))] = (content, path.lstat().st_mtime_ns)
    return found


@pytest.fixture
def users_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of the user's, with files a careless cache would overwrite or prune, given as the cache dir."""
    folder = tmp_path / "projects"
    (folder / "envs" / "important").mkdir(parents=True)
    (folder / "envs" / "important" / "thesis.tex").write_text("years of work\n")
    (folder / ".gitignore").write_text("*.log\n")
    (folder / "old-notes").mkdir()
    (folder / "old-notes" / "a.txt").write_text("keep me\n")
    for path in (folder / "old-notes", folder / "envs" / "important", folder / "envs"):
        os.utime(path, (OLD, OLD))
    monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(folder))
    return folder


@pytest.mark.parametrize("command", ["run", "--isoenv-list", "--isoenv-prune", "--isoenv-clear"])
def test_a_folder_that_is_not_a_cache_is_never_written_or_deleted(
    pytester: pytest.Pytester, users_folder: Path, command: str, figure: Figure
) -> None:
    before = snapshot(users_folder)
    pytester.makepyfile(marked_tests(test_alpha='"alpha"'))
    result = pytester.runpytest(*([] if command == "run" else [command]), "--isoenv-max-age=0")
    output = result.stdout.str() + result.stderr.str()
    assert "was not made by pytest-isoenv" in output
    assert f"{users_folder}" in output
    assert "Point --isoenv-cache-dir (or PYTEST_ISOENV_CACHE_DIR) at a new or empty directory" in output
    assert snapshot(users_folder) == before
    if command == "run":
        result.assert_outcomes(errors=1)
    else:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
    figure(f"cache dir pointed at a folder of the user's ({command}): refused, every file and mtime unchanged")


def test_an_empty_folder_becomes_a_cache(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir(mode=0o700)
    Cache(folder).ensure()
    assert Cache(folder).is_ours()
    assert (folder / "envs").is_dir()


def test_names_the_cache_does_not_make_are_left_alone(
    pytester: pytest.Pytester, private_cache: Path, envs_for: EnvsFor, figure: Figure
) -> None:
    envs, _ = envs_for(private_cache)
    IsoEnvFactory(envs).get("alpha==1.0")
    envs.close()
    strangers = [
        private_cache / "envs" / "important",
        private_cache / "envs" / "notes.txt",
        private_cache / "trash" / "keep.me",
    ]
    (strangers[0]).mkdir()
    (strangers[0] / "data").write_text("mine\n")
    strangers[1].write_text("mine\n")
    strangers[2].write_text("mine\n")

    listed = pytester.runpytest("--isoenv-list", "-v")
    cleared = pytester.runpytest("--isoenv-clear")

    listed.stdout.fnmatch_lines(["important *foreign: not made by pytest-isoenv (left alone) *"])
    cleared.stdout.fnmatch_lines(["*removed 1 env(s)*"])
    assert all(path.exists() for path in strangers)
    figure("envs/important, envs/notes.txt and trash/keep.me in a real cache: listed as foreign, never removed")


@posix
@pytest.mark.parametrize("damage", ["symlink", "other owner"])
def test_a_bad_entry_fails_only_the_tests_that_need_it(
    pytester: pytest.Pytester, private_cache: Path, tmp_path: Path, envs_for: EnvsFor, damage: str, figure: Figure
) -> None:
    if damage == "other owner" and (sys.platform == "win32" or os.geteuid() != 0):
        pytest.skip("giving a folder to another user needs root")
    envs, _ = envs_for(private_cache)
    entry = IsoEnvFactory(envs).get("beta").path.parent
    envs.close()
    elsewhere = tmp_path / "elsewhere"
    if damage == "symlink":
        entry.rename(elsewhere)
        entry.symlink_to(elsewhere, target_is_directory=True)
    else:
        os.chown(entry, 4242, 4242)
    pytester.makepyfile(marked_tests(test_alpha='"alpha==1.0"', test_beta='"beta"'))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"*{entry}*(in *::test_beta)"])

    listed = pytester.runpytest("--isoenv-list", "-v")
    listed.stdout.fnmatch_lines([f"{entry.name} *unusable: *"])
    cleared = pytester.runpytest("--isoenv-clear")
    assert cleared.ret == 0
    assert not entry.exists()
    assert not entry.is_symlink()
    if damage == "symlink":
        assert (elsewhere / "current").is_file(), "the link was removed, not followed"
    figure(f"envs/<key> as {damage}: only its test failed; --isoenv-list showed it; --isoenv-clear removed it")


@posix
def test_a_log_that_is_a_symlink_is_refused(
    private_cache: Path, tmp_path: Path, envs_for: EnvsFor, figure: Figure
) -> None:
    envs, _ = envs_for(private_cache)
    spec = envs.spec(["alpha==1.0"])
    envs.cache.ensure()
    victim = plant_link(envs.cache.log_path(envs.key(spec)), tmp_path)

    with pytest.raises(CacheError, match=r"the build log .* is a symlink; refusing to follow it") as refused:
        envs.env(spec)

    assert victim.read_text() == PRECIOUS
    figure(f"logs/<key>.log as a symlink: {str(refused.value).split(': ', 1)[-1][:120]}...; its target untouched")


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """*path* bind-mounted read-only onto itself for the block (root on Linux only; skips the test otherwise)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root on Linux")
    if subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        proc = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"cannot remount read-only here: {proc.stderr.strip()}")
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.slow
def test_a_read_only_cache_still_serves_its_envs(
    pytester: pytest.Pytester, private_cache: Path, figure: Figure
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv("alpha==1.0")
        def test_alpha(isoenv):
            assert isoenv.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip() == "1.0"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    with read_only(private_cache):
        result = pytester.runpytest()
        listed = pytester.runpytest("--isoenv-list", "-v")
    result.assert_outcomes(passed=1)
    assert "Traceback" not in result.stdout.str()
    [line] = [line for line in result.stdout.lines if "read-only" in line]
    assert line.startswith(f"isoenv: cannot record which envs this session uses in the isoenv cache {private_cache}")
    assert listed.ret == 0
    listed.stdout.fnmatch_lines(["* ready *"])
    figure(f"cache restored read-only with its env built: the test passed, one line said {line!r}")
