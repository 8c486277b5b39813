"""uv's configuration for the key: every setting by value unless harmless, the files and folders named by content."""

from __future__ import annotations

import os
from pathlib import Path

import isoenv_testbackend as backend
import pytest
from helpers import MakeFactory, aged, imported, new_session

from pytest_isoenv.installers.api import InstallerDirs
from pytest_isoenv.installers.uv import UvInstaller, find_uv
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.uvconfig import flat_indexes, uv_config, uv_resolution_settings
from pytest_isoenv.tomlfile import read_toml


@pytest.mark.parametrize("variable", ["UV_CONSTRAINT", "UV_OVERRIDE", "UV_EXCLUDE", "UV_BUILD_CONSTRAINT"])
def test_requirements_files_uv_variables_name_count_by_content(tmp_path: Path, variable: str) -> None:
    named = aged(tmp_path / "pins.txt", "alpha==1.0\n")
    environ = {variable: str(named), "UV_NO_CONFIG": "1"}
    unset = uv_resolution_settings({"UV_NO_CONFIG": "1"}, FileHashes())
    first = uv_resolution_settings(environ, FileHashes())
    assert first != unset
    aged(named, "alpha==2.0\n")  # same name, same size: only the content differs
    assert uv_resolution_settings(environ, FileHashes()) != first


def test_every_uv_variable_counts_by_value_unless_harmless() -> None:
    base = uv_resolution_settings({"UV_NO_CONFIG": "1"})
    # A setting no list names (a future uv's, say) counts; harmless ones and those no build sees do not.
    assert uv_resolution_settings({"UV_NO_CONFIG": "1", "UV_SOME_FUTURE_SETTING": "1"}) != base
    assert uv_resolution_settings({"UV_NO_CONFIG": "1", "UV_LINK_MODE": "symlink"}) != base
    ignored = {"UV_CONCURRENT_DOWNLOADS": "2", "UV_KEYRING_PROVIDER": "subprocess", "UV_WORKING_DIR": "/x"}
    assert uv_resolution_settings({"UV_NO_CONFIG": "1", **ignored}) == base


