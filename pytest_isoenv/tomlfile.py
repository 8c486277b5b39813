"""TOML files, read with the standard library's ``tomllib`` or, before Python 3.11, ``tomli`` (pytest needs it there).

A leaf: every layer may use it, and it uses none of them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file *path*, parsed.

    Raises :class:`OSError` when the file cannot be read, and :class:`ValueError` when it is not TOML
    (``tomllib.TOMLDecodeError``) or not UTF-8 (:class:`UnicodeDecodeError`).
    """
    with path.open("rb") as stream:
        data: dict[str, Any] = tomllib.load(stream)
    return data
