"""Discovery: specs to real interpreters, including pyenv versions that are not on PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import virtualenv
from helpers import MakeFactory

from pytest_isoenv.discovery import Discovery, parse_spec, spec_label, uv_python_roots
from pytest_isoenv.errors import InterpreterNotFound, SpecError
from pytest_isoenv.installers.api import oldest_seeded_python

Version = tuple[int, int]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fake layouts use POSIX links and shell scripts")


@pytest.fixture
def others(real_pythons: dict[Version, Path]) -> dict[Version, Path]:
    """Two real interpreters of other minor versions than pytest's own (the running one always matches first)."""
    chosen = {v: exe for v, exe in sorted(real_pythons.items()) if v != sys.version_info[:2]}
    if len(chosen) < 2:
        pytest.skip(f"needs two installed CPythons besides {sys.version_info[:2]}; found {sorted(real_pythons)}")
    return dict(list(chosen.items())[-2:])


def fake_pyenv(root: Path, versions: dict[str, Path]) -> Path:
    """A pyenv root: ``versions/<name>/bin/python3`` linking to real interpreters, and shims that record being run.

    The shims answer like pyenv's for a version that is not active: they fail.
    """
    for name, exe in versions.items():
        bin_dir = root / "versions" / name / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python3").symlink_to(exe)
    shims = root / "shims"
    shims.mkdir(parents=True)
    for name in ["python", "python3", *(f"python{v.rsplit('.', 1)[0]}" for v in versions)]:
        shim = shims / name
        shim.write_text(
            f'#!/bin/sh\necho {name} >> "{root}/shim-ran"\necho "pyenv: {name}: command not found" >&2\nexit 127\n'
        )
        shim.chmod(0o755)
    return root


