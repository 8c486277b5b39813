"""The key sees everything that shapes an env: change an input, and the next session gets a new, different env.

Each test builds an env for real, changes one input the way a user would, and
checks that a new session's env holds the change (or, for inputs that must not
matter, that the env is reused).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import isoenv_testbackend as backend
import pytest
from helpers import MakeFactory, MakeProject, write_pyproject
from helpers import new_session as session
from reliability_helpers import BuildTrace, Figure

from pytest_isoenv.installers.uv import UvInstaller
from pytest_isoenv.run.env import IsolatedEnv

pytestmark = pytest.mark.slow  # every test builds an env, changes an input and builds again


def value(env: IsolatedEnv, module: str, name: str = "VALUE") -> str:
    """``module.name`` as the env's interpreter sees it."""
    return env.run("python", "-c", f"import {module}; print({module}.{name})").stdout.strip()


def alpha(env: IsolatedEnv) -> str:
    return value(env, "alpha", "VERSION")


@pytest.mark.parametrize("source", ["find-links folder", "file: URL"])
def test_wheel_rebuilt_under_the_same_name_gives_a_new_env(tmp_path: Path, source: str, figure: Figure) -> None:
    house = tmp_path / "house"
    house.mkdir()
    wheel = backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'old'\n"})
    requirement = "gamma" if source == "find-links folder" else f"gamma @ {wheel.as_uri()}"
    first = session(tmp_path / "cache", house).get(requirement)
    assert value(first, "gamma") == "old"

    # New code, same version, same file name, same size: only the content says it changed.
    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'new'\n"})
    second = session(tmp_path / "cache", house).get(requirement)

    assert second.key != first.key
    assert value(second, "gamma") == "new"
    figure(f"wheel in a {source} rebuilt under its name: new key, the next session imports the new code")


@pytest.mark.parametrize(
    "line", ["-r base.txt", "--requirement=nested/base.txt", "-c base.txt", "--constraint nested/base.txt"]
)
def test_nested_requirements_and_constraints_files_are_followed(
    tmp_path: Path, wheelhouse: Path, line: str, figure: Figure
) -> None:
    included = tmp_path / "project" / (line.split()[-1].split("=")[-1])
    included.parent.mkdir(parents=True, exist_ok=True)
    included.write_text("alpha==1.0\n")
    top = tmp_path / "project" / "top.txt"
    top.write_text(f"# the line under test\n{line}\n")
    constraint = "-c" in line or "constraint" in line
    arguments = {"constraints": top} if constraint else {"requirements_files": [top]}
    requirements = ["alpha"] if constraint else []
    first = session(tmp_path / "cache", wheelhouse).get(*requirements, **arguments)
    assert alpha(first) == "1.0"

    included.write_text("alpha==2.0\n")
    second = session(tmp_path / "cache", wheelhouse).get(*requirements, **arguments)

    assert alpha(second) == "2.0"
    figure(f"{line!r} in a {'constraints' if constraint else 'requirements'} file: the included file's edit is seen")


@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize("kind", ["requirements", "constraints"])
def test_variables_in_requirements_files_count_with_their_values(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch, installer: str, kind: str, figure: Figure
) -> None:
    listing = tmp_path / "project" / "reqs.txt"
    listing.parent.mkdir()
    listing.write_text("alpha==${ALPHA_VERSION}\n")
    arguments = {"constraints": listing} if kind == "constraints" else {"requirements_files": [listing]}
    requirements = ["alpha"] if kind == "constraints" else []
    monkeypatch.setenv("ALPHA_VERSION", "1.0")
    first = session(tmp_path / "cache", wheelhouse, installer=installer).get(*requirements, **arguments)
    assert alpha(first) == "1.0"

    monkeypatch.setenv("ALPHA_VERSION", "2.0")
    second = session(tmp_path / "cache", wheelhouse, installer=installer).get(*requirements, **arguments)

    assert second.key != first.key
    assert alpha(second) == "2.0"
    figure(f"${{VAR}} in a {kind} file ({installer}): another value of the variable gives another env")


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_included_file_named_with_a_variable_is_followed(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch, installer: str, figure: Figure
) -> None:
    for version in ("1.0", "2.0"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "base.txt").write_text(f"alpha=={version}\n")
    top = tmp_path / "project" / "reqs.txt"
    top.parent.mkdir()
    top.write_text("-r ${BASE_DIR}/base.txt\n")
    monkeypatch.setenv("BASE_DIR", str(tmp_path / "1.0"))
    first = session(tmp_path / "cache", wheelhouse, installer=installer).get(requirements_files=[top])
    assert alpha(first) == "1.0"

    monkeypatch.setenv("BASE_DIR", str(tmp_path / "2.0"))
    second = session(tmp_path / "cache", wheelhouse, installer=installer).get(requirements_files=[top])

    assert alpha(second) == "2.0"
    figure(f"-r ${{DIR}}/base.txt ({installer}): followed, and another folder gives another env")


