"""TOML files, read with the standard library's ``tomllib`` or, before Python 3.11, ``tomli`` (pytest needs it there),
and written back as plain inline values (:func:`toml_value`, :func:`toml_document`).

A leaf: every layer may use it, and it uses none of them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
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


def read_toml_if_valid(path: Path) -> dict[str, Any]:
    """The TOML file *path*, parsed, or an empty table when it is missing or broken (a build reading it says why)."""
    try:
        return read_toml(path)
    except (OSError, ValueError):
        return {}


def as_table(value: object) -> dict[str, Any]:
    """*value* if it is a table, else an empty one: for reading keys a file may lack, or give another type."""
    return value if isinstance(value, dict) else {}


def toml_value(value: Any) -> str:
    """*value* (as :func:`read_toml` gives values) as an inline TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return str(value.isoformat())  # dates and times


def toml_document(data: Mapping[str, Any]) -> str:
    """A TOML document that reads back as *data*: one line per top-level key, tables inline."""
    return "".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}\n" for k, v in data.items())