def environ_for(tmp_path: Path, pyenv: Path, *path: Path) -> dict[str, str]:
    """Variables that make discovery see only *path*, the pyenv root *pyenv* and an empty uv folder."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {
        "PATH": os.pathsep.join(map(str, [*path, empty])),
        "PYENV_ROOT": str(pyenv),
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-pythons"),
        "HOME": str(tmp_path),
    }


def dotted(version: Version) -> str:
    return "{}.{}".format(*version)


def test_finds_pyenv_versions_that_are_not_on_path(tmp_path: Path, others: dict[Version, Path]) -> None:
    pyenv = fake_pyenv(tmp_path / "pyenv", {f"{dotted(v)}.0": exe for v, exe in others.items()})
    discovery = Discovery(tmp_path / "py-info", environ_for(tmp_path, pyenv))
    for version, exe in others.items():
        found = discovery.find(dotted(version))
        assert found.executable == exe
        assert found.version_info[:2] == version
        assert found.found_in == "pyenv"


@pytest.mark.parametrize(
    "form",
    [
        "{major}.{minor}",
        "py{major}{minor}",
        "cpython{major}.{minor}",
        "python{major}.{minor}",
        ">={major}.{minor},<{major}.{next}",
    ],
)
def test_spec_forms_find_the_same_interpreter(tmp_path: Path, others: dict[Version, Path], form: str) -> None:
    (major, minor), exe = next(iter(others.items()))
    pyenv = fake_pyenv(tmp_path / "pyenv", {f"{major}.{minor}.0": exe})
    discovery = Discovery(tmp_path / "py-info", environ_for(tmp_path, pyenv))
    assert discovery.find(form.format(major=major, minor=minor, next=minor + 1)).executable == exe


def test_a_path_is_used_as_given_and_resolved_for_the_key(tmp_path: Path, others: dict[Version, Path]) -> None:
    version, exe = next(iter(others.items()))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    link = bin_dir / f"python{dotted(version)}"
    link.symlink_to(exe)
    discovery = Discovery(tmp_path / "py-info", environ_for(tmp_path, tmp_path / "no-pyenv", bin_dir))

    by_path, by_version = discovery.find(str(link)), discovery.find(dotted(version))

    assert (by_path.found_in, by_version.found_in) == ("given path", "PATH")
    assert by_path.executable == by_version.executable == exe
    assert by_path.key_material() == by_version.key_material()


def test_finds_uv_managed_pythons(tmp_path: Path, others: dict[Version, Path]) -> None:
    version, exe = next(iter(others.items()))
    environ = environ_for(tmp_path, tmp_path / "no-pyenv")
    bin_dir = Path(environ["UV_PYTHON_INSTALL_DIR"]) / f"cpython-{dotted(version)}.0-linux-x86_64-gnu" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(exe)

    found = Discovery(tmp_path / "py-info", environ).find(dotted(version))

    assert (found.executable, found.found_in) == (exe, "uv")
    assert found.version_info[:2] == version


def test_finds_uv_managed_pythons_in_uvs_data_directory(tmp_path: Path, others: dict[Version, Path]) -> None:
    version, exe = next(iter(others.items()))
    environ = environ_for(tmp_path, tmp_path / "no-pyenv")
    del environ["UV_PYTHON_INSTALL_DIR"]
    environ["XDG_DATA_HOME"] = str(tmp_path / "data")
    bin_dir = tmp_path / "data" / "uv" / "python" / f"cpython-{dotted(version)}.0-linux-x86_64-gnu" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(exe)

    found = Discovery(tmp_path / "py-info", environ).find(dotted(version))

    assert (found.executable, found.found_in) == (exe, "uv")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"UV_PYTHON_INSTALL_DIR": "/opt/uv-pythons", "XDG_DATA_HOME": "/data", "HOME": "/home/me"},
            ["/opt/uv-pythons"],
        ),
        ({"UV_PYTHON_INSTALL_DIR": "~/pythons", "HOME": "/home/me"}, [os.path.expanduser("~/pythons")]),
        ({"XDG_DATA_HOME": "/data", "HOME": "/home/me"}, ["/data/uv/python"]),
        # A relative XDG_DATA_HOME is ignored, as the XDG specification and uv say.
        ({"XDG_DATA_HOME": "data", "HOME": "/home/me"}, ["/home/me/.local/share/uv/python"]),
        ({"HOME": "/home/me"}, ["/home/me/.local/share/uv/python"]),
        ({}, []),
    ],
)
def test_uv_managed_pythons_are_looked_for_where_uv_keeps_them(
    environ: dict[str, str], expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    assert uv_python_roots(environ) == [Path(path) for path in expected]
    monkeypatch.setattr(sys, "platform", "darwin")  # uv follows the XDG convention on macOS too
    assert uv_python_roots(environ) == [Path(path) for path in expected]


def test_uv_managed_pythons_on_windows_are_in_the_roaming_app_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    app_data = "C:\\Users\\me\\AppData\\Roaming"
    assert uv_python_roots({"APPDATA": app_data}) == [Path(app_data) / "uv" / "data" / "python"]
    assert uv_python_roots({"APPDATA": app_data, "UV_PYTHON_INSTALL_DIR": "D:\\py"}) == [Path("D:\\py")]


def test_a_spec_that_matches_nothing_names_uvs_folder(tmp_path: Path) -> None:
    environ = environ_for(tmp_path, tmp_path / "no-pyenv")
    del environ["UV_PYTHON_INSTALL_DIR"]
    with pytest.raises(InterpreterNotFound) as info:
        Discovery(tmp_path / "py-info", environ).find("3.99")
    assert f"uv-managed Pythons ({tmp_path / '.local' / 'share' / 'uv' / 'python'})" in str(info.value)


def test_pyenv_shims_are_never_run(tmp_path: Path, others: dict[Version, Path]) -> None:
    pyenv = fake_pyenv(tmp_path / "pyenv", {f"{dotted(v)}.0": exe for v, exe in others.items()})
    discovery = Discovery(tmp_path / "py-info", environ_for(tmp_path, pyenv, pyenv / "shims"))
    version = next(iter(others))

    assert discovery.find(dotted(version)).executable == others[version]
    with pytest.raises(InterpreterNotFound):
        discovery.find("3.99")
    assert {i.executable for i in discovery.available()} >= set(others.values())
    assert not (pyenv / "shim-ran").exists()


def test_a_spec_that_matches_nothing_names_where_it_looked(tmp_path: Path, others: dict[Version, Path]) -> None:
    version, exe = next(iter(others.items()))
    pyenv = fake_pyenv(tmp_path / "pyenv", {f"{dotted(version)}.0": exe})
    discovery = Discovery(tmp_path / "py-info", environ_for(tmp_path, pyenv))

    for spec in ("3.99", "pypy3.10", f"{dotted(version)}t"):
        with pytest.raises(InterpreterNotFound) as info:
            discovery.find(spec, where="tests/test_x.py::test_y")
        message = str(info.value)
        assert message.startswith(f"no Python interpreter matches {spec!r}")
        assert message.endswith("(in tests/test_x.py::test_y)")
        assert "PATH" in message
        assert str(pyenv / "versions") in message
        assert str(tmp_path / "uv-pythons") in message
    with pytest.raises(InterpreterNotFound, match="looked in: /nowhere/python3"):
        discovery.find("/nowhere/python3")


def test_a_path_that_is_not_a_python_is_a_spec_error(tmp_path: Path) -> None:
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(SpecError, match=r"^python='.*python3' cannot be used.* \(in tests/t\.py::t\)"):
        Discovery(tmp_path / "py-info").find(str(fake), where="tests/t.py::t")


def test_available_lists_each_interpreter_once_with_where_it_was_found(
    tmp_path: Path, others: dict[Version, Path]
) -> None:
    (on_path, path_exe), (_, pyenv_exe) = others.items()
    pyenv = fake_pyenv(tmp_path / "pyenv", {f"{dotted(v)}.0": exe for v, exe in others.items()})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / f"python{dotted(on_path)}").symlink_to(path_exe)

    found = Discovery(tmp_path / "py-info", environ_for(tmp_path, pyenv, bin_dir)).available()

    assert len({i.executable for i in found}) == len(found)
    where = {i.executable: i.found_in for i in found}
    assert where[path_exe] == "PATH"
    assert where[pyenv_exe] == "pyenv"
    assert where[Path(os.path.realpath(sys.executable))] == "running pytest"


def test_a_python_virtualenv_cannot_seed_is_refused_before_anything_is_built(
    tmp_path: Path,
    real_pythons: dict[Version, Path],
    make_factory: MakeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    oldest = oldest_seeded_python()
    assert oldest is not None
    old = [v for v in sorted(real_pythons) if v < oldest]
    if not old:
        pytest.skip(f"no installed CPython older than {dotted(oldest)}, the oldest virtualenv can seed")
    version = old[-1]
    pyenv = fake_pyenv(tmp_path / "pyenv", {f"{dotted(version)}.0": real_pythons[version]})
    for name, value in environ_for(tmp_path, pyenv).items():
        monkeypatch.setenv(name, value)
    factory = make_factory(cache_dir=tmp_path / "cache", current_test=lambda: "tests/test_old.py::test_it")

    with pytest.raises(SpecError) as info:
        factory.get(python=dotted(version))

    message = str(info.value)
    assert message.startswith(f"python='{dotted(version)}' is CPython {dotted(version)}.")
    assert message.endswith("(in tests/test_old.py::test_it)")
    assert f"virtualenv {virtualenv.__version__} creates envs for Python >= {dotted(oldest)} only" in message
    assert f"older virtualenv release that still supports Python {dotted(version)}" in message
    assert list((tmp_path / "cache" / "envs").iterdir()) == []


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ("3.12", "py3.12"),
        ("py312", "py3.12"),
        ("cpython3.12", "py3.12"),
        ("python3.12", "py3.12"),
        ("3.12.1", "py3.12.1"),
        ("pypy3.10", "pypy3.10"),
        ("3.13t", "py3.13t"),
        (">=3.11", "py>=3.11"),
        (">= 3.10, <3.13", "py>=3.10,<3.13"),
        ("/opt/python/bin/python3", "/opt/python/bin/python3"),
    ],
)
def test_labels_come_from_the_spec(spec: str, label: str) -> None:
    assert spec_label(spec) == label


def test_a_spec_that_cannot_name_an_interpreter_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"python='>=banana' is not an interpreter spec"):
        Discovery(tmp_path / "py-info").find(">=banana")


@pytest.mark.parametrize("spec", ["3.1O", "3.12O", "3.x", "3.1.2.3", "3,12"])
def test_a_spec_with_no_version_and_no_path_is_malformed(tmp_path: Path, spec: str) -> None:
    # python-discovery takes such text for a program's name: "3.1O" found pyenv's 2.7 and said it was too old.
    with pytest.raises(SpecError) as info:
        Discovery(tmp_path / "py-info").find(spec, where="tests/test_x.py::test_y")
    assert str(info.value).startswith(f"python={spec!r} is malformed: it is neither a version nor a path")
    assert 'Use a version such as "3.12"' in str(info.value)
    assert str(info.value).endswith("(in tests/test_x.py::test_y)")


@pytest.mark.parametrize("spec", ["python", "python3", "py", "cpython", "pypy", "3", "python3.12", "3.12-64", "~=3.11"])
def test_specs_without_a_full_version_are_not_malformed(spec: str) -> None:
    assert parse_spec(spec).path is None


def pyenv_python2() -> Path | None:
    """A Python 2 that pyenv installed, as old projects' machines still have."""
    root = Path(os.path.expanduser(os.environ.get("PYENV_ROOT") or "~/.pyenv"))
    return next((exe for exe in sorted(root.glob("versions/2.*/bin/python")) if exe.is_file()), None)


