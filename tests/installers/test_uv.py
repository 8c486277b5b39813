"""The uv installer: real uv (from the ``uv`` package), offline on the test wheelhouse."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    MakeEnvs,
    MakeFactory,
    MakeProject,
    imported,
    lock_uv_missing,
    marked_tests,
    needs_lock_uv,
    uv_lock,
    write_pylock,
    write_versions,
)

from pytest_isoenv import BuildError, IsoEnvFactory, SpecError
from pytest_isoenv.installers.api import InstallerDirs
from pytest_isoenv.installers.choice import installer_class, select_installer
from pytest_isoenv.installers.pip import PipInstaller
from pytest_isoenv.installers.uv import UvInstaller, _find_uv, find_uv
from pytest_isoenv.key.uvconfig import uv_resolution_settings
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.index import IndexOptions


def test_uv_builds_a_working_env_with_pip_in_it(make_factory: MakeFactory) -> None:
    env = make_factory(installer="uv").get("beta", "clitool")
    assert env.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip() == "1.0"
    assert env.run("clitool").stdout.strip() == "clitool says hi"
    assert env.run("python", "-m", "pip", "--version").stdout.startswith("pip ")
    assert env.installed()["beta"] == "1.0"
    record = json.loads((env.path / "isoenv-record.json").read_text())
    assert record["built"]["installer"] == "uv"
    assert {"alpha", "beta", "clitool", "pip"} <= set(record["built"]["packages"])
    # Compiled once at build: nothing writes into a cached env, and PYTHONDONTWRITEBYTECODE may forbid it.
    assert list((env.site_packages / "alpha").glob("__pycache__/*.pyc"))


def test_uv_with_a_constraints_file_still_seeds_pip(make_factory: MakeFactory, tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("alpha<2\n")
    env = make_factory(installer="uv").get("beta", constraints=constraints)
    assert env.run("python", "-m", "pip", "--version").stdout.startswith("pip ")
    assert env.installed()["alpha"] == "1.0"


def test_uv_env_without_packages_still_has_pip(make_factory: MakeFactory) -> None:
    env = make_factory(installer="uv").get()
    assert env.run("python", "-m", "pip", "--version").stdout.startswith("pip ")


def test_the_installer_is_part_of_the_key(make_envs: MakeEnvs) -> None:
    envs = make_envs()
    pip, uv = envs.spec(["alpha"], installer="pip"), envs.spec(["alpha"], installer="uv")
    assert envs.key(pip) != envs.key(uv)
    assert envs.installer(uv).key_material(envs.settings.index)["uv"].startswith("uv ")


def test_auto_means_uv_when_it_is_installed() -> None:
    assert find_uv() is not None  # the test extra installs it
    assert installer_class(None) is UvInstaller
    assert installer_class("auto") is UvInstaller


def test_unknown_installer_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^unknown installer 'conda'\. Choose one of: auto, pip, uv \(in t\.py::t\)"):
        select_installer("conda", dirs=InstallerDirs(tmp_path, tmp_path), where="t.py::t")


@pytest.fixture
def without_uv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A machine without uv: the package cannot be imported and PATH has no uv."""
    monkeypatch.setitem(sys.modules, "uv", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    _find_uv.cache_clear()
    yield
    _find_uv.cache_clear()


@pytest.mark.usefixtures("without_uv")
def test_without_uv_auto_falls_back_to_pip_and_asking_for_uv_is_an_error() -> None:
    assert installer_class("auto") is PipInstaller
    with pytest.raises(SpecError, match=r"installer 'uv' is not available .*pytest-isoenv\[uv\].*Choose one of"):
        installer_class("uv")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UV_INDEX_URL", "https://example.invalid/simple"),
        ("UV_PRERELEASE", "allow"),
        ("UV_EXCLUDE_NEWER", "2024-01-01"),
    ],
)
def test_uv_settings_that_change_resolution_are_in_the_key(
    monkeypatch: pytest.MonkeyPatch, make_envs: MakeEnvs, name: str, value: str
) -> None:
    before = make_envs(installer="uv")
    key = before.key(before.spec(["alpha"]))
    monkeypatch.setenv(name, value)
    after = make_envs(installer="uv")
    assert after.key(after.spec(["alpha"])) != key


