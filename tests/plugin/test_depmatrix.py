"""The dependency matrix (alternatives in the marker, --isoenv-with, --isoenv-resolution) and what an env can contain
(extras of local projects, dependency groups, per-env index options): units, then real runs."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import isoenv_testbackend as backend
import pytest
from helpers import INSTALLER, MakeEnvs, MakeProject, write_pyproject, write_versions

from pytest_isoenv.errors import SpecError
from pytest_isoenv.installers.api import InstallerDirs
from pytest_isoenv.installers.pip import PipInstaller
from pytest_isoenv.key.material import spec_material
from pytest_isoenv.plugin.matrix import choose, dependency_cells
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.index import IndexOptions

WHERE = "tests/test_x.py::test_y"
#: How an error names the test it happened in: at the end of its first line.
IN_WHERE = re.escape(f"(in {WHERE})")


def lit(text: str) -> str:
    """*text* for fnmatch_lines, its brackets (test ids) matched literally."""
    return re.sub(r"([\[\]])", r"[\1]", text)


def spec(*requirements: object, rootdir: Path, **kwargs: Any) -> EnvSpec:
    return EnvSpec.from_arguments(requirements, rootdir=rootdir, where=WHERE, **kwargs)


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheelhouse with three versions of gamma, and two of delta (both need gamma>=1)."""
    path = write_versions(tmp_path_factory.mktemp("versions"), "gamma", "1.0", "2.0", "3.0")
    return write_versions(path, "delta", "1.0", "2.0", requires=["gamma>=1"])


@pytest.fixture
def matrix_pytester(pytester: pytest.Pytester, wheelhouse: Path, versions: Path) -> pytest.Pytester:
    """pytester installing offline from the test wheelhouse and the versions wheelhouse."""
    pytester.makeini(
        f"[pytest]\nisoenv_find_links =\n    {wheelhouse}\n    {versions}\nisoenv_offline = true\n"
        f"isoenv_installer = {INSTALLER}\n"
    )
    return pytester


VERSION_OF = """
def version(env, name):
    return env.run("python", "-c", f"import {name}; print({name}.VERSION)").stdout.strip()
"""

# --- units -----------------------------------------------------------------------------------------------------


def test_lists_cross_in_order_and_ids_name_the_alternatives() -> None:
    cells = dependency_cells([["a==1.*", "a==2.*"], "b", ("c<2", "c>=2")], {}, WHERE)
    assert cells is not None
    assert [c.label for c in cells] == ["a==1.*-c<2", "a==1.*-c>=2", "a==2.*-c<2", "a==2.*-c>=2"]
    assert cells[1].chosen == ("a==1.*", "c>=2")
    assert dependency_cells(["a", "b"], {"editable": ["./x", "./y"]}, WHERE) is None


def test_an_alternative_of_several_requirements_and_editable_alternatives() -> None:
    args = [[("django==4.2.*", "drf==3.14.*"), "django==5.2.*"]]
    kwargs = {"editable": [".", ["./v1", "./v2"]], "python": "3.12"}
    cells = dependency_cells(args, kwargs, WHERE)
    assert cells is not None
    assert [c.label for c in cells] == [
        "django==4.2.*+drf==3.14.*-./v1",
        "django==4.2.*+drf==3.14.*-./v2",
        "django==5.2.*-./v1",
        "django==5.2.*-./v2",
    ]
    assert choose(args, kwargs, cells[1].chosen, WHERE) == (
        ["django==4.2.*", "drf==3.14.*"],
        {"editable": [".", "./v2"], "python": "3.12"},
    )
    assert choose(["a"], {}, None, WHERE) == (["a"], {})


@pytest.mark.parametrize("args", [[[]], ["a", ()], [["a", []]]])
def test_an_empty_list_of_alternatives_is_an_error_naming_the_test(args: list[object]) -> None:
    with pytest.raises(SpecError, match="^the isoenv marker('s alternatives| has an empty).* " + IN_WHERE):
        dependency_cells(args, {}, WHERE)
    with pytest.raises(SpecError, match=re.escape(WHERE)):
        choose(args, {}, None, WHERE)


def test_get_refuses_a_list_of_alternatives(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"is a list of alternatives, which only a marker can run a test over"):
        spec(["a==1", "a==2"], rootdir=tmp_path)