def test_a_pyenv_python_too_old_to_query_is_reported_as_too_old(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    python2 = pyenv_python2()
    if python2 is None:
        pytest.skip("no Python 2 installed by pyenv")
    version = python2.parent.parent.name
    for run in ("first query", "from discovery's cache"):
        discovery = Discovery(tmp_path / "py-info")
        with pytest.raises(SpecError) as info:
            discovery.find(version, where="tests/test_x.py::test_y")
        message = str(info.value)
        assert message.startswith(f"python={version!r} finds only {python2}, Python {version}, which is too old"), run
        assert message.endswith("(in tests/test_x.py::test_y)"), run
        assert discovery.too_old == {python2: version}, run
        assert capfd.readouterr().err == "", f"{run}: nothing of discovery's own logging reaches stderr"


def test_listing_pythons_names_the_too_old_ones_and_writes_nothing_to_stderr(pytester: pytest.Pytester) -> None:
    python2 = pyenv_python2()
    if python2 is None:
        pytest.skip("no Python 2 installed by pyenv")
    result = pytester.runpytest_subprocess(
        "--isoenv-list-pythons", "-v", f"--isoenv-cache-dir={pytester.path / 'cache'}"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"  too old: {python2} is Python 2.*, which no env can be made from *"])
    assert result.stderr.str() == ""
