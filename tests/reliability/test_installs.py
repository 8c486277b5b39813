"""A build installs what was asked, into the env, from the configuration the key covers, and the env stays as built."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import MakeEnvs, MakeFactory, write_versions
from reliability_helpers import Figure

from pytest_isoenv import IsoEnvFactory
from pytest_isoenv.errors import BuildError
from pytest_isoenv.installers.verify import env_site_dirs
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.store.leases import list_entries


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under *root*: size and modification time."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            stat = path.lstat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_using_a_shared_env_changes_nothing_in_it(installer: str, make_factory: MakeFactory, figure: Figure) -> None:
    env = make_factory(installer=installer).get("beta", "clitool")
    before = snapshot(env.path)
    code = "import alpha, beta, clitool, pip._internal.cli.main, pip._internal.commands.install"
    for bytecode in ({"PYTHONDONTWRITEBYTECODE": "1"}, {"PYTHONDONTWRITEBYTECODE": None}):
        env.run("python", "-c", code, env=bytecode)
        env.run("clitool", env=bytecode)
        env.run("python", "-m", "pip", "--version", env=bytecode)
        env.run("python", "-m", "pip", "list", env=bytecode)
    after = snapshot(env.path)
    added = sorted(set(after) - set(before))
    changed = sorted(k for k in before if k in after and after[k] != before[k])
    assert (added, changed) == ([], [])
    sources = sum(1 for name in before if name.endswith(".py"))
    figure(
        f"{installer}: imports, a console script and pip run in a shared env, with and without "
        f"PYTHONDONTWRITEBYTECODE: 0 of {len(before)} files added or changed ({sources} modules compiled at build)"
    )


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_settings_that_send_installs_elsewhere_are_ignored(
    installer: str,
    make_factory: MakeFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figure: Figure,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(f"[install]\ntarget = {elsewhere}\nuser = true\n[global]\nprefix = {elsewhere}\n")
    uv_toml = tmp_path / "uv.toml"
    uv_toml.write_text(f'[pip]\ntarget = "{elsewhere}"\n')
    monkeypatch.setenv("PIP_CONFIG_FILE", str(pip_conf))
    monkeypatch.setenv("PIP_PYTHON", sys.executable)
    monkeypatch.setenv("UV_CONFIG_FILE", str(uv_toml))
    env = make_factory(tmp_path / "cache", installer=installer).get("beta")
    assert env.installed().keys() >= {"alpha", "beta", "pip"}
    assert env.run("python", "-c", "import beta").returncode == 0
    assert not elsewhere.exists()
    figure(
        f"{installer}: pip config target/user/prefix, PIP_PYTHON and uv's [pip] target all set: "
        "the packages went into the env, nothing elsewhere"
    )


def test_a_build_without_what_was_asked_is_a_build_error(make_envs: MakeEnvs, figure: Figure) -> None:
    envs = make_envs()
    env = IsoEnvFactory(envs).get("alpha")
    installer = envs.installer(env.spec)
    asked = EnvSpec(requirements=("alpha>2", "beta", "clitool; python_version < '3'"))
    site = env_site_dirs(env.python, env.environ)
    with pytest.raises(BuildError) as excinfo:
        installer.verify(env.python, asked, site, log=env.path / "unused.log", environ=env.environ)
    message = str(excinfo.value)
    assert "alpha>2 is installed at version 2.0" in message
    assert "beta is not installed" in message
    assert "clitool; python_version < '3' is not" not in message, "its marker does not hold on this interpreter"
    installer.verify(env.python, envs.spec(["alpha>=2"]), site, log=env.path / "unused.log", environ=env.environ)
    figure(f"the verify stage of every build, on an env with alpha 2.0 asked for more: {message.splitlines()[0]!r}")


def test_a_build_whose_installer_installed_nothing_fails_at_verify_and_publishes_nothing(
    make_envs: MakeEnvs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figure: Figure
) -> None:
    # pip reads every option from a variable, so PIP_DRY_RUN makes its install exit 0 having installed nothing
    # (uv has no variable for --dry-run): only the verify stage inside the build can notice.
    monkeypatch.setenv("PIP_DRY_RUN", "1")
    envs = make_envs(tmp_path / "cache", installer="pip")
    with pytest.raises(BuildError) as excinfo:
        IsoEnvFactory(envs).get("alpha")
    message = str(excinfo.value)
    assert "installing alpha did not install it into the env: alpha is not installed" in message
    assert excinfo.value.log is not None
    commands = [line for line in excinfo.value.log.read_text().splitlines() if line.startswith("$ ")]
    # Create, seed (compiling pip's image in a new cache), install and compile ran, in order; verify then refused it.
    stages = ("virtualenv", f"{os.sep}seeds{os.sep}", "alpha", "site-packages")
    assert [next(i for i, c in enumerate(commands) if stage in c) for stage in stages] == [0, 1, 2, 3]
    assert list_entries(envs.cache) == []
    assert not any((tmp_path / "cache" / "envs").iterdir())
    figure(
        "pip exits 0 having installed nothing (PIP_DRY_RUN): create, install and compile ran, then verify failed "
        "the build ('alpha is not installed') and no env was published"
    )


@pytest.mark.slow
def test_uv_never_reads_the_configuration_of_a_project_around_the_cache(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figure: Figure
) -> None:
    wheels = write_versions(tmp_path / "wheels", "gamma", "1.0", "3.0rc1")
    # The CI recipe: the cache inside the project, whose configuration allows pre-releases.
    pytester.makepyprojecttoml('[project]\nname = "around"\nversion = "1"\n\n[tool.uv.pip]\nprerelease = "allow"\n')
    (pytester.path / "uv.toml").write_text('[pip]\nprerelease = "allow"\n')
    monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(pytester.path / ".isoenv-cache"))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv("gamma")
        def test_gamma(isoenv):
            print("gamma", isoenv.installed()["gamma"])
        """
    )
    result = pytester.runpytest_subprocess("-s", "--isoenv-installer=uv", f"--isoenv-find-links={wheels}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*gamma 1.0*"])
    figure("uv with the cache inside a project whose pyproject and uv.toml allow pre-releases: gamma 1.0, not 3.0rc1")
