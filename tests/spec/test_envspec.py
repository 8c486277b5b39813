"""EnvSpec: validation, normalisation and the key material."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import MakeProject, write_pyproject
from packaging.requirements import Requirement

from pytest_isoenv.errors import SpecError
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.material import compute_key, editable_material, spec_material
from pytest_isoenv.spec.envspec import EnvSpec, normalize_requirement, normalize_specifier


def spec(*requirements: object, rootdir: Path = Path("/"), **kwargs: Any) -> EnvSpec:
    return EnvSpec.from_arguments(requirements, rootdir=rootdir, where="tests/test_x.py::test_y", **kwargs)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Requests", "requests"),
        ("zope.interface", "zope-interface"),
        ("requests[socks,Security]>=2.28", "requests[security,socks]>=2.28"),
        ("attrs<25,>=20", "attrs<25,>=20"),
        ("attrs >=20 , <25", "attrs<25,>=20"),
        ("pkg ; python_version>'3'", 'pkg; python_version > "3"'),
        ("pkg @ https://example.org/pkg.whl", "pkg @ https://example.org/pkg.whl"),
    ],
)
def test_requirements_are_canonicalised(given: str, expected: str) -> None:
    assert normalize_requirement(Requirement(given)) == expected


def test_order_case_and_duplicates_do_not_matter() -> None:
    a = spec("Attrs>=20", "requests", "attrs >= 20")
    b = spec("requests", "attrs>=20")
    assert a == b
    assert a.requirements == ("attrs>=20", "requests")
    assert compute_key({"spec": spec_material(a)}) == compute_key({"spec": spec_material(b)})


def test_private_is_not_part_of_the_spec_identity() -> None:
    assert spec("attrs") == spec("attrs", private=True)


def test_different_requirements_differ() -> None:
    assert spec_material(spec("attrs>=20")) != spec_material(spec("attrs>=21"))
    assert spec_material(spec("attrs")) != spec_material(spec("attrs[tests]"))


def test_paths_resolve_against_rootdir_and_are_told_apart_from_requirements(
    tmp_path: Path, make_project: MakeProject
) -> None:
    project = make_project("proj")
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    result = spec("./proj", "pkg-1.0-py3-none-any.whl", "attrs", editable=["proj"], rootdir=tmp_path)
    assert result.local == tuple(sorted([project, wheel]))
    assert result.editable == (project,)
    assert result.requirements == ("attrs",)
    assert spec(project, rootdir=Path("/elsewhere")).local == (project,)


def test_find_links_urls_stay_as_given_and_paths_resolve(tmp_path: Path) -> None:
    given = ["https://x.example/wheels/", "file:///srv/wheels", "file:/srv/wheels", "wheels"]
    result = spec("x", rootdir=tmp_path, find_links=given)
    assert result.find_links == (*given[:3], str(tmp_path / "wheels"))


def test_requirement_that_does_not_parse_names_test_and_value() -> None:
    with pytest.raises(SpecError) as excinfo:
        spec("requests>=>2")
    message = str(excinfo.value)
    assert message.startswith("invalid requirement 'requests>=>2'")
    assert message.endswith("(in tests/test_x.py::test_y)")
    assert "PEP 508" in message


def test_non_string_requirement() -> None:
    with pytest.raises(SpecError, match=r"^requirement 42 is a int, not a string.* \(in tests/test_x\.py::test_y\)$"):
        spec(42)


def test_unknown_argument_lists_the_accepted_ones() -> None:
    with pytest.raises(SpecError, match=r"unknown isoenv argument\(s\) 'editables'.*accepted.*editable"):
        spec("attrs", editables=["."])


@pytest.mark.parametrize("argument", ["positional", "editable"])
def test_missing_path(tmp_path: Path, argument: str) -> None:
    kwargs = {"editable": ["./nope"]} if argument == "editable" else {}
    args = ("./nope",) if argument == "positional" else ()
    with pytest.raises(
        SpecError, match=r"path './nope' does not exist \(resolved to .*nope\).* \(in tests/test_x\.py::test_y\)$"
    ):
        spec(*args, rootdir=tmp_path, **kwargs)


def test_directory_that_is_not_a_project(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    with pytest.raises(SpecError, match=r"editable path 'docs' is not a Python project.*pyproject.toml"):
        spec(editable="docs", rootdir=tmp_path)


def test_missing_requirements_and_constraints_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"requirements file 'reqs.txt' does not exist"):
        spec(requirements_files=["reqs.txt"], rootdir=tmp_path)
    with pytest.raises(SpecError, match=r"constraints file 'c.txt' does not exist"):
        spec(constraints="c.txt", rootdir=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"python": 3.12}, r"python=3.12 is not an interpreter spec"),
        ({"private": "yes"}, r"private='yes' is not True or False"),
        ({"installer": 1}, r"installer=1 is not a name"),
        ({"editable": 5}, r"editable=5 is not a path or a list of paths"),
    ],
)
def test_wrongly_typed_arguments(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        spec(**kwargs)


def test_file_contents_are_in_the_key_material(tmp_path: Path) -> None:
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("attrs\n")
    constraints = tmp_path / "c.txt"
    constraints.write_text("attrs<25\n")
    first = spec_material(spec(requirements_files=[reqs], constraints=constraints))
    assert spec_material(spec(requirements_files=[reqs], constraints=constraints)) == first
    reqs.write_text("attrs\nrequests\n")
    second = spec_material(spec(requirements_files=[reqs], constraints=constraints))
    assert second != first
    constraints.write_text("attrs<24\n")
    assert spec_material(spec(requirements_files=[reqs], constraints=constraints)) != second


def test_local_project_hash_follows_sources_but_not_build_or_vcs_folders(make_project: MakeProject) -> None:
    project = make_project("proj")
    before = FileHashes().tree(project)
    for noise in (".git/HEAD", "build/lib/x.py", "proj.egg-info/PKG-INFO", "proj/__pycache__/m.cpython-311.pyc"):
        (project / noise).parent.mkdir(parents=True, exist_ok=True)
        (project / noise).write_text("noise")
    assert FileHashes().tree(project) == before
    (project / "proj" / "__init__.py").write_text("CHANGED = True\n")
    assert FileHashes().tree(project) != before


def test_editable_hash_follows_metadata_files_only(make_project: MakeProject) -> None:
    project = make_project("proj")
    before = editable_material(project, FileHashes())
    (project / "proj" / "__init__.py").write_text("CHANGED = True\n")
    assert editable_material(project, FileHashes()) == before, "source edits are live in an editable install"
    (project / "setup.cfg").write_text("[metadata]\n")
    assert editable_material(project, FileHashes()) != before


def test_describe() -> None:
    assert spec().describe() == "(interpreter only)"
    assert spec("b", "a").describe() == "a, b"


def test_describe_names_what_people_recognise(tmp_path: Path, make_project: MakeProject) -> None:
    """Projects by their metadata's name and version, wheels and sdists as name==version, files from the rootdir."""
    project = make_project("greeter", "2.5")
    folder = tmp_path / "odd_folder_name"
    folder.mkdir()
    write_pyproject(folder, '[project]\nname = "dyn"\ndynamic = ["version"]\n')
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / "Foo_Bar-1.2.3-py3-none-any.whl"
    wheel.write_bytes(b"")
    sdist = wheels / "baz-0.9.tar.gz"
    sdist.write_bytes(b"")
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "dev.txt").write_text("alpha\n")
    (tmp_path / "requirements.txt").write_text("alpha\n")
    outside = tmp_path.parent / f"{tmp_path.name}-constraints.txt"
    outside.write_text("alpha<2\n")
    described = spec(
        "./greeter[cli]",
        "./odd_folder_name",
        "./legacy",
        str(wheel),
        str(sdist),
        editable=["./greeter"],
        requirements_files=["requirements/dev.txt", "requirements.txt"],
        constraints=str(outside),
        rootdir=tmp_path,
    ).describe()
    # Extras belong to the project's path: its editable install names them too.
    assert described == (
        f"{_local_order(tmp_path, project)}, -e greeter[cli] 2.5, "
        f"-r requirements/dev.txt, -r requirements.txt, -c {outside}"
    )


