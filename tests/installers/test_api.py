"""Installers: the command lines they run, the settings that go into the key, the stages of a build, and the choice."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from helpers import MakeEnvs

from pytest_isoenv.errors import SpecError
from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.installers.api import Installer, InstallerDirs
from pytest_isoenv.installers.choice import select_installer
from pytest_isoenv.installers.pip import PipInstaller
from pytest_isoenv.key import settings
from pytest_isoenv.key.material import index_material
from pytest_isoenv.key.settings import (
    PipConfig,
    PipSetting,
    dropped_pip_settings,
    pip_environ,
    uv_from_pip,
)
from pytest_isoenv.key.uvconfig import uv_config
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.index import IndexOptions

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


def dirs(root: Path) -> InstallerDirs:
    """Installer folders in a cache root *root*."""
    return InstallerDirs(app_data=root / "virtualenv", uv_cache=root / "uv")


def test_pip_command_carries_packages_and_index_options(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    (tmp_path / "reqs.txt").write_text("")
    (tmp_path / "c.txt").write_text("")
    spec = EnvSpec.from_arguments(
        ["attrs", "./proj"], rootdir=tmp_path, editable=["proj"], requirements_files="reqs.txt", constraints="c.txt"
    )
    index = IndexOptions(index_url="https://mirror.example/simple", find_links=("/wheels",), offline=True)
    command = PipInstaller(dirs(tmp_path)).install_command(Path("/env/bin/python"), spec, index)
    project = str(tmp_path / "proj")
    assert command[:4] == ["/env/bin/python", "-m", "pip", "install"]
    tail = command[command.index("--index-url") :]
    assert tail == [
        "--index-url", "https://mirror.example/simple", "--find-links", "/wheels", "--no-index",
        "attrs", project, "-e", project, "-r", str(tmp_path / "reqs.txt"), "-c", str(tmp_path / "c.txt"),
    ]  # fmt: skip


def test_pip_settings_from_variables_and_config_files(tmp_path: Path) -> None:
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nindex-url = https://mirror.example/simple\ntimeout = 60\n[install]\npre = true\n")
    environ = {"PIP_CONFIG_FILE": str(config), "PIP_ONLY_BINARY": ":all:", "PIP_CERT": "x"}
    settings = PipConfig.read(environ).resolution_settings()
    assert settings["global.index-url"] == "https://mirror.example/simple"
    assert settings["install.pre"] == "true"
    assert settings["PIP_ONLY_BINARY"] == ":all:"
    assert "global.timeout" not in settings, "a timeout does not change what gets installed"
    assert "PIP_CERT" not in settings


def test_pip_config_can_be_turned_off() -> None:
    assert PipConfig.read({"PIP_CONFIG_FILE": os.devnull}).resolution_settings() == {}


def test_local_find_links_count_by_their_files(tmp_path: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    empty = index_material(IndexOptions(find_links=(str(house),)))
    (house / "alpha-1.0-py3-none-any.whl").write_text("")
    assert index_material(IndexOptions(find_links=(str(house),))) != empty
    assert index_material(IndexOptions(find_links=("https://x.example/",)))["find_links"] == ["https://x.example/"]


def test_select_installer(tmp_path: Path) -> None:
    assert isinstance(select_installer("pip", dirs=dirs(tmp_path)), PipInstaller)
    assert isinstance(select_installer(None, dirs=dirs(tmp_path)), Installer)
    with pytest.raises(SpecError, match=r"^unknown installer 'conda'\. Choose one of: auto, pip.* \(in test_a\)"):
        select_installer("conda", dirs=dirs(tmp_path), where="test_a")


def test_an_installer_choice_reads_the_pip_configuration_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = settings.pip_config_files
    calls: list[object] = []

    def counted(environ: Mapping[str, str]) -> list[Path]:
        calls.append(environ)
        return found(environ)

    monkeypatch.setattr(settings, "pip_config_files", counted)
    installer = select_installer(None, dirs=dirs(tmp_path))
    for _ in range(2):
        installer.key_material(IndexOptions())
        installer.environ({})
    assert len(calls) == 1


def test_an_installer_follows_the_pip_configuration_it_is_given(tmp_path: Path) -> None:
    given = PipConfig.read({"PIP_CONFIG_FILE": os.devnull, "PIP_PRE": "1", "PIP_TIMEOUT": "9"})
    installer = PipInstaller(dirs(tmp_path), given)
    assert installer.key_material(IndexOptions())["settings"] == {"PIP_PRE": "1"}
    assert installer.environ({})["PIP_PRE"] == "1"


def test_pip_settings_follow_pips_precedence(tmp_path: Path) -> None:
    system, user = tmp_path / "system.conf", tmp_path / "user.conf"
    system.write_text("[install]\nindex-url = https://install-section.invalid\n[global]\nno-deps = yes\n")
    user.write_text("[global]\nindex-url = https://global-section.invalid\nno-deps = no\npre =\n")
    settings = PipConfig.read({"PIP_NO_DEPS": "1"}, [system, user]).settings
    # Every [install] section beats every [global] one; a variable beats both; empty values count for nothing.
    assert settings["index-url"] == PipSetting("https://install-section.invalid", f"{system} [install] index-url")
    assert settings["no-deps"] == PipSetting("1", "PIP_NO_DEPS")
    assert settings["no-deps"].enabled
    assert "pre" not in settings


def test_pip_runs_with_its_settings_restated_less_those_that_install_elsewhere(tmp_path: Path) -> None:
    config = tmp_path / "pip.conf"
    config.write_text("[install]\ntarget = /elsewhere\nuser = true\n[global]\nfind-links = /wheels /more\n")
    settings = PipConfig.read({"PIP_PYTHON": "/other/python", "PIP_PREFIX": "/p"}, [config]).settings
    environ = pip_environ({"PATH": "/bin", "PIP_PYTHON": "/other/python", "PIP_PREFIX": "/p"}, settings)
    assert environ == {"PATH": "/bin", "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "/wheels /more"}
    assert sorted(dropped_pip_settings(settings)) == [
        "prefix (PIP_PREFIX)",
        "python (PIP_PYTHON)",
        f"target ({config} [install] target)",
        f"user ({config} [install] user)",
    ]


def test_uv_configuration_files_are_combined_as_uv_combines_them(tmp_path: Path) -> None:
    user, system = tmp_path / "user.toml", tmp_path / "system.toml"
    user.write_text('index-url = "https://user.invalid"\n[pip]\nfind-links = ["/user"]\ntarget = "/elsewhere"\n')
    system.write_text(
        'index-url = "https://system.invalid"\nnative-tls = true\n'
        '[pip]\nfind-links = ["/system"]\nprerelease = "allow"\n'
        '[[index]]\nname = "corp"\nurl = "https://corp.invalid/simple"\n'
    )
    text, dropped = uv_config([user, system])
    assert text is not None
    assert tomllib.loads(text) == {
        "index-url": "https://user.invalid",
        "native-tls": True,
        "pip": {"find-links": ["/user", "/system"], "prerelease": "allow"},
        "index": [{"name": "corp", "url": "https://corp.invalid/simple"}],
    }
    assert dropped == ["[pip] target"]
    assert uv_config([]) == (None, [])
    (tmp_path / "broken.toml").write_text("index-url = \n")
    with pytest.raises(ValueError, match=r"broken\.toml"):
        uv_config([tmp_path / "broken.toml"])
    (tmp_path / "latin.toml").write_bytes(b'index-url = "https://\xe9.invalid"\n')
    with pytest.raises(ValueError, match=r"^cannot read the uv configuration file .*latin\.toml"):
        uv_config([tmp_path / "latin.toml"])


def test_pip_settings_carried_to_uv_and_those_that_cannot_be() -> None:
    settings = {
        "pre": PipSetting("true", "PIP_PRE"),
        "no-build-isolation": PipSetting("off", "PIP_NO_BUILD_ISOLATION"),
        "constraint": PipSetting("/c1.txt /c2.txt", "PIP_CONSTRAINT"),
        "trusted-host": PipSetting("a.invalid b.invalid", "PIP_TRUSTED_HOST"),
        "only-binary": PipSetting(":all:", "PIP_ONLY_BINARY"),
        "upgrade-strategy": PipSetting("eager", "PIP_UPGRADE_STRATEGY"),
        "target": PipSetting("/elsewhere", "PIP_TARGET"),
    }
    carried = uv_from_pip(settings)
    assert carried.arguments == ("--prerelease", "allow", "--constraint", "/c1.txt", "--constraint", "/c2.txt")
    assert carried.environ == {"UV_INSECURE_HOST": "a.invalid b.invalid"}
    assert carried.not_carried == ("only-binary (PIP_ONLY_BINARY)",)


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_every_installer_builds_in_the_same_stages(installer: str, make_envs: MakeEnvs, tmp_path: Path) -> None:
    envs = make_envs(tmp_path / "cache", installer=installer)
    env = IsoEnvFactory(envs).get("alpha")
    log = envs.cache.log_path(env.key).read_text().splitlines()
    commands = [line for line in log if line.startswith("$ ")]
    create = "virtualenv" if installer == "pip" else "uv venv"
    # Seeding compiles pip's image in the cache's seeds/ (a new cache has none yet), then links it; uv, which
    # does not see linked pip, installs first (see installers/seed.py).
    seed, install = f"{os.sep}seeds{os.sep}", "alpha"
    stages = (
        [create, seed, install, "site-packages"] if installer == "pip" else [create, install, seed, "site-packages"]
    )
    assert [next(i for i, c in enumerate(commands) if stage in c) for stage in stages] == list(range(len(stages)))
    assert "compileall" in commands[stages.index(seed)]
    assert "compileall" in commands[3]
