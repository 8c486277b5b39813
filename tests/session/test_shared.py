"""Shared envs are reused only while the local sources their packages came from are as they were built.

Each test builds an env for real from a local source the spec does not name
itself (an editable project's own path dependency, a group's wheel, a wheel of
a find-links folder from the user's configuration), changes that source, and
checks that the next session's env holds the change, while an unchanged source
keeps the env.
"""

from __future__ import annotations

import os
from pathlib import Path

import isoenv_testbackend as backend
import pytest
from helpers import MakeProject, write_pyproject
from helpers import new_session as session

from pytest_isoenv.run.env import IsolatedEnv

pytestmark = pytest.mark.slow  # every test builds an env, changes a source and builds again

INSTALLERS = ["pip", "uv"]


def value(env: IsolatedEnv, module: str) -> str:
    return env.run("python", "-c", f"import {module}; print({module}.VALUE)").stdout.strip()


def write_app(parent: Path, dependency: str, tool: str = "") -> Path:
    """An editable project ``app`` that depends on *dependency* (with *tool*, TOML after ``[project]``)."""
    (parent / "app" / "app").mkdir(parents=True)
    (parent / "app" / "app" / "__init__.py").write_text("")
    project = f'[project]\nname = "app"\nversion = "0.1"\ndependencies = [{dependency!r}]\n\n{tool}'
    return write_pyproject(parent / "app", project)


@pytest.mark.parametrize(
    ("installer", "how"),
    [("pip", "file URL"), ("uv", "file URL"), ("uv", "tool.uv.sources")],
)
def test_an_editable_projects_path_dependency_edited_reaches_the_next_sessions_env(
    tmp_path: Path, wheelhouse: Path, make_project: MakeProject, installer: str, how: str
) -> None:
    lib = make_project("lib", parent=tmp_path / "repo", body="VALUE = 'old'\n")
    if how == "file URL":
        app = write_app(tmp_path / "repo", f"lib @ {lib.as_uri()}")
    else:
        app = write_app(tmp_path / "repo", "lib", '[tool.uv.sources]\nlib = { path = "../lib" }\n')
    cache = tmp_path / "cache"
    said: list[str] = []
    first = session(cache, wheelhouse, installer=installer).get(editable=app)
    assert value(first, "lib") == "old"
    reused = session(cache, wheelhouse, installer=installer, notify=said.append).get(editable=app)
    assert reused.path == first.path  # unchanged: reused
    assert said == [], "a reuse says nothing"

    (lib / "lib" / "__init__.py").write_text("VALUE = 'new'\n")
    second = session(cache, wheelhouse, installer=installer, notify=said.append).get(editable=app)

    assert value(second, "lib") == "new"
    assert second.path != first.path  # a new generation: the old one stays for whoever still runs in it
    # The rebuild says why, in one line naming the source that changed.
    assert said == [
        f"rebuilding env (-e app 0.1) [{first.key[:12]}]: the project {lib} it was installed from changed since it was"
        " built"
    ]
    assert session(cache, wheelhouse, installer=installer).get(editable=app).path == second.path


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_groups_wheel_rebuilt_under_its_name_is_installed_anew(
    tmp_path: Path, wheelhouse: Path, installer: str
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    wheel = backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'old'\n"})
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(f'[dependency-groups]\ntest = ["gamma @ {wheel.as_uri()}"]\n')
    first = session(tmp_path / "cache", wheelhouse, rootdir=project, installer=installer).get(groups="test")
    assert value(first, "gamma") == "old"

    # New code, same version, same file name: only the content says it changed.
    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'new'\n"})
    second = session(tmp_path / "cache", wheelhouse, rootdir=project, installer=installer).get(groups="test")

    assert value(second, "gamma") == "new"
    assert second.key != first.key  # counted by content in the key, as the same requirement in a marker is


@pytest.mark.parametrize(("installer", "config"), [("pip", "pip.conf"), ("uv", "pip.conf"), ("uv", "uv.toml")])
def test_a_wheel_rebuilt_in_a_find_links_folder_of_the_users_configuration_is_installed_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: str, config: str
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'old'\n"})
    # Only the configuration under test: this machine's own may name find-links folders and indexes.
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("UV_FIND_LINKS", raising=False)
    if config == "pip.conf":
        (tmp_path / "pip.conf").write_text(f"[global]\nfind-links = {house}\n")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "pip.conf"))
    else:
        (tmp_path / "uv.toml").write_text(f"find-links = [{str(house)!r}]\n")
        monkeypatch.setenv("UV_CONFIG_FILE", str(tmp_path / "uv.toml"))
        monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    first = session(tmp_path / "cache", installer=installer).get("gamma")
    assert value(first, "gamma") == "old"

    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'new'\n"})
    second = session(tmp_path / "cache", installer=installer).get("gamma")

    assert value(second, "gamma") == "new"