def _local_order(tmp_path: Path, project: Path) -> str:
    """The local sources in the spec's order (sorted by path), as describe() names them."""
    labels = {
        project: "greeter[cli] 2.5",
        tmp_path / "odd_folder_name": "dyn",
        tmp_path / "legacy": "legacy",
        tmp_path / "wheels" / "Foo_Bar-1.2.3-py3-none-any.whl": "foo-bar==1.2.3",
        tmp_path / "wheels" / "baz-0.9.tar.gz": "baz==0.9",
    }
    return ", ".join(labels[path] for path in sorted(labels))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (">=2", ">=2"),
        (">=2.0", ">=2"),
        (">=2.0.0", ">=2"),
        ("<3.0", "<3"),
        ("==2.0", "==2"),
        ("!=1.10.0", "!=1.10"),
        (">1.0.0rc1", ">1rc1"),
        ("<=1!2.0.post1.dev3", "<=1!2.post1.dev3"),
        ("~=2.0", "~=2.0"),  # ~=2.0 allows 2.x, ~=2.0.0 only 2.0.x: not equal
        ("===2.0", "===2.0"),
        ("==2.0.*", "==2.0.*"),  # 2.0.* is not 2.*
        ("==2.0+local.1", "==2.0+local.1"),
    ],
)
def test_equal_specifiers_normalise_alike(given: str, expected: str) -> None:
    [specifier] = Requirement(f"pkg{given}").specifier
    assert normalize_specifier(specifier) == expected


