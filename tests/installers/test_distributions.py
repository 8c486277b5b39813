"""What an env holds, read from its package folders."""

from __future__ import annotations

from pathlib import Path

from helpers import aged
from packaging.utils import canonicalize_name

from pytest_isoenv.installers.distributions import canonical_name, inventory


def dist_info(site: Path, name: str, version: str) -> Path:
    folder = site / f"{name}-{version}.dist-info"
    aged(folder / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return folder


def test_each_name_once_at_the_version_imports_use_and_every_metadata_folder(tmp_path: Path) -> None:
    first = dist_info(tmp_path / "purelib", "Foo_Bar", "1.0")
    second = dist_info(tmp_path / "platlib", "foo.bar", "2.0")
    other = dist_info(tmp_path / "platlib", "Zope.Interface", "7.0")
    aged(tmp_path / "purelib" / "nameless-0.dist-info" / "METADATA", "Metadata-Version: 2.1\n")
    packages, folders = inventory([str(tmp_path / "purelib"), str(tmp_path / "platlib"), str(tmp_path / "purelib")])
    assert packages == {"foo-bar": "1.0", "zope-interface": "7.0"}
    assert folders == sorted(map(str, [first, second, other]))


def test_canonical_names_are_packagings() -> None:
    for name in ("Foo_Bar", "zope.interface", "A-_.b", "pip"):
        assert canonical_name(name) == canonicalize_name(name)