def test_extras_of_local_and_editable_projects(tmp_path: Path, make_project: MakeProject) -> None:
    project = make_project("proj")
    result = spec("./proj[CLI, test]", "./proj", rootdir=tmp_path)
    assert result.local == (project,)
    assert result.extras == ((project, ("cli", "test")),)
    assert result.describe() == "proj[cli,test] 0.1"
    here = spec(editable=[".[cli]"], rootdir=project)
    assert here.editable == (project,)
    assert here.describe() == "-e proj[cli] 0.1"
    assert spec(".[cli]", rootdir=project).local == (project,)
    # A requirement with extras stays a requirement; extras are keyed only when given.
    assert spec("attrs[tests]", rootdir=tmp_path).requirements == ("attrs[tests]",)
    plain = spec_material(spec("./proj", rootdir=tmp_path))
    assert "extras" not in plain
    assert spec_material(result) != plain
    assert PipInstaller(InstallerDirs(app_data=tmp_path, uv_cache=tmp_path)).package_arguments(here) == [
        "-e",
        f"{project}[cli]",
    ]


def test_bad_extras_and_a_missing_path_with_extras_are_errors(tmp_path: Path, make_project: MakeProject) -> None:
    make_project("proj")
    with pytest.raises(SpecError, match="^" + re.escape("'./proj[a b]' names extras that are not extra names")):
        spec("./proj[a b]", rootdir=tmp_path)
    with pytest.raises(SpecError, match=r"editable path 'nope' does not exist"):
        spec(editable=["nope[cli]"], rootdir=tmp_path)


def write_groups(root: Path, groups: str) -> None:
    (root / "pyproject.toml").write_text(f"[project]\nname = 'p'\nversion = '1'\n\n[dependency-groups]\n{groups}")


def test_groups_resolve_includes_and_are_keyed_by_content(tmp_path: Path) -> None:
    write_groups(
        tmp_path,
        'test = ["Alpha>=1", {include-group = "Type_Check"}]\ntype-check = ["mypy", "alpha>=1"]\n',
    )
    result = spec(groups=["test"], rootdir=tmp_path)
    assert result.groups == (("test", ("alpha>=1", "mypy")),)
    assert result.describe() == "group test"
    assert PipInstaller(InstallerDirs(app_data=tmp_path, uv_cache=tmp_path)).package_arguments(result) == [
        "alpha>=1",
        "mypy",
    ]
    (tmp_path / "sub").mkdir()
    write_groups(tmp_path / "sub", 'test = ["beta"]\n')
    assert spec(groups="sub:test", rootdir=tmp_path).groups == (("sub:test", ("beta",)),)
    assert spec(groups=["sub/pyproject.toml:test"], rootdir=tmp_path).groups[0][1] == ("beta",)
    before = spec_material(result)
    write_groups(tmp_path, 'test = ["alpha>=2", {include-group = "type-check"}]\ntype-check = ["mypy"]\n')
    assert spec_material(spec(groups=["test"], rootdir=tmp_path)) != before
    assert "groups" not in spec_material(spec("alpha", rootdir=tmp_path))


@pytest.mark.parametrize(
    ("groups", "asked", "message"),
    [
        ('a = ["x"]\n', "b", r"has no dependency group 'b' \(it has: a\)"),
        ('a = [{include-group = "b"}]\nb = [{include-group = "a"}]\n', "a", r"include each other \(a -> b -> a\)"),
        ('a = [{include-group = "c"}]\n', "a", r"has no dependency group 'c'"),
        ("a = [1]\n", "a", r"has an entry 1 that is neither a requirement string nor"),
        ('a = ["not a requirement!"]\n', "a", r"invalid requirement 'not a requirement!'"),
        ('a = ["x"]\n', "a b", r"'a b' does not name a dependency group"),
    ],
)
def test_bad_groups_are_errors_naming_the_test(tmp_path: Path, groups: str, asked: str, message: str) -> None:
    write_groups(tmp_path, groups)
    with pytest.raises(SpecError, match=message + ".* " + IN_WHERE):
        spec(groups=[asked], rootdir=tmp_path)


def test_groups_without_a_pyproject_say_where_they_looked(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=re.escape(f"{tmp_path / 'pyproject.toml'} does not exist")):
        spec(groups=["test"], rootdir=tmp_path)


