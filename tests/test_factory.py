"""IsoEnvFactory: real builds, reuse across sessions, invalidation, and failed installs."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import traceback
from dataclasses import replace
from pathlib import Path

import isoenv_testbackend as backend
import pytest
from helpers import MakeEnvs, MakeFactory, MakeProject

from pytest_isoenv import BuildError, SpecError
from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.session.envs import SessionEnvs
from pytest_isoenv.spec.index import IndexOptions
from pytest_isoenv.store.record import RECORD_NAME


def test_second_session_builds_nothing(make_envs: MakeEnvs, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = make_envs(cache)
    env = IsoEnvFactory(first).get("beta")
    assert list(first.stats.built) == [env.key]
    assert IsoEnvFactory(first).get("beta") is env, "within a session an env object is handed out again"

    second = make_envs(cache)
    again = IsoEnvFactory(second).get("beta")
    assert again.key == env.key
    assert again.path == env.path
    assert second.stats.built == {}
    assert second.stats.reused == {env.key}


def test_completion_record_describes_the_env(make_envs: MakeEnvs, tmp_path: Path) -> None:
    envs = make_envs(tmp_path / "cache")
    env = IsoEnvFactory(envs).get("beta")
    record = json.loads((env.path / RECORD_NAME).read_text())
    assert record["key"] == env.key
    assert record["built"]["packages"]["alpha"] == "1.0"
    assert record["built"]["packages"]["beta"] == "1.0"
    assert record["built"]["installer"] == envs.installer(env.spec).name
    assert record["built"]["build_seconds"] > 0
    assert record["built"]["description"] == "beta"
    log = (tmp_path / "cache" / "logs" / f"{env.key[:20]}.log").read_text()
    assert re.search(r"pip install .*\bbeta\b", log)
    assert "# exit code 0" in log


def test_equal_specs_share_an_env_and_different_ones_do_not(make_envs: MakeEnvs) -> None:
    envs = make_envs()
    factory = IsoEnvFactory(envs)
    assert factory.get("beta", "clitool").key == factory.get("Clitool", "beta", "BETA").key
    assert envs.key(envs.spec(["alpha<2"])) != envs.key(envs.spec(["alpha>=2"]))


def test_editable_edits_are_visible_without_rebuild(make_factory: MakeFactory, make_project: MakeProject) -> None:
    project = make_project("liveproj", body="VALUE = 1\n")
    factory = make_factory()
    env = factory.get(editable=[project])
    code = "import liveproj; print(liveproj.VALUE)"
    assert env.run("python", "-c", code).stdout.strip() == "1"
    (project / "liveproj" / "__init__.py").write_text("VALUE = 2\n")
    assert env.run("python", "-c", code).stdout.strip() == "2"
    assert make_factory().get(editable=[project]).key == env.key, "a source edit keeps the key"


def test_editable_metadata_change_means_a_new_env(make_factory: MakeFactory, make_project: MakeProject) -> None:
    project = make_project("metaproj")
    key = make_factory().get(editable=[project]).key
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = []", 'dependencies = ["alpha"]'))
    env = make_factory().get(editable=[project])
    assert env.key != key
    assert env.installed()["alpha"] == "2.0"


def test_local_project_change_means_a_rebuild(
    make_factory: MakeFactory, make_envs: MakeEnvs, make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("localproj", body="VALUE = 1\n")
    first = make_factory(tmp_path / "cache")
    env = first.get(project)
    code = "import localproj; print(localproj.VALUE)"
    assert env.run("python", "-c", code).stdout.strip() == "1"
    (project / "localproj" / "__init__.py").write_text("VALUE = 2\n")
    second = make_envs(tmp_path / "cache")
    rebuilt = IsoEnvFactory(second).get(project)
    assert rebuilt.key != env.key
    assert list(second.stats.built) == [rebuilt.key]
    assert rebuilt.run("python", "-c", code).stdout.strip() == "2"
    assert env.run("python", "-c", code).stdout.strip() == "1", "a published env is never modified"


def test_pip_settings_that_change_resolution_change_the_key(
    make_envs: MakeEnvs, monkeypatch: pytest.MonkeyPatch
) -> None:
    def key() -> str:
        envs = make_envs(installer="pip")
        return envs.key(envs.spec(["beta"]))

    base = key()
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "99")
    assert key() == base, "a timeout does not change the env"
    monkeypatch.setenv("PIP_PRE", "1")
    assert key() != base


def test_wheelhouse_contents_are_part_of_the_key(make_envs: MakeEnvs, wheelhouse: Path, tmp_path: Path) -> None:
    house = tmp_path / "house"
    shutil.copytree(wheelhouse, house)
    settings = replace(make_envs().settings, index=IndexOptions(find_links=(str(house),), offline=True))

    def key() -> str:
        envs = SessionEnvs(settings)
        return envs.key(envs.spec(["alpha"]))

    before = key()
    backend.write_wheel(house, "alpha", "3.0", files={"alpha/__init__.py": "VERSION = '3.0'\n"})
    assert key() != before, "a new release in the wheelhouse may change the env"


def test_failed_install_leaves_the_cache_clean_and_fails_fast_after(make_envs: MakeEnvs, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    where = ["tests/test_x.py::test_one"]
    envs = make_envs(cache, current_test=lambda: where[0])
    factory = IsoEnvFactory(envs)
    with pytest.raises(BuildError) as excinfo:
        factory.get("alpha==9.9")
    error = excinfo.value
    message = str(error)
    assert message.startswith("installing alpha==9.9 failed (in tests/test_x.py::test_one)\n")
    assert "command: " in message
    assert "pip install" in message
    assert "exit code: 1" in message
    assert "alpha==9.9" in message
    assert error.log is not None
    assert f"full log: {error.log}" in message
    assert "alpha==9.9" in error.log.read_text()
    assert list((cache / "envs").iterdir()) == [], "nothing half-built stays in the cache"
    assert list((cache / "trash").iterdir()) == []

    log_mtime = error.log.stat().st_mtime_ns
    where[0] = "tests/test_x.py::test_two"
    with pytest.raises(BuildError) as again:
        factory.get("alpha==9.9")
    # One line that points at the first report and the log: the whole error is said once.
    assert str(again.value) == (
        "installing alpha==9.9 failed earlier in this run: see the report of tests/test_x.py::test_one for the "
        f"error, and the log {error.log} (in tests/test_x.py::test_two)"
    )
    assert error.log.stat().st_mtime_ns == log_mtime, "the same failure is reported, not retried"
    assert len(envs.stats.failed) == 1


def test_interrupted_build_is_cleaned_up(make_factory: MakeFactory, make_envs: MakeEnvs, tmp_path: Path) -> None:
    """A KeyboardInterrupt mid-build removes the half-built env."""
    cache = tmp_path / "cache"

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    factory = IsoEnvFactory(SessionEnvs(make_envs(cache).settings, echo=interrupt))
    with pytest.raises(KeyboardInterrupt):
        factory.get("beta")
    assert list((cache / "envs").iterdir()) == []
    make_factory(cache).get("beta").run("python", "-c", "import beta")


def test_an_error_of_get_is_raised_from_get_itself_as_the_plugin_made_it(make_factory: MakeFactory) -> None:
    # The plugin's frames below get() are cut: pytest's report shows the caller's line and the message.
    with pytest.raises(SpecError) as info:
        make_factory(current_test=lambda: "tests/test_x.py::test_y").get("alpha", editable=["./no-such-project"])
    assert info.value.problem.startswith("editable path './no-such-project' does not exist")
    assert info.value.where == "tests/test_x.py::test_y"
    frames = [frame.filename for frame in traceback.extract_tb(info.tb)]
    assert frames == [__file__, inspect.getsourcefile(IsoEnvFactory)]
