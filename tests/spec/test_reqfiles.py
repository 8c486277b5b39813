"""Requirements files: their lines, the files they include, and copies with absolute paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import aged

from pytest_isoenv.errors import SpecError
from pytest_isoenv.spec import reqfiles


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("-r base.txt", ("include", "base.txt", "")),
        ("-rbase.txt", ("include", "base.txt", "")),
        ("--requirement=base.txt", ("include", "base.txt", "")),
        ("--requirement base.txt", ("include", "base.txt", "")),
        ("-c c.txt", ("constraint", "c.txt", "")),
        ("--constraint=c.txt", ("constraint", "c.txt", "")),
        ("-e .", ("editable", ".", "")),
        ("-e ./proj[dev]", ("editable", "./proj[dev]", "")),
        ("-f ./wheels", ("find_links", "./wheels", "")),
        ("./pkg[cli] ; python_version > '3'", ("path", "./pkg", "[cli] ; python_version > '3'")),
        ("alpha-1.0-py3-none-any.whl", ("path", "alpha-1.0-py3-none-any.whl", "")),
        ("pkg @ file:///x/pkg", ("url", "file:///x/pkg", "pkg @ file:///x/pkg")),
        ("requests>=2", ("other", "requests>=2", "")),
        ("--index-url https://x.example", ("other", "--index-url https://x.example", "")),
    ],
)
def test_requirements_lines(line: str, parsed: tuple[str, str, str]) -> None:
    assert reqfiles.parse_line(line) == parsed


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("https://x.example/wheels/", True),
        ("file:///srv/wheels", True),
        ("file:/srv/wheels", True),
        ("git+ssh://git@x.example/pkg", True),
        ("C:\\wheels", False),
        ("C:/wheels", False),
        ("./wheels", False),
        ("/srv/wheels", False),
        ("wheels", False),
    ],
)
def test_urls_are_told_apart_from_paths(text: str, url: bool) -> None:
    assert reqfiles.is_url(text) is url


def test_requirements_files_are_walked_recursively_and_cycles_end(tmp_path: Path) -> None:
    top = aged(tmp_path / "top.txt", "# comment\nalpha \\\n  >=1\n-r sub/a.txt\n")
    aged(tmp_path / "sub" / "a.txt", "-c ../top.txt\n--requirement=b.txt\n")
    aged(tmp_path / "sub" / "b.txt", "beta\n")

    lines = [(f.name, kind, value) for f, kind, value, _ in reqfiles.walk_requirements(top)]

    assert lines == [
        ("top.txt", "other", "alpha   >=1"),
        ("top.txt", "include", str(tmp_path / "sub" / "a.txt")),
        ("a.txt", "constraint", str(tmp_path / "top.txt")),
        ("a.txt", "include", str(tmp_path / "sub" / "b.txt")),
        ("b.txt", "other", "beta"),
    ]


def test_missing_included_file_names_the_including_file(tmp_path: Path) -> None:
    top = aged(tmp_path / "top.txt", "-r missing.txt\n")
    with pytest.raises(SpecError, match=r"top.txt includes '-r missing.txt', which does not exist"):
        list(reqfiles.walk_requirements(top))


def test_absolute_copies_resolve_paths_against_each_files_folder(tmp_path: Path) -> None:
    top = aged(tmp_path / "reqs" / "top.txt", "-e ./edit[dev]\n-r nested/more.txt\nalpha>=1\n")
    aged(tmp_path / "reqs" / "nested" / "more.txt", "../lib ; python_version > '3'\n-f ../wheels\n")
    out = tmp_path / "out"
    out.mkdir()
    assert reqfiles.needs_rewrite(top)

    copies = reqfiles.absolute_copies([top], out)

    reqs = tmp_path / "reqs"
    assert copies[top].read_text().splitlines() == [
        f"-e {reqs / 'edit'}[dev]",
        f"-r {copies[reqs / 'nested' / 'more.txt']}",
        "alpha>=1",
    ]
    assert copies[reqs / "nested" / "more.txt"].read_text().splitlines() == [
        f"{reqs / 'lib'} ; python_version > '3'",
        f"-f {reqs / 'wheels'}",
    ]
    assert not reqfiles.needs_rewrite(aged(tmp_path / "plain.txt", "alpha\n-e git+https://x.example/r.git#egg=r\n"))