def test_editable_file_url_in_a_requirements_file_is_keyed_and_installed_editable(
    tmp_path: Path, wheelhouse: Path, make_project: MakeProject, figure: Figure
) -> None:
    project = make_project("edit", body="VALUE = 'live'\n")
    listing = tmp_path / "requirements.txt"
    listing.write_text(f"-e {project.as_uri()}\n")
    first = session(tmp_path / "cache", wheelhouse).get(requirements_files=[listing])
    assert value(first, "edit") == "live"
    (project / "edit" / "__init__.py").write_text("VALUE = 'edited'\n")
    assert value(first, "edit") == "edited", "installed editable: the edit is live"

    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = []", 'dependencies = ["alpha==1.0"]'))
    second = session(tmp_path / "cache", wheelhouse).get(requirements_files=[listing])

    assert second.key != first.key
    assert alpha(second) == "1.0"
    figure("-e file:///... in a requirements file: keyed by its metadata as an editable project, installed editable")


@pytest.mark.parametrize("setting", ["PIP_CONSTRAINT", "UV_CONSTRAINT", "pip config file"])
def test_constraints_named_by_installer_configuration_are_keyed_by_content(
    tmp_path: Path, wheelhouse: Path, installer_name: str, monkeypatch: pytest.MonkeyPatch, setting: str, figure: Figure
) -> None:
    constraints = tmp_path / "managed" / "constraints.txt"
    constraints.parent.mkdir()
    constraints.write_text("alpha==1.0\n")
    # Only the configuration under test: pip's files on this machine may name constraints of their own
    # (and under uv, pip's constraints are carried over as --constraint, which wins over UV_CONSTRAINT).
    config = tmp_path / "pip.conf"
    config.write_text(f"[install]\nconstraint = {constraints}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config) if setting == "pip config file" else os.devnull)
    if setting == "UV_CONSTRAINT" and installer_name != "uv":
        pytest.skip("pip does not read uv's configuration")
    if setting != "pip config file":
        monkeypatch.setenv(setting, str(constraints))
    first = session(tmp_path / "cache", wheelhouse).get("alpha")
    assert alpha(first) == "1.0"

    constraints.write_text("alpha==2.0\n")
    second = session(tmp_path / "cache", wheelhouse).get("alpha")

    assert alpha(second) == "2.0"
    figure(f"{setting} ({installer_name}): an edit of the constraints file it names gives a new env")


DYNAMIC = {
    "setuptools dynamic": (
        "requirements.txt",
        '[tool.setuptools.dynamic]\ndependencies = { file = ["requirements.txt"] }\n',
    ),
    "uv cache-keys": (
        "deps.in",
        '[tool.isoenv-testbackend]\ndependencies-file = "deps.in"\n\n'
        '[tool.uv]\ncache-keys = [{ file = "pyproject.toml" }, { file = "deps.in" }]\n',
    ),
}


@pytest.mark.parametrize("how", list(DYNAMIC))
def test_editable_project_dynamic_dependencies_are_followed(
    tmp_path: Path, wheelhouse: Path, how: str, figure: Figure
) -> None:
    deps, tool = DYNAMIC[how]
    project = write_dynamic_project(tmp_path / "dyn", tool)
    (project / deps).write_text("alpha==1.0\n")
    first = session(tmp_path / "cache", wheelhouse).get(editable=project)
    assert alpha(first) == "1.0"

    (project / deps).write_text("alpha==2.0\n")
    second = session(tmp_path / "cache", wheelhouse).get(editable=project)

    assert alpha(second) == "2.0"
    figure(f"editable project with dependencies read from {deps} ({how}): its edit gives a new env")


HATCH_BUILD = """\
from hatchling.metadata.plugin.interface import MetadataHookInterface


class CustomMetadataHook(MetadataHookInterface):
    def update(self, metadata):
        metadata["dependencies"] = [{requirement!r}]
"""


def test_editable_hatchling_metadata_hook_is_followed(tmp_path: Path, wheelhouse: Path, figure: Figure) -> None:
    project = tmp_path / "hooked"
    (project / "hooked").mkdir(parents=True)
    (project / "hooked" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "hooked"\nversion = "0.1"\ndynamic = ["dependencies"]\n\n'
        "[tool.hatch.metadata.hooks.custom]\n"
    )
    (project / "hatch_build.py").write_text(HATCH_BUILD.format(requirement="alpha==1.0"))
    # hatchling comes from the index (a build backend); alpha only from the wheelhouse.
    first = session(tmp_path / "cache", wheelhouse, offline=False).get(editable=project)
    assert alpha(first) == "1.0"

    (project / "hatch_build.py").write_text(HATCH_BUILD.format(requirement="alpha==2.0"))
    second = session(tmp_path / "cache", wheelhouse, offline=False).get(editable=project)

    assert alpha(second) == "2.0"
    figure("editable hatchling project whose hatch_build.py hook sets its dependencies: the hook's edit is seen")


def write_dynamic_project(root: Path, tool: str) -> Path:
    (root / "dyn").mkdir(parents=True)
    (root / "dyn" / "__init__.py").write_text("")
    return write_pyproject(root, '[project]\nname = "dyn"\nversion = "0.1"\ndynamic = ["dependencies"]\n\n' + tool)


def test_local_project_counts_folders_named_like_tool_folders_below_its_top(
    tmp_path: Path, wheelhouse: Path, make_project: MakeProject, figure: Figure
) -> None:
    project = make_project("proj")
    (project / "proj" / "build").mkdir()  # a package named build, like pypa/build's src/build/
    (project / "proj" / "build" / "__init__.py").write_text("VALUE = 'old'\n")
    first = session(tmp_path / "cache", wheelhouse).get(str(project))
    assert value(first, "proj.build") == "old"

    (project / "proj" / "build" / "__init__.py").write_text("VALUE = 'new'\n")
    second = session(tmp_path / "cache", wheelhouse).get(str(project))

    assert value(second, "proj.build") == "new"
    figure("local project: an edit in proj/build/ (a folder named build below the top) gives a new env")


def test_cache_inside_the_project_is_not_part_of_it(
    tmp_path: Path, wheelhouse: Path, make_project: MakeProject, build_trace: BuildTrace, figure: Figure
) -> None:
    project = make_project("proj")
    cache = project / ".isoenv"  # the CI recipe's layout: the cache in the workspace
    first = session(cache, wheelhouse, rootdir=project).get(".")
    second = session(cache, wheelhouse, rootdir=project).get(".")

    assert second.key == first.key
    assert build_trace.counts()["proj"] == 1
    figure("isoenv('.') with the cache inside the project: the second session reuses the env (1 build)")


@pytest.mark.parametrize("where", ["ini", "command line"])
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_relative_find_links_resolve_as_pytest_resolves_paths(
    pytester: pytest.Pytester,
    private_cache: Path,
    wheelhouse: Path,
    monkeypatch: pytest.MonkeyPatch,
    installer: str,
    where: str,
    figure: Figure,
) -> None:
    if installer == "uv" and UvInstaller.unavailable():
        pytest.skip("uv is not installed")
    shutil.copytree(wheelhouse, pytester.path / "wheels")
    ini = f"[pytest]\nisoenv_offline = true\nisoenv_installer = {installer}\n"
    pytester.makeini(ini + ("isoenv_find_links = wheels\n" if where == "ini" else ""))
    sub = pytester.mkdir("tests")
    (sub / "test_alpha.py").write_text(
        "import pytest\n\n@pytest.mark.isoenv('alpha==1.0')\ndef test_alpha(isoenv):\n"
        "    isoenv.run('python', '-c', 'import alpha')\n"
    )
    monkeypatch.chdir(sub)  # started from a sub-folder of the rootdir
    args = ["--isoenv-find-links", "../wheels"] if where == "command line" else []

    pytester.runpytest(*args).assert_outcomes(passed=1)
    given = "isoenv_find_links = wheels in the ini" if where == "ini" else "--isoenv-find-links ../wheels"
    figure(f"{given}, pytest started in tests/, {installer}: the env was built from the wheelhouse")


def test_paths_inside_requirements_files_mean_the_files_folder(
    tmp_path: Path, wheelhouse: Path, make_project: MakeProject, figure: Figure
) -> None:
    deps = tmp_path / "deps"
    lib = make_project("lib", parent=deps, body="VALUE = 'old'\n")
    make_project("edit", parent=deps, body="VALUE = 'editable'\n")
    (deps / "requirements.txt").write_text("./lib\n-e ./edit\n")
    # rootdir and the process's working directory are elsewhere: only the file's folder makes the lines work.
    first = session(tmp_path / "cache", wheelhouse, rootdir=tmp_path).get(requirements_files=deps / "requirements.txt")
    assert (value(first, "lib"), value(first, "edit")) == ("old", "editable")

    (lib / "lib" / "__init__.py").write_text("VALUE = 'new'\n")
    second = session(tmp_path / "cache", wheelhouse, rootdir=tmp_path).get(requirements_files=deps / "requirements.txt")

    assert value(second, "lib") == "new"
    figure("'./lib' and '-e ./edit' in deps/requirements.txt: installed from deps/, and lib's edit gives a new env")


def test_file_url_to_a_project_is_keyed_by_its_tree(
    tmp_path: Path, wheelhouse: Path, make_project: MakeProject, figure: Figure
) -> None:
    project = make_project("lib", body="VALUE = 'old'\n")
    requirement = f"lib[cli] @ {project.as_uri()}"  # the way to ask for a local project's extras
    first = session(tmp_path / "cache", wheelhouse).get(requirement)
    assert value(first, "lib") == "old"

    (project / "lib" / "__init__.py").write_text("VALUE = 'new'\n")
    second = session(tmp_path / "cache", wheelhouse).get(requirement)

    assert value(second, "lib") == "new"
    figure("'lib[cli] @ file:///...' requirement: an edit of the project gives a new env")


def test_editable_extension_sources_are_keyed(
    tmp_path: Path, wheelhouse: Path, make_project: MakeProject, build_trace: BuildTrace, figure: Figure
) -> None:
    project = make_project("ext")
    (project / "CMakeLists.txt").write_text("add_library(speedup MODULE src/speedup.c)\n")
    (project / "src").mkdir()
    (project / "src" / "speedup.c").write_text("int speedup(void) { return 1; }\n")
    first = session(tmp_path / "cache", wheelhouse).get(editable=project)
    (project / "ext" / "__init__.py").write_text("EDITED = True\n")  # Python edits are live: no rebuild
    assert session(tmp_path / "cache", wheelhouse).get(editable=project).key == first.key

    (project / "src" / "speedup.c").write_text("int speedup(void) { return 2; }\n")
    second = session(tmp_path / "cache", wheelhouse).get(editable=project)

    assert second.key != first.key
    assert build_trace.counts()["ext"] == 2
    figure("editable project with a C extension: a .py edit reuses the env, a .c edit builds a new one")


def test_equal_specifiers_share_one_env(make_factory: MakeFactory, tmp_path: Path, figure: Figure) -> None:
    cache = tmp_path / "cache"
    envs = [make_factory(cache).get(f"alpha>={version}") for version in ("1", "1.0", "1.0.0")]
    envs += [make_factory(cache).get(f"alpha>=1.0,<{version}") for version in ("2", "2.0")]

    assert len({env.key for env in envs[:3]}) == 1
    assert len({env.key for env in envs[3:]}) == 1
    figure("alpha>=1, >=1.0, >=1.0.0: one key, one env; >=1.0,<2 and >=1.0,<2.0: one key")


@pytest.mark.parametrize("argument", ['python=""', 'installer=""', 'python="  "'])
def test_empty_python_or_installer_is_refused(
    pytester: pytest.Pytester, private_cache: Path, argument: str, figure: Figure
) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.isoenv('alpha', {argument})\ndef test_x(isoenv):\n    pass\n")
    reports = pytester.inline_run().getreports("pytest_runtest_logreport")

    [error] = [r.longreprtext for r in reports if r.when == "setup" and r.failed]
    name = argument.split("=")[0]
    assert error.startswith(f"{name}={argument.split('=')[1][1:-1]!r} is not a")
    assert "(in test_empty_python_or_installer_is_refused.py::test_x)" in error
    assert f"leave {name} out" in error
    assert not private_cache.exists()
    figure(f"{argument}: refused naming the test, the value and the fix ({error!r}); no cache written")
