"""pip in every env as links to one compiled image of it in the cache, whichever installer built the env."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from helpers import MakeEnvs

from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.installers.api import bundled_wheels
from pytest_isoenv.installers.seed import links_supported

pytestmark = pytest.mark.skipif(not links_supported(), reason="envs copy pip where links cannot be made")


def own_files(env: Path) -> list[Path]:
    """The regular files of *env* no other path links to."""
    found = []
    for folder, _, files in os.walk(env):
        for name in files:
            info = Path(folder, name).lstat()
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                found.append(Path(folder, name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_envs_link_one_compiled_pip_from_the_cache(installer: str, make_envs: MakeEnvs, tmp_path: Path) -> None:
    factory = IsoEnvFactory(make_envs(tmp_path / "cache", installer=installer))
    one, two = factory.get("alpha"), factory.get("beta")

    links = {env: {p.name: p for p in env.site_packages.iterdir() if p.name.startswith("pip")} for env in (one, two)}
    assert all(link.is_symlink() for env in (one, two) for link in links[env].values())
    # Relative, so that a cache moved or restored elsewhere as a whole keeps working envs.
    assert not any(link.readlink().is_absolute() for link in links[one].values())
    image = links[one]["pip"].resolve().parent
    assert image.parent == tmp_path / "cache" / "seeds"
    assert {p.resolve() for p in links[one].values()} == {p.resolve() for p in links[two].values()}
    # Compiled once, read-only: nothing run from any env writes into it.
    assert (image / "pip" / "__pycache__").is_dir()
    assert not any(p.stat().st_mode & 0o222 for p in (image / "pip").rglob("*.py*"))
    # An env holds a few files of its own: its scripts, its packages' and their bytecode, its record.
    assert len(own_files(two.path)) < 40
    for env in (one, two):
        for command in (("python", "-m", "pip"), ("pip",)):
            assert f"from {env.site_packages / 'pip'} " in env.run(*command, "--version").stdout
        assert "alpha" in env.run("python", "-m", "pip", "list").stdout


@pytest.mark.slow
def test_pip_replacing_itself_in_a_private_env_leaves_the_image_to_the_others(
    make_envs: MakeEnvs, tmp_path: Path
) -> None:
    factory = IsoEnvFactory(make_envs(tmp_path / "cache"))
    shared = factory.get("alpha")
    private = factory.get("alpha", private=True)
    image = (shared.site_packages / "pip").resolve()
    files = sorted(p.relative_to(image) for p in image.rglob("*"))
    wheel = next(bundled_wheels().glob("pip-*.whl"))

    assert (private.site_packages / "pip").resolve() == image
    private.run("python", "-m", "pip", "install", "--no-index", "--force-reinstall", "--no-deps", str(wheel))

    # The private env, elsewhere, still finds the image; then pip removed the private env's links (the image's RECORD lists them) and installed real files in their place.
    assert not (private.site_packages / "pip").is_symlink()
    assert (private.site_packages / "pip" / "__init__.py").is_file()
    assert sorted(p.relative_to(image) for p in image.rglob("*")) == files
    assert "from " + str(shared.site_packages / "pip") in shared.run("python", "-m", "pip", "--version").stdout
    private.run("python", "-m", "pip", "uninstall", "--yes", "pip")
    assert sorted(p.relative_to(image) for p in image.rglob("*")) == files
    assert shared.run("python", "-m", "pip", "--version").returncode == 0
