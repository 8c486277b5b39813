"""pip in every env as links to one compiled image of it in the cache, whichever installer built the env."""

from __future__ import annotations

import os
import stat
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import isoenv_testbackend as backend
import pytest
from helpers import MakeEnvs

from pytest_isoenv import IsolatedEnv
from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.installers.api import bundled_wheels
from pytest_isoenv.installers.seed import links_supported
from pytest_isoenv.session.envs import SessionEnvs
from pytest_isoenv.session.settings import Settings
from pytest_isoenv.spec.index import IndexOptions

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


def _files(image: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder of *image*, with its mode, size and modification time."""
    return {
        str(p.relative_to(image)): (p.lstat().st_mode, p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in image.rglob("*")
    }


@pytest.fixture
def with_a_pip(tmp_path: Path, wheelhouse: Path) -> Callable[..., IsoEnvFactory]:
    """A new session's factory on the test wheelhouse and one more folder: a pip 1.0, and a package needing pip."""
    more = tmp_path / "more"
    more.mkdir()
    backend.write_wheel(more, "pip", "1.0", files={"pip/__init__.py": "__version__ = '1.0'\n"})
    backend.write_wheel(more, "needspip", "1.0", requires=["pip"], files={"needspip/__init__.py": ""})

    def make(installer: str) -> IsoEnvFactory:
        settings = Settings(
            cache_dir=tmp_path / "cache",
            rootdir=tmp_path,
            run_id=uuid.uuid4().hex,
            index=IndexOptions(find_links=(str(wheelhouse), str(more)), offline=True),
            installer=installer,
        )
        return IsoEnvFactory(
            SessionEnvs(settings, private_root=lambda: Path(tempfile.mkdtemp(dir=tmp_path, prefix="private-")))
        )

    return make


def _pip_version(env: IsolatedEnv) -> str:
    return env.run("python", "-c", "import pip; print(pip.__version__)").stdout.strip()


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_an_env_that_installs_a_pip_leaves_the_image_to_the_others(
    installer: str, with_a_pip: Callable[..., IsoEnvFactory]
) -> None:
    factory = with_a_pip(installer)
    other = factory.get("alpha")
    image = (other.site_packages / "pip").resolve().parent
    before, seeded = _files(image), _pip_version(other)

    asked = factory.get("pip==1.0")
    needed = factory.get("needspip")

    assert _pip_version(asked) == "1.0"
    assert not (asked.site_packages / "pip").is_symlink()
    assert needed.run("python", "-c", "import needspip, pip").returncode == 0
    # uv does not see the linked pip, so it installs the one the package needs; pip keeps its own.
    assert _pip_version(needed) == ("1.0" if installer == "uv" else seeded)
    assert _files(image) == before
    assert _pip_version(other) == seeded
    assert "from " + str(other.site_packages / "pip") in other.run("python", "-m", "pip", "--version").stdout


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_installing_a_pip_into_a_private_env_leaves_the_image_to_the_others(
    installer: str, with_a_pip: Callable[..., IsoEnvFactory]
) -> None:
    factory = with_a_pip(installer)
    shared = factory.get("alpha")
    image = (shared.site_packages / "pip").resolve().parent
    before, seeded = _files(image), _pip_version(shared)

    keeps, replaces = factory.get("alpha", private=True), factory.get("alpha", private=True)
    keeps.install("beta")
    replaces.install("pip==1.0")

    assert (keeps.site_packages / "pip").is_symlink()
    assert _pip_version(keeps) == seeded
    assert _pip_version(replaces) == "1.0"
    assert not (replaces.site_packages / "pip").is_symlink()
    assert _files(image) == before
    assert _pip_version(shared) == seeded