def test_specifiers_equal_under_pep_440_give_one_key_but_keep_their_spelling() -> None:
    a, b, c = spec("alpha>=2"), spec("alpha>=2.0"), spec("alpha>=2.0.0,>=2")
    assert spec_material(a) == spec_material(b) == spec_material(c)
    assert spec_material(spec("alpha~=2.0")) != spec_material(spec("alpha~=2.0.0"))
    assert b.describe() == "alpha>=2.0"


@pytest.mark.parametrize("kwargs", [{"python": ""}, {"python": " "}, {"installer": ""}])
def test_empty_python_or_installer_is_refused(kwargs: dict[str, Any]) -> None:
    [(name, value)] = kwargs.items()
    with pytest.raises(SpecError, match=rf"{name}=.* is not a.* leave {name} out.* \(in tests/test_x\.py::test_y\)$"):
        EnvSpec.from_arguments((), rootdir=Path("/"), where="tests/test_x.py::test_y", **{name: value})


def test_a_malformed_python_is_refused_before_any_interpreter_is_looked_for() -> None:
    with pytest.raises(SpecError, match=r"python='3\.1O' is malformed.* \(in tests/test_x\.py::test_y\)$"):
        EnvSpec.from_arguments((), rootdir=Path("/"), where="tests/test_x.py::test_y", python="3.1O")


def test_missing_included_requirements_file_is_refused_naming_the_test(tmp_path: Path) -> None:
    (tmp_path / "reqs.txt").write_text("-r gone.txt\n")
    with pytest.raises(SpecError, match=r"reqs.txt includes '-r gone.txt', which does not exist"):
        spec(requirements_files="reqs.txt", rootdir=tmp_path)


@pytest.mark.parametrize(
    ("given", "override", "expected"),
    [
        ("gamma[fast]", "gamma==1.0", "gamma[fast]==1.0"),
        ("gamma[fast]>=2; python_version >= '3.8'", "gamma==1.0", 'gamma[fast]==1.0; python_version >= "3.8"'),
        (
            "gamma[fast]",
            "gamma @ file:///w/gamma-1.0-py3-none-any.whl",
            "gamma[fast] @ file:///w/gamma-1.0-py3-none-any.whl",
        ),
        ("gamma @ file:///w/gamma-1.0-py3-none-any.whl", "gamma<3", "gamma<3"),
        # The override's extras add to the requirement's; its marker, when it has one, wins.
        (
            "gamma[fast]; os_name == 'nt'",
            "gamma[Slow]==1.0; os_name == 'posix'",
            'gamma[fast,slow]==1.0; os_name == "posix"',
        ),
    ],
)
def test_with_requirements_keep_the_extras_and_marker_of_what_they_replace(
    given: str, override: str, expected: str
) -> None:
    base = spec(given, "alpha")
    result = base.with_requirements([normalize_requirement(Requirement(override))])
    assert result.requirements == tuple(sorted(("alpha", expected)))


def test_with_requirements_replace_each_requirement_of_the_name(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname = 'p'\nversion = '1'\n\n[dependency-groups]\ntest = ['gamma[cli]>=2', 'pytest']\n"
    )
    base = spec("gamma[fast]; python_version >= '3.8'", groups=["test"], rootdir=tmp_path)
    result = base.with_requirements(["gamma==1.0", "delta"])
    assert result.requirements == ("delta", "gamma[cli]==1.0", 'gamma[fast]==1.0; python_version >= "3.8"')
    assert result.groups == (("test", ("pytest",)),)
