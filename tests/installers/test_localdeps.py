"""The local folders an editable project's own dependencies name are built from snapshots, never in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import MakeEnvs, aged, imported, listing, setuptools_project
from packaging.requirements import Requirement

from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.installers.api import InstallerDirs
from pytest_isoenv.installers.localdeps import find_workspace, source_folders, static_requirements
from pytest_isoenv.installers.pip import PipInstaller
from pytest_isoenv.installers.snapshot import Snapshots
from pytest_isoenv.installers.uv import UvInstaller, find_uv
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.index import IndexOptions

needs_uv = pytest.mark.skipif(find_uv() is None, reason="uv is not installed")


def workspace(root: Path, app_sources: str, *, root_sources: str = "") -> Path:
    """A uv workspace at *root*: members ``packages/*`` (``app``, ``lib``, an excluded ``scratch``); ``app``."""
    aged(
        root / "pyproject.toml",
        '[tool.uv.workspace]\nmembers = ["packages/*"]\nexclude = ["packages/scratch"]\n' + root_sources,
    )
    aged(root / "packages" / "lib" / "pyproject.toml", '[project]\nname = "Lib"\n')
    aged(root / "packages" / "scratch" / "pyproject.toml", '[project]\nname = "scratch"\n')
    app = root / "packages" / "app"
    aged(app / "pyproject.toml", f'[project]\nname = "app"\ndependencies = ["lib"]\n\n[tool.uv.sources]\n{app_sources}')
    return app


def test_a_workspace_is_found_as_uv_finds_it(tmp_path: Path) -> None:
    app = workspace(tmp_path / "ws", "")
    aged(tmp_path / "ws" / "other" / "pyproject.toml", '[project]\nname = "other"\n')

    found = find_workspace(app)

    assert found == (tmp_path / "ws", {"app": app, "lib": tmp_path / "ws" / "packages" / "lib"})
    assert find_workspace(tmp_path / "ws" / "packages" / "scratch") is None, "excluded: in no workspace"
    assert find_workspace(tmp_path / "ws" / "other") is None, "not named by the members"


def test_the_sources_an_editable_project_installs_non_editable(tmp_path: Path) -> None:
    aged(tmp_path / "elsewhere" / "pyproject.toml", "")
    aged(tmp_path / "tool" / "pyproject.toml", "")
    app = workspace(
        tmp_path / "ws",
        'lib = { workspace = true, editable = false }\nelsewhere = { path = "../../../elsewhere" }\n'
        'tool = { path = "../../../tool", editable = true }\n'
        'marked = [{ path = "../lib", marker = "sys_platform == \'linux\'" }]\n',
        root_sources='\n[tool.uv.sources]\nrooted = { path = "packages/lib" }\nelsewhere = { index = "x" }\n',
    )
    lib = tmp_path / "ws" / "packages" / "lib"

    assert source_folders(app, editable=True) == {
        "rooted": lib,
        "elsewhere": tmp_path / "elsewhere",  # the project's own source, not its root's
        "lib": lib,
        "tool": None,
        "marked": None,
    }

    aged(app / "pyproject.toml", '[project]\nname = "app"\n\n[tool.uv.sources]\nlib = { workspace = true }\n')
    assert source_folders(app, editable=True)["lib"] is None, "a member is editable under an editable project"
    assert source_folders(app, editable=False)["lib"] == lib


def test_the_static_requirements_of_a_project_and_its_extras(tmp_path: Path) -> None:
    aged(
        tmp_path / "app" / "pyproject.toml",
        '[project]\nname = "App"\ndependencies = ["lib @ file:///x"]\n\n[project.optional-dependencies]\n'
        'cli = ["click"]\nall = ["app[cli]", "rich"]\n',
    )

    # As this packaging release writes a URL requirement (older ones write no space before the "@").
    assert [str(r) for r in static_requirements(tmp_path / "app", ["all"]) or []] == [
        str(Requirement("lib @ file:///x")),
        "rich",
        "click",
    ]
    aged(tmp_path / "app" / "pyproject.toml", '[project]\nname = "app"\ndynamic = ["dependencies"]\n')
    assert static_requirements(tmp_path / "app", []) is None, "what the backend computes is not known"


def test_uv_overrides_the_folders_with_their_snapshots_extras_and_markers_kept(tmp_path: Path) -> None:
    for name in ("lib", "other", "viaurl"):
        aged(tmp_path / "repo" / name / "pyproject.toml", f'[project]\nname = "{name}"\n')
    url = (tmp_path / "repo" / "viaurl").as_uri()
    other_url = (tmp_path / "repo" / "other").as_uri()
    app = aged(
        tmp_path / "repo" / "app" / "pyproject.toml",
        f'[project]\nname = "app"\ndependencies = ["lib[cli]>=1 ; python_version > \'3\'", "viaurl @ {url}",'
        f' "other @ {other_url}", "attrs"]\n[project.optional-dependencies]\nx = ["lib[x] ; os_name == \'nt\'"]\n'
        '[tool.uv.sources]\nlib = { path = "../lib" }\nother = { index = "mine" }\n',
    ).parent
    snapshots = Snapshots(tmp_path / "sources")
    installer = UvInstaller(InstallerDirs(app_data=tmp_path / "venv", uv_cache=tmp_path / "uv"))
    spec = EnvSpec(editable=(app,), extras=((app, ("x",)),))

    [command] = installer.install_commands(tmp_path / "env" / "bin" / "python", spec, IndexOptions(), snapshots)

    overrides = Path(command[command.index("--override") + 1]).read_text().splitlines()
    assert [Requirement(line) for line in overrides] == [
        Requirement(
            f"lib[cli,x] @ {snapshots.made[tmp_path / 'repo' / 'lib'].as_uri()} ; "
            'python_version > "3" or os_name == "nt"'
        ),
        Requirement(f"viaurl @ {snapshots.made[tmp_path / 'repo' / 'viaurl'].as_uri()}"),
    ], "other: its source is uv's, not its URL"
    assert installer.install_commands(Path("python"), EnvSpec(requirements=("attrs",)), IndexOptions(), snapshots) == [
        installer.install_command(Path("python"), EnvSpec(requirements=("attrs",)), IndexOptions())
    ]


def test_uv_keeps_the_users_overrides_and_points_at_no_snapshot_when_told_to_ignore_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aged(tmp_path / "repo" / "lib" / "pyproject.toml", '[project]\nname = "lib"\n')
    app = aged(
        tmp_path / "repo" / "app" / "pyproject.toml",
        '[project]\nname = "app"\ndependencies = ["lib"]\n[tool.uv.sources]\nlib = { path = "../lib" }\n',
    ).parent
    installer = UvInstaller(InstallerDirs(app_data=tmp_path / "venv", uv_cache=tmp_path / "uv"))
    python, spec = tmp_path / "env" / "bin" / "python", EnvSpec(editable=(app,))
    monkeypatch.setenv("UV_OVERRIDE", "/own/a.txt /own/b.txt")

    [command] = installer.install_commands(python, spec, IndexOptions(), Snapshots(tmp_path / "sources"))

    # An --override argument silences UV_OVERRIDE: the user's files are passed on, before the snapshots'.
    assert [command[i + 1] for i, word in enumerate(command) if word == "--override"] == [
        "/own/a.txt",
        "/own/b.txt",
        str(tmp_path / "sources" / "overrides.txt"),
    ]
    monkeypatch.setenv("UV_NO_SOURCES", "false")  # uv reads it as a flag: off
    assert "--override" in installer.install_commands(python, spec, IndexOptions(), Snapshots(tmp_path / "off"))[0]
    for how in ({"UV_NO_SOURCES": "1"}, {"UV_CONFIG_FILE": str(aged(tmp_path / "uv.toml", "no-sources = true\n"))}):
        monkeypatch.delenv("UV_NO_SOURCES")
        for name, value in how.items():
            monkeypatch.setenv(name, value)
        told = UvInstaller(InstallerDirs(app_data=tmp_path / "venv", uv_cache=tmp_path / "uv"))
        assert told.install_commands(python, spec, IndexOptions(), Snapshots(tmp_path / "no")) == [
            told.install_command(python, spec, IndexOptions())
        ], f"{how}: uv reads no source, so there is no folder to build from a snapshot"


def test_pip_installs_a_project_without_its_dependencies_then_them_from_snapshots(tmp_path: Path) -> None:
    aged(tmp_path / "repo" / "lib" / "pyproject.toml", '[project]\nname = "lib"\n')
    url = (tmp_path / "repo" / "lib").as_uri()
    app = aged(
        tmp_path / "repo" / "app" / "pyproject.toml",
        f'[project]\nname = "app"\ndependencies = ["lib @ {url}", "attrs"]\n',
    ).parent
    plain = aged(tmp_path / "repo" / "plain" / "pyproject.toml", '[project]\nname = "plain"\n').parent
    snapshots = Snapshots(tmp_path / "sources")
    installer = PipInstaller(InstallerDirs(app_data=tmp_path / "venv", uv_cache=tmp_path / "uv"))
    python, index = Path("python"), IndexOptions()

    first, then = installer.install_commands(python, EnvSpec(editable=(app, plain)), index, snapshots)

    assert first == [*installer.install_command(python, EnvSpec(editable=(app,)), index), "--no-deps"]
    snapshot = snapshots.made[tmp_path / "repo" / "lib"].as_uri()
    assert then == installer.install_command(
        python, EnvSpec(editable=(plain,), requirements=(str(Requirement(f"lib @ {snapshot}")), "attrs")), index
    )
    required = EnvSpec(editable=(app,), requirements=("app[cli]",))
    assert installer.install_commands(python, required, index, snapshots) == [
        installer.install_command(python, required, index)
    ], "required by another: pip would read its dependencies again"


def built_workspace(root: Path, source: str) -> tuple[Path, Path]:
    """A uv workspace at *root* of ``packages/*``: ``app`` depending on a setuptools ``lib`` through the uv *source*."""
    (root / "packages").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    lib = setuptools_project(root / "packages", "lib")
    return depending_app(root / "packages", "lib", f"[tool.uv.sources]\n{source}\n"), lib


def depending_app(parent: Path, dependency: str, tool: str = "") -> Path:
    """An editable setuptools project ``app`` depending on *dependency* (*tool*: TOML after its table)."""
    app = setuptools_project(parent, "app")
    text = (app / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(text + f"dependencies = [{dependency!r}]\n\n{tool}")
    return app


@pytest.mark.slow
@pytest.mark.parametrize(
    ("installer", "route"),
    [
        pytest.param("uv", "path source", marks=needs_uv),
        pytest.param("uv", "file URL", marks=needs_uv),
        ("pip", "file URL"),
    ],
)
def test_an_editable_projects_local_dependency_is_built_from_a_snapshot(
    make_envs: MakeEnvs, backend_wheels: Path, tmp_path: Path, installer: str, route: str
) -> None:
    lib = setuptools_project(tmp_path / "repo", "lib")
    if route == "path source":
        app = depending_app(tmp_path / "repo", "lib", '[tool.uv.sources]\nlib = { path = "../lib" }\n')
    else:
        app = depending_app(tmp_path / "repo", f"lib @ {lib.as_uri()}")
    before = listing(lib)
    cache, links = tmp_path / "cache", [str(backend_wheels)]

    first = IsoEnvFactory(make_envs(cache, installer=installer)).get(editable=[app], find_links=links)

    assert imported(first, "lib") == "1"
    assert listing(lib) == before, "nothing is built, nor written, in the user's folder"
    direct_url = next(first.site_packages.glob("lib-*.dist-info")) / "direct_url.json"
    assert json.loads(direct_url.read_text())["url"] == lib.as_uri(), "where it came from, as in place"

    (lib / "lib" / "__init__.py").write_text("VALUE = 2\n")
    before = listing(lib)
    again = IsoEnvFactory(make_envs(cache, installer=installer)).get(editable=[app], find_links=links)

    assert again.path != first.path
    assert imported(again, "lib") == "2"
    assert listing(lib) == before


@pytest.mark.slow
@needs_uv
def test_a_workspace_member_not_editable_is_built_from_a_snapshot(
    make_envs: MakeEnvs, backend_wheels: Path, tmp_path: Path
) -> None:
    app, lib = built_workspace(tmp_path / "ws", "lib = { workspace = true, editable = false }")
    before = listing(lib)
    cache, links = tmp_path / "cache", [str(backend_wheels)]

    first = IsoEnvFactory(make_envs(cache, installer="uv")).get(editable=[app], find_links=links)

    assert imported(first, "lib") == "1"
    assert listing(lib) == before
    direct_url = next(first.site_packages.glob("lib-*.dist-info")) / "direct_url.json"
    assert json.loads(direct_url.read_text()) == {"dir_info": {}, "url": lib.as_uri()}

    (lib / "lib" / "__init__.py").write_text("VALUE = 2\n")
    again = IsoEnvFactory(make_envs(cache, installer="uv")).get(editable=[app], find_links=links)

    assert again.path != first.path, "the member counts by its files, as a path source does"
    assert imported(again, "lib") == "2"


@pytest.mark.slow
@needs_uv
def test_a_workspace_member_is_editable_under_an_editable_project_as_uv_installs_it(
    make_envs: MakeEnvs, backend_wheels: Path, tmp_path: Path
) -> None:
    app, lib = built_workspace(tmp_path / "ws", "lib = { workspace = true }")

    env = IsoEnvFactory(make_envs(tmp_path / "cache", installer="uv")).get(
        editable=[app], find_links=[str(backend_wheels)]
    )

    direct_url = next(env.site_packages.glob("lib-*.dist-info")) / "direct_url.json"
    assert json.loads(direct_url.read_text()) == {"url": lib.as_uri(), "dir_info": {"editable": True}}
    (lib / "lib" / "__init__.py").write_text("VALUE = 2\n")
    assert imported(env, "lib") == "2", "live in the env, as every editable project is"