def test_with_requirements_replace_the_same_names_and_add_the_others(tmp_path: Path) -> None:
    write_groups(tmp_path, 'test = ["django>=4", "pytest"]\n')
    base = spec("Django==5.2.*", "requests", groups=["test"], rootdir=tmp_path)
    result = base.with_requirements(["django==4.2.*", "attrs"])
    assert result.requirements == ("attrs", "django==4.2.*", "requests")
    assert result.groups == (("test", ("pytest",)),)
    assert base.with_requirements([]) is base


def test_per_env_index_options_are_normalised_and_keyed_by_content(
    tmp_path: Path, make_envs: MakeEnvs, versions: Path
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    envs = make_envs()
    result = envs.spec(("gamma",), find_links=["links", "https://example.org/wheels/"])
    assert result.find_links == (str(links), "https://example.org/wheels/")
    index = IndexOptions(index_url="https://a.example/simple", find_links=("/w",)).for_spec(result)
    assert index.find_links == ("/w", str(links), "https://example.org/wheels/")
    assert index.index_url == "https://a.example/simple"
    assert IndexOptions().for_spec(spec("x", rootdir=tmp_path, index_url=" https://b.example/simple ")).index_url == (
        "https://b.example/simple"
    )
    before = envs.key(result)
    (links / "gamma-9.0-py3-none-any.whl").write_bytes(b"")
    assert make_envs().key(result) != before, "a new file in a find-links folder changes the key"
    assert envs.key(envs.spec(("gamma",))) != before
    with pytest.raises(SpecError, match=r"index_url='https://b.example/simple' is an index, but installs are offline"):
        envs.spec(("gamma",), index_url="https://b.example/simple")
    with pytest.raises(SpecError, match=r"index_url=3 is not a URL"):
        spec("x", rootdir=tmp_path, index_url=3)


def test_resolution_is_part_of_the_key(tmp_path: Path, make_envs: MakeEnvs) -> None:
    highest = make_envs(installer="uv" if INSTALLER != "pip" else "pip")
    if highest.installer(highest.spec(())).name != "uv":
        pytest.skip("a resolution other than highest needs uv")
    lowest = make_envs(installer="uv", resolution="lowest-direct")
    assert highest.key(highest.spec(("gamma",))) != lowest.key(lowest.spec(("gamma",)))
    assert "resolution" not in spec_material(highest.spec(("gamma",)))


def test_pip_refuses_a_resolution_other_than_highest(tmp_path: Path, make_envs: MakeEnvs) -> None:
    envs = make_envs(installer="pip", resolution="lowest-direct", current_test=lambda: WHERE)
    with pytest.raises(
        SpecError, match="^" + re.escape("--isoenv-resolution lowest-direct needs the uv installer: ") + ".*" + IN_WHERE
    ):
        envs.key(envs.spec(("gamma",)))


# --- real runs -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_list_runs_the_test_once_per_alternative(matrix_pytester: pytest.Pytester) -> None:
    matrix_pytester.makepyfile(
        VERSION_OF
        + """
        import pytest

        @pytest.mark.isoenv(["gamma==1.*", "gamma==2.*", "gamma==3.*"], "alpha==1.0")
        def test_version(isoenv, isoenv_alternatives):
            wanted = isoenv_alternatives[0].split("==")[1].replace("*", "0")
            assert version(isoenv, "gamma") == wanted
            assert version(isoenv, "alpha") == "1.0"

        @pytest.mark.isoenv("gamma==1.*")
        def test_plain(isoenv, isoenv_alternatives):
            assert isoenv_alternatives is None
        """.replace("\n        ", "\n")
    )
    result = matrix_pytester.runpytest("-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [lit(f"*::test_version[gamma=={v}.*] PASSED*") for v in (1, 2, 3)] + ["*::test_plain PASSED*"]
    )
    result.stdout.fnmatch_lines(
        [
            "isoenv matrix: 3 cell(s)",
            "  gamma==1.*  1 passed, 0 failed, 0 skipped",
            "  gamma==2.*  1 passed, 0 failed, 0 skipped",
            "  gamma==3.*  1 passed, 0 failed, 0 skipped",
        ]
    )
    # Under xdist the cells reach the controller's summary with the reports.
    distributed = matrix_pytester.runpytest("-p", "xdist", "-n", "2")
    distributed.assert_outcomes(passed=4)
    distributed.stdout.fnmatch_lines(["isoenv matrix: 3 cell(s)", "  gamma==3.*  1 passed, 0 failed, 0 skipped"])
    selected = matrix_pytester.runpytest("-v", "-k", "version and 2.")
    selected.assert_outcomes(passed=1)
    selected.stdout.fnmatch_lines([lit("*::test_version[gamma==2.*] PASSED*")])


def test_an_empty_list_fails_only_its_test(matrix_pytester: pytest.Pytester) -> None:
    matrix_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv([], "gamma")
        def test_empty(isoenv):
            pass

        def test_other():
            pass
        """
    )
    result = matrix_pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "the isoenv marker has an empty list of alternatives* (in *test_an_empty_list_fails_only_its_test.py::test_empty)"
        ]
    )


@pytest.mark.slow
def test_with_keeps_the_extra_of_the_requirement_it_replaces(
    pytester: pytest.Pytester, wheelhouse: Path, tmp_path: Path
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    for number in ("1.0", "2.0"):
        files = {"epsilon/__init__.py": f"VERSION = {number!r}\n"}
        backend.write_wheel(house, "epsilon", number, files=files, extras={"fast": ["clitool"]})
    pytester.makeini(
        f"[pytest]\nisoenv_find_links =\n    {wheelhouse}\n    {house}\nisoenv_offline = true\n"
        f"isoenv_installer = {INSTALLER}\n"
    )
    pytester.makepyfile(
        VERSION_OF
        + """
        import pytest

        @pytest.mark.isoenv("epsilon[fast]==2.0; python_version >= '3'")
        def test_extra(isoenv):
            assert version(isoenv, "epsilon") == "1.0"
            assert isoenv.run("python", "-c", "import clitool").returncode == 0
        """.replace("\n        ", "\n")
    )
    pytester.runpytest("--isoenv-with", "epsilon==1.0").assert_outcomes(passed=1)


@pytest.mark.slow
def test_with_overrides_a_marker_and_the_header_says_so(matrix_pytester: pytest.Pytester) -> None:
    matrix_pytester.makepyfile(
        VERSION_OF
        + """
        import pytest

        @pytest.mark.isoenv("gamma==1.*", "alpha")
        def test_overridden(isoenv):
            assert version(isoenv, "gamma") == "3.0"
            assert version(isoenv, "alpha") == "1.0"
            assert version(isoenv, "delta") == "1.0"

        def test_factory(isoenv_factory):
            env = isoenv_factory.get("gamma<3")
            assert version(env, "gamma") == "3.0"
        """.replace("\n        ", "\n")
    )
    result = matrix_pytester.runpytest("--isoenv-with", "gamma==3.*", "--isoenv-with", "alpha==1.0", "-v")
    result.assert_outcomes(failed=1, passed=1)  # delta is not in every env: only what --isoenv-with names
    result.stdout.fnmatch_lines(
        [
            "isoenv: with gamma==3.* (--isoenv-with): in every env, replacing any requirement of the same name *",
            "isoenv: with alpha==1.0 (--isoenv-with): *",
        ]
    )
    ini = matrix_pytester.path / "tox.ini"
    ini.write_text(ini.read_text() + "\nisoenv_with =\n    gamma==3.*\n    alpha==1.0\n    delta==1.0\n")
    matrix_pytester.runpytest().assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--isoenv-with", "./proj"],
            "--isoenv-with / isoenv_with: './proj' is a path, not a requirement with a name*",
        ),
        (["--isoenv-with", "gamma=="], "--isoenv-with / isoenv_with: invalid requirement 'gamma=='*"),
        (["--isoenv-resolution", "newest"], "*'newest' is no resolution strategy. Choose one of: highest, *"),
        (
            ["--isoenv-installer", "pip", "--isoenv-resolution", "lowest-direct"],
            "*--isoenv-resolution lowest-direct needs the uv installer*--isoenv-installer uv*",
        ),
    ],
)
def test_bad_matrix_options_are_usage_errors(matrix_pytester: pytest.Pytester, args: list[str], message: str) -> None:
    matrix_pytester.makepyfile("def test_it(): pass")
    result = matrix_pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


@pytest.mark.slow
def test_lowest_direct_and_lowest_pick_the_lowest_allowed_versions(
    matrix_pytester: pytest.Pytester, installer_name: str
) -> None:
    if installer_name != "uv":
        pytest.skip("resolution strategies other than highest need uv (the pip error is tested above)")
    matrix_pytester.makepyfile(
        VERSION_OF
        + """
        import pytest

        @pytest.mark.isoenv("gamma>=2", "delta")
        def test_versions(isoenv, request):
            expected = {"highest": ("3.0", "2.0"), "lowest-direct": ("2.0", "1.0"), "lowest": ("2.0", "1.0")}
            resolution = request.config.getoption("isoenv_resolution") or "highest"
            assert (version(isoenv, "gamma"), version(isoenv, "delta")) == expected[resolution]

        @pytest.mark.isoenv("delta")
        def test_indirect(isoenv, request):
            # delta needs gamma>=1: only "lowest" takes the lowest of an indirect requirement.
            resolution = request.config.getoption("isoenv_resolution") or "highest"
            assert version(isoenv, "gamma") == ("1.0" if resolution == "lowest" else "3.0")
        """.replace("\n        ", "\n")
    )
    for resolution in ("highest", "lowest-direct", "lowest"):
        result = matrix_pytester.runpytest("--isoenv-resolution", resolution)
        result.assert_outcomes(passed=2)
    plan = matrix_pytester.runpytest("--collect-only", "-q", "--isoenv-plan", "--isoenv-resolution", "lowest-direct")
    plan.stdout.fnmatch_lines(
        ["isoenv plan: 2 env(s) for 2 test(s): 2 cached, 0 to build", "  cached * uv  lowest-direct  *"]
    )
    header = matrix_pytester.runpytest("--isoenv-resolution", "lowest-direct", "--collect-only")
    header.stdout.fnmatch_lines(["isoenv: resolution lowest-direct (--isoenv-resolution): keyed apart from highest"])
    listed = matrix_pytester.runpytest("--isoenv-list", "-v")  # -v: the resolution column too
    for resolution in ("highest", "lowest-direct", "lowest"):
        row = re.compile(rf"  uv +{resolution} .*  (delta|delta, gamma>=2)$")
        assert len([line for line in listed.outlines if row.search(line)]) == 2, resolution


@pytest.mark.slow
def test_extras_and_groups_of_the_project_under_test(
    matrix_pytester: pytest.Pytester, wheelhouse: Path, make_project: MakeProject
) -> None:
    root = matrix_pytester.path
    (root / "rootproj").mkdir()
    (root / "rootproj" / "__init__.py").write_text("NAME = 'rootproj'\n")
    write_pyproject(
        root,
        """\
        [project]
        name = "rootproj"
        version = "0.1"
        dependencies = []

        [project.optional-dependencies]
        cli = ["clitool"]

        [dependency-groups]
        test = ["alpha==1.0", {include-group = "tools"}]
        tools = ["clitool"]
        """,
    )
    make_project("sub", parent=root, dependencies=["alpha"])
    sub = root / "sub" / "pyproject.toml"
    sub.write_text(sub.read_text() + '\n[project.optional-dependencies]\ncli = ["clitool"]\n')
    matrix_pytester.makepyfile(
        """
        import pytest

        def has(env, name):
            return name in env.installed()

        @pytest.mark.isoenv(editable=[".[cli]"])
        def test_editable_extras(isoenv):
            assert has(isoenv, "rootproj") and has(isoenv, "clitool")
            assert isoenv.run("clitool").stdout.strip() == "clitool says hi"

        @pytest.mark.isoenv("./sub[cli]")
        def test_local_extras(isoenv):
            assert has(isoenv, "sub") and has(isoenv, "clitool") and has(isoenv, "alpha")

        @pytest.mark.isoenv("./sub")
        def test_local_without_extras(isoenv):
            assert has(isoenv, "sub") and not has(isoenv, "clitool")

        @pytest.mark.isoenv(groups=["test"])
        def test_group(isoenv):
            assert isoenv.installed() == {**isoenv.installed(), "alpha": "1.0", "clitool": "1.0"}
            assert not has(isoenv, "rootproj")

        def test_group_from_get(isoenv_factory):
            env = isoenv_factory.get(groups="test", editable=".")
            assert has(env, "rootproj") and has(env, "clitool")
        """
    )
    result = matrix_pytester.runpytest("-v")
    result.assert_outcomes(passed=5)
    plan = matrix_pytester.runpytest("--collect-only", "-q", "--isoenv-plan")
    plan.stdout.fnmatch_lines(
        [
            # Projects by their metadata's name and version, not their folders' names.
            lit("* -e rootproj[cli] 0.1 *"),
            lit("* sub[cli] 0.1 *"),
            "* group test *",
            "  not listed: the envs that 1 test(s) make with isoenv_factory.get(), in the test or its fixtures, "
            "are known only when they run*",
        ]
    )


@pytest.mark.slow
def test_per_env_find_links(pytester: pytest.Pytester, versions: Path) -> None:
    # The session's ini has only the main wheelhouse: gamma comes from the marker's and get()'s own folder.
    pytester.makepyfile(
        VERSION_OF
        + f"""
        import pytest

        @pytest.mark.isoenv("gamma==2.*", find_links=[{str(versions)!r}])
        def test_marker(isoenv):
            assert version(isoenv, "gamma") == "2.0"

        def test_get(isoenv_factory):
            assert version(isoenv_factory.get("gamma==2.*", find_links={str(versions)!r}), "gamma") == "2.0"

        @pytest.mark.isoenv("gamma")
        def test_without(isoenv):
            pass
        """.replace("\n        ", "\n")
    )
    result = pytester.runpytest("-rf")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*installing gamma failed (in *test_without)*"])


@pytest.fixture
def two_pythons(real_pythons: dict[tuple[int, int], Path]) -> list[str]:
    """Two installed CPython versions other than pytest's own, virtualenv can make envs for."""
    from pytest_isoenv.installers.api import oldest_seeded_python

    oldest = oldest_seeded_python()
    usable = sorted(v for v in real_pythons if (oldest is None or v >= oldest) and v != sys.version_info[:2])
    if len(usable) < 2:
        pytest.skip(f"needs two installed CPythons besides pytest's own; found {usable}")
    return ["{}.{}".format(*v) for v in usable[-2:]]


@pytest.mark.slow
def test_the_python_matrix_crosses_and_factory_envs_follow_it(
    matrix_pytester: pytest.Pytester, two_pythons: list[str]
) -> None:
    low, high = two_pythons
    matrix_pytester.makepyfile(
        VERSION_OF
        + """
        import sys
        import pytest

        CODE = "import sys; print('%d.%d' % sys.version_info[:2])"

        @pytest.fixture
        def tool_env(isoenv_factory):
            return isoenv_factory.get("alpha==1.0")

        @pytest.fixture(scope="session")
        def session_env(isoenv_factory):
            return isoenv_factory.get("alpha==1.0")

        @pytest.fixture(scope="session")
        def host_env(isoenv_factory):
            return isoenv_factory.get("alpha==1.0", python=sys.executable)

        @pytest.mark.isoenv(["gamma==1.*", "gamma==2.*"])
        def test_cell(isoenv, isoenv_python, tool_env, host_env):
            assert isoenv.run("python", "-c", CODE).stdout.strip() == isoenv_python
            assert tool_env.run("python", "-c", CODE).stdout.strip() == isoenv_python
            assert isoenv_factory_version(host_env) == "%d.%d" % sys.version_info[:2]

        def isoenv_factory_version(env):
            return env.run("python", "-c", CODE).stdout.strip()

        def test_session_fixture_first(session_env):
            pass

        def test_session_fixture_in_the_matrix(isoenv_python, session_env):
            pass
        """.replace("\n        ", "\n")
    )
    result = matrix_pytester.runpytest("--isoenv-pythons", f"{low},{high}", "-v", "-p", "no:randomly")
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        [lit(f"*::test_cell[py{p}-gamma=={v}.*] PASSED*") for p in (low, high) for v in (1, 2)], consecutive=False
    )
    result.stdout.fnmatch_lines(
        [
            f"*test_session_fixture_in_the_matrix[[]py{low}[]]: runs on {low} (the Python matrix), but fixture "
            "'session_env' gives it an env on the Python running pytest (alpha==1.0)*Make 'session_env' "
            "function-scoped*",
        ]
    )
    result.stdout.fnmatch_lines(["isoenv matrix: 6 cell(s)", f"  py{low}-gamma==1.*  1 passed, 0 failed, 0 skipped"])
    result.stdout.fnmatch_lines([f"  py{high}  * 0 passed, 0 failed, 0 skipped, 1 error"])

    # Made first by a test on the matrix, a session fixture's get() without python= is refused at once.
    first = matrix_pytester.runpytest("--isoenv-pythons", low, "-k", "in_the_matrix")
    first.assert_outcomes(errors=1)
    first.stdout.fnmatch_lines(
        [
            f"*isoenv_factory.get() without python= in the session-scoped fixture 'session_env', for a test the "
            f"Python matrix runs on {low}*"
        ]
    )
