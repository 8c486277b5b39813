"""Local projects built from a snapshot of the files their key covers: the user's folder is never written."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from helpers import MakeEnvs, aged, listing, setuptools_project
from packaging.requirements import Requirement

from pytest_isoenv import BuildError
from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.installers.snapshot import Snapshots
from pytest_isoenv.installers.uv import find_uv
from pytest_isoenv.tomlfile import read_toml

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(*args: str | Path, cwd: Path) -> str:
    """Run git in *cwd* as a user with a name; its output."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *map(str, args)],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def committed(root: Path) -> Path:
    """*root* made a git repository with everything in it committed."""
    git("init", "-q", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "init", cwd=root)
    return root


def test_a_snapshot_holds_the_files_the_key_covers_and_nothing_else(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    for rel in ("pyproject.toml", "pkg/__init__.py", "build/lib/stale.py", "proj.egg-info/PKG-INFO", ".tox/x"):
        aged(project / rel, "x")
    aged(project / "pkg" / "__pycache__" / "m.cpython-311.pyc", "x")
    snapshots = Snapshots(tmp_path / "sources", cache_root=tmp_path / "cache")

    copy = snapshots.of(project)

    assert copy.name == "proj", "the project keeps its folder's name"
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == [
        "pkg/__init__.py",
        "pyproject.toml",
    ]
    assert snapshots.of(project) == copy, "each project is copied once"
    assert snapshots.of(tmp_path / "proj" / "pyproject.toml") == tmp_path / "proj" / "pyproject.toml"


def test_every_route_to_a_local_folder_names_its_snapshot(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    aged(project / "pyproject.toml", "x")
    snapshots = Snapshots(tmp_path / "sources")
    copy_uri = (tmp_path / "sources" / "0" / "proj").as_uri()

    assert snapshots.relocate(str(project)) == str(tmp_path / "sources" / "0" / "proj")
    assert snapshots.relocate(project.as_uri() + "#subdirectory=sub") == copy_uri + "#subdirectory=sub"
    relocated = Requirement(snapshots.requirement(f"proj[cli] @ {project.as_uri()} ; python_version > '3'"))
    assert (relocated.name, relocated.extras, relocated.url) == ("proj", {"cli"}, copy_uri)
    assert str(relocated.marker) == 'python_version > "3"'
    assert snapshots.relocate("https://example.invalid/proj.tar.gz") == "https://example.invalid/proj.tar.gz"
    assert snapshots.requirement("alpha>=1") == "alpha>=1"


def test_installed_urls_name_the_users_folder_again(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    aged(project / "pyproject.toml", "x")
    snapshots = Snapshots(tmp_path / "sources")
    copy = snapshots.of(project)
    dist_info = tmp_path / "site" / "proj-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "direct_url.json").write_text(json.dumps({"url": copy.as_uri(), "dir_info": {}}))
    (dist_info / "RECORD").write_text("proj/__init__.py,sha256=abc,3\nproj-1.0.dist-info/direct_url.json,sha256=x,9\n")

    snapshots.restore_urls([tmp_path / "site"])

    assert json.loads((dist_info / "direct_url.json").read_text()) == {"dir_info": {}, "url": project.as_uri()}
    content = (dist_info / "direct_url.json").read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    assert (dist_info / "RECORD").read_text().splitlines() == [
        "proj/__init__.py,sha256=abc,3",
        f"proj-1.0.dist-info/direct_url.json,sha256={digest},{len(content)}",
    ]


@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize("in_git", [False, True], ids=["no-git", "git"])
def test_a_setuptools_build_leaves_the_users_folder_untouched(
    make_envs: MakeEnvs, backend_wheels: Path, tmp_path: Path, installer: str, in_git: bool
) -> None:
    if in_git and shutil.which("git") is None:
        pytest.skip("needs git")
    project = setuptools_project(tmp_path / "user", "plainpkg", src=True)
    # What an earlier build in place left: setuptools would rewrite it where it builds.
    aged(project / "src" / "plainpkg.egg-info" / "PKG-INFO", "stale\n")
    if in_git:
        committed(project)
    before = listing(project)
    cache = tmp_path / "cache"

    envs = make_envs(cache, installer=installer)
    env = IsoEnvFactory(envs).get(project, find_links=[str(backend_wheels)])

    assert env.run("python", "-c", "import plainpkg; print(plainpkg.VALUE)").stdout.strip() == "1"
    assert listing(project) == before
    assert not list(env.path.glob(".isoenv-sources-*")), "the snapshot goes after the install"
    direct_url = next(env.site_packages.glob("plainpkg-*.dist-info")) / "direct_url.json"
    assert json.loads(direct_url.read_text())["url"] == project.as_uri()
    assert env.run("python", "-m", "pip", "check").returncode == 0

    again = make_envs(cache, installer=installer)
    assert IsoEnvFactory(again).get(project, find_links=[str(backend_wheels)]).key == env.key
    assert again.stats.built == {}, "the next session reuses the env"


@pytest.mark.parametrize("route", ["file-url", "requirements-file", "group"])
def test_every_route_builds_from_a_snapshot(
    make_envs: MakeEnvs, backend_wheels: Path, tmp_path: Path, route: str
) -> None:
    project = setuptools_project(tmp_path / "user", "routedpkg")
    (tmp_path / "user" / "requirements.txt").write_text("./routedpkg\n")
    (tmp_path / "user" / "pyproject.toml").write_text(
        f'[dependency-groups]\nlocal = ["routedpkg @ {project.as_uri()}"]\n'
    )
    before = listing(project)
    factory, links = IsoEnvFactory(make_envs(tmp_path / "cache")), [str(backend_wheels)]

    if route == "file-url":
        env = factory.get(f"routedpkg @ {project.as_uri()}", find_links=links)
    elif route == "requirements-file":
        env = factory.get(requirements_files=[tmp_path / "user" / "requirements.txt"], find_links=links)
    else:
        env = factory.get(groups=[f"{tmp_path / 'user' / 'pyproject.toml'}:local"], find_links=links)

    assert env.run("python", "-c", "import routedpkg; print(routedpkg.VALUE)").stdout.strip() == "1"
    assert listing(project) == before


def test_a_copys_uv_path_sources_name_what_they_name_in_place(tmp_path: Path) -> None:
    user = tmp_path / "user"
    for name in ("app", "lib", "tool", "loop"):
        aged(user / name / "pyproject.toml", "")
    aged(user / "wheels" / "w-1.0-py3-none-any.whl", "x")
    aged(
        user / "app" / "pyproject.toml",
        '[project]\nname = "app"\n\n[tool.uv.sources]\nlib = { path = "../lib" }\n'
        'tool = { path = "../tool", editable = true }\nw = { path = "../wheels/w-1.0-py3-none-any.whl" }\n'
        'loop = [{ path = "../loop", marker = "sys_platform != \'win32\'" }, { index = "other" }]\n'
        'remote = { git = "https://example.invalid/remote" }\n',
    )
    aged(user / "loop" / "pyproject.toml", '[tool.uv.sources]\napp = { path = "../app" }\n')
    snapshots = Snapshots(tmp_path / "sources")

    copy = snapshots.of(user / "app")

    sources = read_toml(copy / "pyproject.toml")["tool"]["uv"]["sources"]
    assert sources["lib"] == {"path": str(snapshots.made[user / "lib"])}, "a project: its own snapshot"
    assert sources["tool"] == {"path": str(user / "tool"), "editable": True}, "editable: the user's folder"
    assert sources["w"] == {"path": str(user / "wheels" / "w-1.0-py3-none-any.whl")}
    assert sources["loop"][0]["path"] == str(snapshots.made[user / "loop"])
    assert sources["loop"][1:] == [{"index": "other"}]
    assert sources["remote"] == {"git": "https://example.invalid/remote"}
    assert read_toml(copy / "pyproject.toml")["project"] == {"name": "app"}
    loop = read_toml(snapshots.made[user / "loop"] / "pyproject.toml")
    assert loop["tool"]["uv"]["sources"]["app"] == {"path": str(copy)}, "a cycle of path sources ends"
    assert (user / "app" / "pyproject.toml").read_text().count("../lib") == 1, "the user's file is untouched"


def test_a_copys_workspace_sources_name_their_members(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    aged(root / "pyproject.toml", '[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    aged(root / "packages" / "lib" / "pyproject.toml", '[project]\nname = "lib"\n')
    aged(root / "packages" / "tool" / "pyproject.toml", '[project]\nname = "tool"\n')
    aged(
        root / "packages" / "app" / "pyproject.toml",
        '[project]\nname = "app"\n\n[tool.uv.sources]\nlib = { workspace = true }\n'
        "tool = { workspace = true, editable = true }\nmissing = { workspace = true }\n",
    )
    snapshots = Snapshots(tmp_path / "sources")

    copy = snapshots.of(root / "packages" / "app")

    sources = read_toml(copy / "pyproject.toml")["tool"]["uv"]["sources"]
    assert sources["lib"] == {"path": str(snapshots.made[root / "packages" / "lib"])}, "non-editable: a snapshot"
    assert sources["tool"] == {"path": str(root / "packages" / "tool"), "editable": True}
    assert sources["missing"] == {"workspace": True}, "no such member: uv says so"


@needs_git
def test_a_rewritten_pyproject_leaves_the_version_from_git_clean(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    project = scm_project(repo, ".")
    aged(repo / "lib" / "pyproject.toml", "")
    with (project / "pyproject.toml").open("a") as stream:
        stream.write('\n[tool.uv.sources]\nlib = { path = "lib" }\n')
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "sources", cwd=repo)
    git("tag", "v1.0", cwd=repo)

    copy = Snapshots(tmp_path / "sources").of(project)

    assert Path(read_toml(copy / "pyproject.toml")["tool"]["uv"]["sources"]["lib"]["path"]).is_absolute()
    assert git("describe", "--tags", "--dirty", cwd=copy).strip() == "v1.0"


@pytest.mark.slow
@pytest.mark.skipif(find_uv() is None, reason="uv is not installed")
@pytest.mark.parametrize("in_git", [False, True], ids=["no-git", "git"])
@pytest.mark.parametrize("source", ['{ path = "../pathlib_dep" }', "{ workspace = true }"], ids=["path", "workspace"])
def test_a_projects_uv_path_sources_resolve_as_in_place_and_count_by_content(
    make_envs: MakeEnvs, backend_wheels: Path, tmp_path: Path, in_git: bool, source: str
) -> None:
    if in_git and shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "repo"
    lib = setuptools_project(repo, "pathlib_dep", value=1)
    app = setuptools_project(repo, "pathapp")
    (repo / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["path*"]\n')
    pyproject = (app / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(
        pyproject.replace('version = "1.0"', 'version = "1.0"\ndependencies = ["pathlib-dep"]')
        + f"\n[tool.uv.sources]\npathlib-dep = {source}\n"
    )
    if in_git:
        committed(repo)
    before = {p: listing(p) for p in (app, lib)}
    cache, links = tmp_path / "cache", [str(backend_wheels)]
    value = "import pathlib_dep; print(pathlib_dep.VALUE)"

    first = IsoEnvFactory(make_envs(cache, installer="uv")).get(app, find_links=links)

    assert first.run("python", "-c", value).stdout.strip() == "1"
    assert {p: listing(p) for p in (app, lib)} == before, "neither project is built in the user's folder"
    direct_url = next(first.site_packages.glob("pathlib_dep-*.dist-info")) / "direct_url.json"
    assert json.loads(direct_url.read_text())["url"] == lib.as_uri()

    (lib / "pathlib_dep" / "__init__.py").write_text("VALUE = 2\n")
    again = IsoEnvFactory(make_envs(cache, installer="uv")).get(app, find_links=links)

    assert again.run("python", "-c", value).stdout.strip() == "2", "the dependency counts by its content"
    assert again.path != first.path


def scm_project(repo: Path, rel: str) -> Path:
    """A setuptools-scm project at *rel* in the git repository *repo* (made here), everything committed."""
    project = repo / rel
    (project / "scmpkg").mkdir(parents=True)
    (project / "scmpkg" / "__init__.py").write_text("")
    root = os.path.relpath(repo, project).replace(os.sep, "/")
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=77", "setuptools-scm>=8"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "scmpkg"
            dynamic = ["version"]

            [tool.setuptools_scm]
            root = "{root}"
            """
        )
    )
    (repo / "README.md").write_text("a repository\n")
    committed(repo)
    return project


@needs_git
@pytest.mark.parametrize("rel", [".", "packages/scmpkg"], ids=["top", "subfolder"])
def test_a_version_from_git_tags_is_built_and_keyed(
    make_envs: MakeEnvs, backend_wheels: Path, tmp_path: Path, rel: str
) -> None:
    repo = tmp_path / "repo"
    project = scm_project(repo, rel)
    git("tag", "v1.2.3", cwd=repo)
    cache, links = tmp_path / "cache", [str(backend_wheels)]
    version = "import importlib.metadata as m; print(m.version('scmpkg'))"
    before = listing(repo)

    first = IsoEnvFactory(make_envs(cache)).get(project, find_links=links)

    assert first.run("python", "-c", version).stdout.strip() == "1.2.3"
    assert listing(repo) == before, "the user's folder, .git included, is untouched"

    git("commit", "-q", "--allow-empty", "-m", "next", cwd=repo)
    git("tag", "v1.2.4", cwd=repo)
    before = listing(repo)
    second = make_envs(cache)
    again = IsoEnvFactory(second).get(project, find_links=links)

    assert again.key != first.key, "a new tag alone gives a new key"
    assert list(second.stats.built) == [again.key]
    assert again.run("python", "-c", version).stdout.strip() == "1.2.4"
    assert listing(repo) == before


@pytest.mark.slow
@needs_git
def test_an_editable_project_tagged_anew_is_installed_again_with_its_new_version(
    make_envs: MakeEnvs, backend_wheels: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    project = scm_project(repo, ".")
    (repo / ".gitignore").write_text("*.egg-info/\n")  # what an editable build writes in place
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "ignore", cwd=repo)
    git("tag", "v1.2.3", cwd=repo)
    cache, links = tmp_path / "cache", [str(backend_wheels)]
    version = "import importlib.metadata as m; print(m.version('scmpkg'))"

    first = IsoEnvFactory(make_envs(cache)).get(editable=[project], find_links=links)
    assert first.run("python", "-c", version).stdout.strip() == "1.2.3"

    git("commit", "-q", "--allow-empty", "-m", "next", cwd=repo)  # no file changed
    git("tag", "v1.2.4", cwd=repo)
    second = make_envs(cache)
    again = IsoEnvFactory(second).get(editable=[project], find_links=links)

    assert again.key != first.key, "a new tag alone gives a new key"
    assert list(second.stats.built) == [again.key]
    assert again.run("python", "-c", version).stdout.strip() == "1.2.4"


@needs_git
def test_a_change_inside_a_submodule_is_built(make_envs: MakeEnvs, backend_wheels: Path, tmp_path: Path) -> None:
    vendored = tmp_path / "vendored"
    vendored.mkdir()
    (vendored / "__init__.py").write_text("VALUE = 1\n")
    committed(vendored)
    project = setuptools_project(tmp_path / "user", "subpkg")
    committed(project)
    git("-c", "protocol.file.allow=always", "submodule", "add", "-q", vendored, "subpkg/vendored", cwd=project)
    git("commit", "-q", "-m", "vendor", cwd=project)
    cache, links = tmp_path / "cache", [str(backend_wheels)]
    value = "from subpkg import vendored; print(vendored.VALUE)"

    first = IsoEnvFactory(make_envs(cache)).get(project, find_links=links)
    assert first.run("python", "-c", value).stdout.strip() == "1"

    (project / "subpkg" / "vendored" / "__init__.py").write_text("VALUE = 2\n")
    again = IsoEnvFactory(make_envs(cache)).get(project, find_links=links)

    assert again.key != first.key
    assert again.run("python", "-c", value).stdout.strip() == "2"


def test_a_build_that_reads_outside_the_project_says_why_it_fails(
    make_envs: MakeEnvs, backend_wheels: Path, tmp_path: Path
) -> None:
    project = setuptools_project(tmp_path / "user", "outsidepkg")
    (tmp_path / "user" / "VERSION").write_text("1.0\n")
    (project / "setup.py").write_text("from setuptools import setup\nsetup(version=open('../VERSION').read())\n")
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text().replace('version = "1.0"', 'dynamic = ["version"]')
    )

    with pytest.raises(BuildError) as excinfo:
        IsoEnvFactory(make_envs(tmp_path / "cache")).get(project, find_links=[str(backend_wheels)])

    assert f"{project} built from a copy of the files that count for its key" in str(excinfo.value)
    assert "move the file into the project, or install the project editable" in str(excinfo.value)