def test_uv_settings_that_do_not_change_resolution_stay_out_of_the_key() -> None:
    before = uv_resolution_settings({})
    assert uv_resolution_settings({"UV_NO_PROGRESS": "1", "UV_CACHE_DIR": "/x", "UV_HTTP_TIMEOUT": "9"}) == before


def test_uv_config_file_content_is_in_the_key(tmp_path: Path) -> None:
    config = tmp_path / "uv.toml"
    config.write_text('index-url = "https://one.invalid/simple"\n')
    first = uv_resolution_settings({"UV_CONFIG_FILE": str(config)})
    config.write_text('index-url = "https://two.invalid/simple"\n')
    assert uv_resolution_settings({"UV_CONFIG_FILE": str(config)}) != first
    user = tmp_path / "config"
    (user / "uv").mkdir(parents=True)
    (user / "uv" / "uv.toml").write_text("prerelease = 'allow'\n")
    found = uv_resolution_settings({"XDG_CONFIG_HOME": str(user), "XDG_CONFIG_DIRS": str(tmp_path / "none")})
    assert f"file:{user / 'uv' / 'uv.toml'}" in found
    assert uv_resolution_settings({"XDG_CONFIG_HOME": str(user), "UV_NO_CONFIG": "1"}) == {"UV_NO_CONFIG": "1"}


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second filesystem (/dev/shm)")
def test_uv_cache_on_another_filesystem_is_replaced_by_one_in_the_cache_root(tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"
    cache_root.mkdir()
    if (cache_root.stat().st_dev) == Path("/dev/shm").stat().st_dev:
        pytest.skip("the test's temp dir is on the same filesystem as /dev/shm")
    installer = UvInstaller(InstallerDirs(app_data=cache_root / "virtualenv", uv_cache=cache_root / "uv"))
    environ = installer.environ({"UV_CACHE_DIR": "/dev/shm/isoenv-test-uv-cache", "PATH": "/usr/bin"})
    assert environ["UV_CACHE_DIR"] == str(cache_root / "uv")
    same = UvInstaller(InstallerDirs(app_data=cache_root / "virtualenv", uv_cache=cache_root / "uv"))
    assert same.environ({"UV_CACHE_DIR": str(tmp_path / "uv-cache")})["UV_CACHE_DIR"] == str(tmp_path / "uv-cache")


def test_unknown_installer_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--isoenv-installer", "conda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*isoenv_installer: unknown installer 'conda'. Choose one of: auto, pip, uv*"])


def test_unknown_installer_in_a_marker_names_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(marked_tests(test_env='"alpha", installer="conda"'))
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["unknown installer 'conda'. Choose one of: auto, pip, uv (in *::test_env)"])


@pytest.fixture
def extra_wheels(tmp_path: Path) -> Path:
    """A second wheelhouse, which only the user's own configuration names: gamma 1.0 and a 3.0rc1 pre-release."""
    return write_versions(tmp_path / "extra-wheels", "gamma", "1.0", "3.0rc1")


