"""The cache cannot be turned against its user: a private root, no symlinks or foreign folders, no lock that
follows a link, and nothing of the host's Python settings inside an env."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import filelock
import pytest
from helpers import EnvsFor, MakeFactory
from reliability_helpers import PRECIOUS, Figure, plant_link

from pytest_isoenv import CacheError, IsoEnvFactory
from pytest_isoenv.store.cache import Cache
from pytest_isoenv.store.record import RECORD_NAME

#: A uid that is not the test's: root can hand folders to it, as another user of a shared /tmp would own them.
OTHER_UID = 4242
as_root = pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() != 0, reason="giving a folder to another user needs root"
)
posix = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
SUBFOLDERS = ("envs", "locks", "logs", "trash")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_cache_root_is_created_private(tmp_path: Path, figure: Figure) -> None:
    root = tmp_path / "new" / "cache"
    umask = os.umask(0)  # the most permissive umask: the modes must not come from it
    try:
        Cache(root).ensure()
    finally:
        os.umask(umask)
    modes = {path.name: mode(path) for path in (root, *(root / sub for sub in SUBFOLDERS))}
    assert set(modes.values()) == {0o700}
    figure(f"cache root and its folders created with modes {', '.join(f'{n} {m:o}' for n, m in modes.items())}")


@posix
@pytest.mark.parametrize("link", ["cache", *SUBFOLDERS])
def test_symlinked_cache_folder_is_refused(tmp_path: Path, link: str, figure: Figure) -> None:
    root, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
    elsewhere.mkdir()
    if link != "cache":
        Cache(root).ensure()
        (root / link).rmdir()
    (tmp_path / "cache" if link == "cache" else root / link).symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(CacheError, match=r"is a symlink; refusing it") as refused:
        Cache(root).ensure()

    assert list(elsewhere.iterdir()) == []
    figure(f"{link} as a symlink: {refused.value}")


@as_root
def test_cache_root_of_another_user_is_refused(tmp_path: Path, figure: Figure) -> None:
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    os.chown(root, OTHER_UID, OTHER_UID)

    with pytest.raises(CacheError, match=rf"is owned by uid {OTHER_UID}, not by you") as refused:
        Cache(root).ensure()

    assert list(root.iterdir()) == []
    figure(f"cache root owned by uid {OTHER_UID}: {refused.value}")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_cache_root_writable_by_others_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o777)

    with pytest.raises(CacheError, match=r"is writable by others \(mode 777\).*chmod go-w"):
        Cache(root).ensure()


@posix
def test_symlinked_env_folder_is_refused(
    private_cache: Path, envs_for: EnvsFor, tmp_path: Path, figure: Figure
) -> None:
    # The bait: a complete env with a valid record, moved out and linked back in, as an attacker would plant one.
    env = IsoEnvFactory(envs_for(private_cache)[0]).get("alpha")
    planted = tmp_path / "planted"
    env.path.rename(planted)
    env.path.symlink_to(planted, target_is_directory=True)

    with pytest.raises(CacheError, match=r"is a symlink; refusing it") as refused:
        IsoEnvFactory(envs_for(private_cache)[0]).get("alpha")

    assert (planted / RECORD_NAME).is_file()
    figure(f"env folder as a symlink: {refused.value}")


@as_root
def test_env_folder_of_another_user_is_refused(private_cache: Path, envs_for: EnvsFor, figure: Figure) -> None:
    env = IsoEnvFactory(envs_for(private_cache)[0]).get("alpha")
    os.chown(env.path, OTHER_UID, OTHER_UID)

    with pytest.raises(CacheError, match=rf"is owned by uid {OTHER_UID}, not by you") as refused:
        IsoEnvFactory(envs_for(private_cache)[0]).get("alpha")

    assert (env.path / RECORD_NAME).is_file()
    figure(f"env folder owned by uid {OTHER_UID}: {refused.value}")


@posix
def test_lock_file_symlink_is_not_followed(
    private_cache: Path, envs_for: EnvsFor, tmp_path: Path, figure: Figure
) -> None:
    envs, _ = envs_for(private_cache)
    spec = envs.spec(["alpha"])
    lock = private_cache / "locks" / f"{envs.cache.entry_dir(envs.key(spec)).name}.lock"
    victim = plant_link(lock, tmp_path)

    with pytest.raises(CacheError, match=r"is a symlink; refusing to follow it") as refused:
        envs.env(spec)

    assert victim.read_text() == PRECIOUS
    assert mode(victim) == 0o644
    assert not envs.cache.entry_dir(envs.key(spec)).exists()
    try:
        filelock.FileLock(lock, mode=0o600).acquire(timeout=0)
        own = "follows it"
    except OSError:
        own = "refuses it too"
    figure(f"lock file as a symlink: {refused.value} (filelock {filelock.__version__} alone {own})")


def test_run_keeps_host_python_settings_out(
    make_factory: MakeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figure: Figure
) -> None:
    env = make_factory().get("alpha")
    poison = tmp_path / "poison"
    poison.mkdir()
    (poison / "sitecustomize.py").write_text("print('POISON: sitecustomize from PYTHONPATH')\n")
    (poison / "startup.py").write_text("print('POISON: PYTHONSTARTUP')\n")
    user_site = tmp_path / "userbase" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    user_site.mkdir(parents=True)
    (user_site / "usercustomize.py").write_text("print('POISON: usercustomize from the user site')\n")
    monkeypatch.setenv("PYTHONPATH", str(poison))
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "no-such-home"))  # would stop the interpreter from starting
    monkeypatch.setenv("PYTHONSTARTUP", str(poison / "startup.py"))
    monkeypatch.setenv("PYTHONUSERBASE", str(tmp_path / "userbase"))

    # -i runs PYTHONSTARTUP first, if it gets through.
    probe = env.run("python", "-i", input="import site, sys; print(sys.path); print(site.ENABLE_USER_SITE)\n")
    pip = env.run("python", "-m", "pip", "--version")

    seen = probe.stdout + probe.stderr + pip.stdout + pip.stderr
    assert "POISON" not in seen
    assert str(tmp_path) not in probe.stdout
    assert probe.stdout.splitlines()[-1] == "False"
    assert env.run("python", "-c", "import alpha").returncode == 0
    figure("PYTHONPATH, PYTHONHOME, PYTHONSTARTUP and a user site all poisoned on the host: none reached the env")


def test_building_keeps_host_python_settings_out(
    make_factory: MakeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figure: Figure
) -> None:
    """Discovery's probe, env creation and the install all run interpreters: none may see the host's settings."""
    poison = tmp_path / "poison"
    poison.mkdir()
    (poison / "sitecustomize.py").write_text("raise SystemExit('POISON: sitecustomize from PYTHONPATH')\n")
    monkeypatch.setenv("PYTHONPATH", str(poison))
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "no-such-home"))  # would stop any interpreter from starting

    # A new cache: the interpreter is probed afresh, by path, and the env created and filled for real.
    env = make_factory(tmp_path / "cache").get("alpha", python=os.path.realpath(sys.executable))

    assert env.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout == "2.0\n"
    figure("PYTHONPATH and PYTHONHOME poisoned on the host: the interpreter probe, creation and install all passed")
