"""pip's configuration for the key: every setting by value unless harmless, what no build sees left out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import MakeFactory, aged, imported

from pytest_isoenv.installers.choice import installer_notes
from pytest_isoenv.installers.uv import find_uv
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.settings import PipConfig, pip_environ, uv_from_pip

OFF = {"PIP_CONFIG_FILE": os.devnull}


def test_every_pip_setting_counts_by_value_unless_harmless(tmp_path: Path) -> None:
    base = PipConfig.read(OFF).resolution_settings()
    # Settings no list names count: a future pip's, an alias of a known one.
    assert PipConfig.read({**OFF, "PIP_SOME_FUTURE_SETTING": "1"}).resolution_settings() != base
    assert PipConfig.read({**OFF, "PIP_NO_DEPENDENCIES": "1"}).resolution_settings() != base
    harmless = {"PIP_DEFAULT_TIMEOUT": "60", "PIP_RETRIES": "9", "PIP_NO_INPUT": "1", "PIP_CACHE_DIR": "/c"}
    assert PipConfig.read({**OFF, **harmless}).resolution_settings() == base
    config = aged(tmp_path / "pip.conf", "[global]\nprogress_bar = off\nexists-action = w\n")
    assert PipConfig.read({}, [config]).resolution_settings() == {"global.exists-action": "w"}


def test_pip_build_constraints_count_by_content(tmp_path: Path) -> None:
    named = aged(tmp_path / "build.txt", "setuptools==1\n")
    environ = {**OFF, "PIP_BUILD_CONSTRAINT": str(named)}
    first = PipConfig.read(environ).resolution_settings(FileHashes())
    aged(named, "setuptools==2\n")
    assert PipConfig.read(environ).resolution_settings(FileHashes()) != first


def test_pip_settings_that_add_requirements_reach_no_build(tmp_path: Path) -> None:
    requirements = aged(tmp_path / "extra.txt", "alpha\n")
    environ = {**OFF, "PIP_REQUIREMENT": str(requirements), "PIP_EDITABLE": str(tmp_path), "PIP_GROUP": "dev"}
    config = PipConfig.read(environ)
    assert config.resolution_settings() == {}
    assert not any(
        name.startswith(("PIP_REQUIREMENT", "PIP_EDITABLE", "PIP_GROUP")) for name in pip_environ({}, config.settings)
    )
    assert uv_from_pip(config.settings).not_carried == ()


def test_the_report_header_names_pip_settings_that_would_add_requirements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_REQUIREMENT", "/ci/requirements.txt")
    _, warnings = installer_notes("pip")
    assert any("requirement (PIP_REQUIREMENT)" in w and "requirements_files=" in w for w in warnings), warnings


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_pip_setting_no_list_named_counts_by_value(
    make_factory: MakeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: str
) -> None:
    if installer == "uv" and find_uv() is None:
        pytest.skip("uv is not installed")
    first = make_factory(tmp_path / "cache", installer=installer).get("beta")  # beta needs alpha
    assert imported(first, "alpha", "VERSION") == "1.0"

    # --no-dependencies is pip's second name of --no-deps: pip follows it, and uv gets --no-deps.
    monkeypatch.setenv("PIP_NO_DEPENDENCIES", "1")
    second = make_factory(tmp_path / "cache", installer=installer).get("beta")

    assert second.key != first.key
    assert imported(second, "alpha", "VERSION") == "missing"