def test_uv_follows_the_users_own_configuration(
    make_factory: MakeFactory, tmp_path: Path, extra_wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    (config / "uv").mkdir(parents=True)
    (config / "uv" / "uv.toml").write_text(f'[pip]\nprerelease = "allow"\nfind-links = ["{extra_wheels}"]\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "no-system-config"))
    env = make_factory(tmp_path / "cache", installer="uv").get("gamma")
    assert env.installed()["gamma"] == "3.0rc1"


@pytest.mark.parametrize("where", ["variables", "config file"])
def test_pips_index_settings_reach_uv(
    where: str, make_envs: MakeEnvs, tmp_path: Path, extra_wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)  # a variable would win over the config file
    if where == "variables":
        monkeypatch.setenv("PIP_FIND_LINKS", str(extra_wheels))
        monkeypatch.setenv("PIP_PRE", "1")
    else:
        config = tmp_path / "pip.conf"
        config.write_text(f"[global]\nfind-links = {extra_wheels}\n[install]\npre = true\n")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    envs = make_envs(tmp_path / "cache", installer="uv")
    env = IsoEnvFactory(envs).get("gamma", "alpha")
    assert env.installed()["gamma"] == "3.0rc1", "uv used pip's find-links and pre-release setting"
    assert env.installed()["alpha"] == "2.0", "the plugin's own find-links still count"
    command = envs.installer(env.spec).install_command(env.python, env.spec, envs.settings.index)
    assert command[command.index("--prerelease") : command.index("--prerelease") + 2] == ["--prerelease", "allow"]


def test_pip_extra_indexes_make_uv_choose_the_best_match_as_pip_does(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "https://one.invalid/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://two.invalid/simple https://three.invalid/simple")
    monkeypatch.setenv("PIP_NO_INDEX", "yes")
    installer = UvInstaller(InstallerDirs(app_data=Path("unused"), uv_cache=Path("unused")))
    assert installer.index_arguments(IndexOptions(find_links=("/wheels",))) == [
        "--index-url", "https://one.invalid/simple",
        "--extra-index-url", "https://two.invalid/simple", "--extra-index-url", "https://three.invalid/simple",
        "--index-strategy", "unsafe-best-match",
        "--find-links", "/wheels",
        "--no-index",
    ]  # fmt: skip
    # The plugin's own index wins, as --index-url on pip's command line does over pip's configuration.
    assert installer.index_arguments(IndexOptions(index_url="https://own.invalid/simple"))[:2] == [
        "--index-url",
        "https://own.invalid/simple",
    ]


def test_pip_settings_uv_cannot_follow_make_auto_choose_pip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_PREFER_BINARY", "1")
    assert installer_class("auto") is PipInstaller
    # The installer is chosen, and the header's line about it written, when a test first needs an env.
    pytester.makepyfile("def test_nothing(isoenv): pass")
    result = pytester.runpytest("--isoenv-installer", "auto")
    result.stdout.fnmatch_lines(
        ["isoenv: cache *, installer pip (auto: not uv, as uv cannot follow the pip setting(s) prefer-binary "
         "(PIP_PREFER_BINARY))"]
    )  # fmt: skip
    result = pytester.runpytest("--isoenv-installer", "uv")
    result.stdout.fnmatch_lines(
        [
            "isoenv: cache *, installer uv",
            "isoenv: warning: the uv installer ignores the pip setting(s) prefer-binary (PIP_PREFER_BINARY), which "
            "uv cannot follow; use --isoenv-installer pip (or auto) to have them followed",
        ]
    )
    monkeypatch.setenv("PIP_PREFER_BINARY", "no")
    assert installer_class("auto") is UvInstaller, "a flag turned off changes nothing"


def test_a_relative_pip_find_links_means_the_folder_pytest_runs_in(
    make_factory: MakeFactory, tmp_path: Path, extra_wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pip reads it against its working directory, which is pytest's; uv runs in the env's folder.
    monkeypatch.chdir(extra_wheels.parent)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_FIND_LINKS", extra_wheels.name)
    monkeypatch.setenv("PIP_PRE", "1")
    env = make_factory(tmp_path / "cache", installer="uv").get("gamma")
    assert env.installed()["gamma"] == "3.0rc1"


def test_a_pylock_env_holds_exactly_what_it_pins(make_factory: MakeFactory, wheelhouse: Path, tmp_path: Path) -> None:
    needs_lock_uv()
    # beta allows any alpha below 2: the lock, not a resolution, says which.
    older = write_versions(tmp_path / "older", "alpha", "0.5")
    lock = write_pylock(
        tmp_path / "locked", older / "alpha-0.5-py3-none-any.whl", wheelhouse / "beta-1.0-py3-none-any.whl"
    )
    env = make_factory(installer="auto").get(lock=lock)
    assert imported(env, "alpha", "VERSION") == "0.5"
    assert {name: env.installed()[name] for name in ("alpha", "beta")} == {"alpha": "0.5", "beta": "1.0"}
    assert "clitool" not in env.installed()
    assert json.loads((env.path / "isoenv-record.json").read_text())["built"]["installer"] == "uv"

    # Keyed by the lock's content: the same file pinning another version is another env.
    write_pylock(
        tmp_path / "locked", wheelhouse / "alpha-1.0-py3-none-any.whl", wheelhouse / "beta-1.0-py3-none-any.whl"
    )
    again = make_factory(installer="auto").get(lock=lock)
    assert again.key != env.key
    assert imported(again, "alpha", "VERSION") == "1.0"


def test_a_pylock_with_a_wrong_hash_fails_the_build_naming_it(
    make_factory: MakeFactory, wheelhouse: Path, tmp_path: Path
) -> None:
    needs_lock_uv()
    wheels = [wheelhouse / "alpha-1.0-py3-none-any.whl", wheelhouse / "beta-1.0-py3-none-any.whl"]
    lock = write_pylock(tmp_path / "locked", *wheels, wrong_hash="beta")
    with pytest.raises(BuildError) as info:
        make_factory(installer="uv", cache_dir=tmp_path / "cache").get(lock=lock)
    message = str(info.value)
    assert "installing lock locked/pylock.toml failed" in message
    assert "Hash mismatch" in message
    assert "0" * 64 in message


def test_a_uv_lock_env_holds_the_projects_pinned_dependencies_and_editable_puts_it_on_top(
    make_factory: MakeFactory, wheelhouse: Path, make_project: MakeProject
) -> None:
    needs_lock_uv()
    project = make_project("app", dependencies=["beta"], body="VALUE = 'app'\n")
    lock = uv_lock(project, wheelhouse)
    factory = make_factory(installer="uv")
    env = factory.get(lock=lock)
    assert {name: env.installed().get(name) for name in ("alpha", "beta", "app")} == {
        "alpha": "1.0",
        "beta": "1.0",
        "app": None,
    }
    assert (env.path / "pylock.isoenv.toml").is_file(), "the export a uv.lock became is kept with the env"
    assert not (project / ".venv").exists(), "uv exported the lock without syncing the project"

    with_app = factory.get(lock=lock, editable=[project])
    assert with_app.key != env.key
    assert imported(with_app, "app") == "app"
    assert with_app.installed()["alpha"] == "1.0"


def test_a_lock_on_the_pip_installer_is_a_usage_error(make_factory: MakeFactory, tmp_path: Path) -> None:
    lock = write_pylock(tmp_path)
    with pytest.raises(SpecError) as info:
        make_factory(installer="pip", current_test=lambda: "test_x.py::test_lock").get(lock=lock)
    message = str(info.value)
    assert f"lock={str(lock)!r} needs the uv installer" in message
    assert "--isoenv-installer pip" in message
    assert "test_x.py::test_lock" in message


def test_a_uv_too_old_for_lock_files_is_a_usage_error_naming_the_version_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installer = UvInstaller(InstallerDirs(app_data=tmp_path / "app", uv_cache=tmp_path / "uv"))
    monkeypatch.setattr(UvInstaller, "version", "uv 0.6.7")
    lock = write_pylock(tmp_path)
    with pytest.raises(SpecError) as info:
        installer.check_lock(EnvSpec(lock=lock))
    assert "needs uv >= 0.6.15" in str(info.value)
    assert "this is uv 0.6.7" in str(info.value)
    assert 'pip install -U "uv>=0.6.15"' in str(info.value)
    installer.check_lock(EnvSpec())


def test_a_uv_too_old_for_lock_files_refuses_one_for_real(make_factory: MakeFactory, tmp_path: Path) -> None:
    reason = lock_uv_missing()
    if reason is None or "not installed" in reason:
        pytest.skip("this uv installs lock files (the lowest CI run's does not)")
    with pytest.raises(SpecError, match=r'needs uv >= 0\.6\.15.*pip install -U "uv>=0\.6\.15"'):
        make_factory(installer="uv").get(lock=write_pylock(tmp_path))
