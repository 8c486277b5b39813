"""Private envs: copies of the cached env that a test may change without touching the cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import MakeFactory

from pytest_isoenv.errors import SpecError
from pytest_isoenv.run.privatecopy import unsupported

INSTALLERS = [pytest.param("pip", marks=pytest.mark.slow), "uv"]


@pytest.mark.parametrize("installer", INSTALLERS)
def test_private_env_is_a_copy_of_the_cached_env_that_points_at_itself(
    make_factory: MakeFactory, installer: str
) -> None:
    factory = make_factory(installer=installer)
    shared = factory.get("alpha==1.0", "clitool")
    private = factory.get("alpha==1.0", "clitool", private=True)
    assert private.path != shared.path
    assert private.key == shared.key
    assert private.installed() == shared.installed()
    prefix = private.run("python", "-c", "import sys; print(sys.prefix)").stdout.strip()
    assert Path(prefix).samefile(private.path)
    script = private.script("clitool")
    assert script is not None
    assert private.run("clitool").stdout.strip() == "clitool says hi"
    assert str(shared.path) not in script.read_text(errors="replace")
    assert str(shared.path) not in (private.path / "pyvenv.cfg").read_text()
    pip_location = private.run("pip", "--version").stdout
    assert str(private.path) in pip_location


@pytest.mark.parametrize("installer", INSTALLERS)
def test_changing_the_copy_leaves_the_cached_env_alone(make_factory: MakeFactory, installer: str) -> None:
    factory = make_factory(installer=installer)
    shared = factory.get("alpha==1.0", "clitool")
    before = {p: p.read_bytes() for p in shared.site_packages.rglob("*") if p.is_file()}
    private = factory.get("alpha==1.0", "clitool", private=True)
    private.install("alpha==2.0")
    private.run("python", "-m", "pip", "uninstall", "--yes", "clitool")
    assert private.installed()["alpha"] == "2.0"
    assert "clitool" not in private.installed()
    assert private.script("clitool") is None
    assert shared.installed()["alpha"] == "1.0"
    assert shared.run("clitool").stdout.strip() == "clitool says hi"
    after = {p: p.read_bytes() for p in shared.site_packages.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert after == {p: b for p, b in before.items() if "__pycache__" not in p.parts}


@pytest.mark.skipif(sys.platform == "win32", reason="hardlink counts as POSIX reports them")
def test_only_files_installers_replace_whole_are_hardlinked(make_factory: MakeFactory) -> None:
    factory = make_factory(installer="pip")
    shared = factory.get("clitool")
    private = factory.get("clitool", private=True)
    module = private.site_packages / "clitool" / "__init__.py"
    assert module.samefile(shared.site_packages / "clitool" / "__init__.py")
    copied = [
        private.path / "pyvenv.cfg",
        *private.site_packages.glob("*.pth"),
        *private.site_packages.glob("clitool-*.dist-info/*"),
        *(p for p in private.bin_dir.iterdir() if not p.is_symlink()),
    ]
    assert copied
    for path in copied:
        original = shared.path / path.relative_to(private.path)
        assert not original.exists() or not path.samefile(original), path


def test_each_private_env_is_new(make_factory: MakeFactory) -> None:
    factory = make_factory(installer="uv")
    first = factory.get("alpha==1.0", private=True)
    second = factory.get("alpha==1.0", private=True)
    assert first.path != second.path
    first.install("alpha==2.0")
    assert second.installed()["alpha"] == "1.0"
    assert not (Path(second.path) / "isoenv-record.json").exists()


def test_private_envs_are_refused_on_windows(make_factory: MakeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The .exe launchers in Scripts cannot be rewritten by byte replacement: refuse before building anything."""
    factory = make_factory(current_test=lambda: "tests/test_x.py::test_y")
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(
        SpecError, match=r"^private envs are not available on Windows: .* \(in tests/test_x\.py::test_y\)$"
    ):
        factory.get("alpha", private=True)
    monkeypatch.undo()
    assert unsupported() is None, "and only there"