def test_uv_config_counts_by_setting_and_its_find_links_folders_by_content(tmp_path: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    wheel = backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'old'\n"})
    config = aged(tmp_path / "uv.toml", f'cache-dir = "/one"\n[pip]\nfind-links = ["{house}"]\n')
    environ = {"UV_CONFIG_FILE": str(config)}
    first = uv_resolution_settings(environ, FileHashes())

    aged(config, f'cache-dir = "/two"\n[pip]\nfind-links = ["{house}"]\n')
    assert uv_resolution_settings(environ, FileHashes()) == first, "where uv caches does not change an env"

    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'new'\n"})
    assert wheel.exists()
    assert uv_resolution_settings(environ, FileHashes()) != first, "a rebuilt wheel in a find-links folder counts"


@pytest.mark.parametrize("url", ["absolute", "relative", "file-url"])
def test_a_flat_index_folder_in_uv_config_counts_by_content(tmp_path: Path, url: str) -> None:
    house = tmp_path / "house"
    house.mkdir()
    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'old'\n"})
    named = {"absolute": str(house), "relative": "house", "file-url": house.as_uri()}[url]
    config = aged(tmp_path / "uv.toml", f'[[index]]\nname = "local"\nurl = "{named}"\nformat = "flat"\n')
    environ = {"UV_CONFIG_FILE": str(config)}
    first = uv_resolution_settings(environ, FileHashes())

    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'new'\n"})

    assert uv_resolution_settings(environ, FileHashes()) != first, "a rebuilt wheel in a flat index counts"


def test_only_flat_indexes_count_as_folders(tmp_path: Path) -> None:
    table = {
        "index": [
            {"name": "flat", "url": "wheels", "format": "flat"},
            {"name": "simple", "url": "https://example.invalid/simple"},
            {"name": "remote-flat", "url": "https://example.invalid/links", "format": "flat"},
        ]
    }
    assert flat_indexes(table, tmp_path) == [str(tmp_path / "wheels"), "https://example.invalid/links"]
    assert flat_indexes({"index": "not a list"}, tmp_path) == []


def test_relative_locations_in_a_uv_config_mean_its_folder_in_the_file_builds_run_with(tmp_path: Path) -> None:
    config = aged(
        tmp_path / "conf" / "uv.toml",
        'find-links = ["top"]\n[[index]]\nname = "a"\nurl = "flat"\nformat = "flat"\n'
        '[[index]]\nname = "b"\nurl = "https://example.invalid/simple"\n'
        '[pip]\nfind-links = ["wheels", "https://example.invalid/links"]\nextra-index-url = ["../simple"]\n',
    )

    text, _ = uv_config([config])

    assert text is not None
    (tmp_path / "built.toml").write_text(text)
    data = read_toml(tmp_path / "built.toml")
    folder = tmp_path / "conf"
    assert data["find-links"] == [str(folder / "top")]
    assert [entry["url"] for entry in data["index"]] == [str(folder / "flat"), "https://example.invalid/simple"]
    assert data["pip"]["find-links"] == [str(folder / "wheels"), "https://example.invalid/links"]
    assert data["pip"]["extra-index-url"] == [str(tmp_path / "simple")]


@pytest.mark.skipif(find_uv() is None, reason="uv is not installed")
def test_uv_runs_without_the_variables_that_move_it_elsewhere(tmp_path: Path) -> None:
    installer = UvInstaller(InstallerDirs(app_data=tmp_path / "virtualenv", uv_cache=tmp_path / "uv"))
    environ = installer.environ({"UV_WORKING_DIR": "/elsewhere", "UV_PROJECT": "/elsewhere", "UV_CACHE_DIR": "/c"})
    assert "UV_WORKING_DIR" not in environ
    assert "UV_PROJECT" not in environ


@pytest.mark.slow
@pytest.mark.skipif(find_uv() is None, reason="uv is not installed")
def test_a_uv_overrides_file_counts_by_content(
    make_factory: MakeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = aged(tmp_path / "overrides.txt", "alpha==2.0\n")
    monkeypatch.setenv("UV_OVERRIDE", str(overrides))
    first = make_factory(tmp_path / "cache", installer="uv").get("beta")  # beta asks for alpha<2
    assert imported(first, "alpha", "VERSION") == "2.0"

    aged(overrides, "alpha==1.0\n")  # same name, same size
    second = make_factory(tmp_path / "cache", installer="uv").get("beta")

    assert second.key != first.key
    assert imported(second, "alpha", "VERSION") == "1.0"


@pytest.mark.slow
@pytest.mark.skipif(find_uv() is None, reason="uv is not installed")
def test_uv_exclude_counts_and_its_end_gives_the_env_back_its_dependency(
    make_factory: MakeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    excludes = aged(tmp_path / "excludes.txt", "alpha\n")
    monkeypatch.setenv("UV_EXCLUDE", str(excludes))
    first = make_factory(tmp_path / "cache", installer="uv").get("beta")
    assert imported(first, "alpha", "VERSION") == "missing"

    monkeypatch.delenv("UV_EXCLUDE")
    second = make_factory(tmp_path / "cache", installer="uv").get("beta")

    assert second.key != first.key
    assert imported(second, "alpha", "VERSION") == "1.0"


@pytest.mark.slow
@pytest.mark.parametrize(("config", "installer"), [("uv.toml", "uv"), ("pip.conf", "uv"), ("pip.conf", "pip")])
def test_a_wheel_rebuilt_in_a_find_links_folder_the_users_config_names_is_installed(
    make_factory: MakeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, installer: str
) -> None:
    if installer == "uv" and find_uv() is None:
        pytest.skip("uv is not installed")
    house = tmp_path / "house"
    house.mkdir()
    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'old'\n"})
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)  # a variable would win over the file
    if config == "uv.toml":
        monkeypatch.setenv("UV_CONFIG_FILE", str(aged(tmp_path / config, f'[pip]\nfind-links = ["{house}"]\n')))
    else:
        monkeypatch.setenv("PIP_CONFIG_FILE", str(aged(tmp_path / config, f"[global]\nfind-links = {house}\n")))
    first = make_factory(tmp_path / "cache", installer=installer).get("gamma")
    assert imported(first, "gamma") == "old"

    # New code, same version, same file name, same size: only the content says it changed.
    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'new'\n"})
    second = make_factory(tmp_path / "cache", installer=installer).get("gamma")

    assert second.key != first.key
    assert imported(second, "gamma") == "new"


@pytest.mark.slow
@pytest.mark.skipif(find_uv() is None, reason="uv is not installed")
def test_a_wheel_rebuilt_in_a_flat_index_the_users_uv_config_names_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'old'\n"})
    # Relative, as uv reads it: against the file's folder.
    flat = '[[index]]\nname = "house"\nurl = "house"\nformat = "flat"\n'
    monkeypatch.setenv("UV_CONFIG_FILE", str(aged(tmp_path / "uv.toml", flat)))
    # An index, which no-index (as this machine's pip configuration may say) would hide: no pip settings.
    for name in [n for n in os.environ if n.startswith(("PIP_", "UV_")) and n != "UV_CONFIG_FILE"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    first = new_session(tmp_path / "cache", installer="uv", offline=False).get("gamma")
    assert imported(first, "gamma") == "old"

    # New code, same version, same file name, same size: only the content says it changed.
    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'new'\n"})
    second = new_session(tmp_path / "cache", installer="uv", offline=False).get("gamma")

    assert second.key != first.key
    assert imported(second, "gamma") == "new"
