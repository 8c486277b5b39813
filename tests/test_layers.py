"""The package imports no other project's private modules or names, and passes no private keyword (read with ast).

import-linter checks which of our layers may import which (``lint-imports``); this checks what they
take from others: ``_pytest``, ``python_discovery._discovery`` or ``pytest.skip.Exception(...,
_use_item_location=True)`` may change without notice in any release of their project.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import pytest_isoenv

PACKAGE = Path(pytest_isoenv.__file__).parent

#: The exceptions, by module: CPython's builtin modules behind ``signal`` and ``socket``, which the warm
#: server imports instead of those so that a fresh interpreter loads next to nothing before the preloads
#: (see its docstring).
ALLOWED = {"run/warm_server.py": {"import _signal", "import _socket"}}


def _private(name: str) -> bool:
    """A name that starts with ``_``; a dunder (``__future__``, ``__file__=``) is not private."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list[str]:
    """What *source* uses of another project's private names: imports, and call keywords starting with ``_``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] != "pytest_isoenv" and any(map(_private, alias.name.split(".")))
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module.split(".")[0] == "pytest_isoenv":
                continue  # our own private names are ours to use
            names = [alias.name for alias in node.names]
            if any(map(_private, node.module.split("."))) or any(map(_private, names)):
                found.append(f"line {node.lineno}: from {node.module} import {', '.join(names)}")
        elif isinstance(node, ast.Call):
            found += [
                f"line {node.lineno}: a call with {keyword.arg}="
                for keyword in node.keywords
                if keyword.arg is not None and _private(keyword.arg)
            ]
    return found


def test_the_check_finds_private_imports_and_keywords_and_spares_ours() -> None:
    source = textwrap.dedent(
        """
        from __future__ import annotations
        import _pytest.python
        import os, python_discovery._discovery
        from _pytest.fixtures import FixtureDef
        from python_discovery._discovery import _uv_python_roots
        from packaging import _parser
        from pytest_isoenv.spec.envspec import _parse_requirement
        from pytest_isoenv import _private_module
        from ._helpers import _helper
        from . import _sibling
        import pytest_isoenv._internal

        raise pytest.skip.Exception(reason, _use_item_location=True)
        namespace = _new_main(__file__="<stdin>", __cached__=None)
        run(**options)
        """
    )
    assert private_uses(source) == [
        "line 3: import _pytest.python",
        "line 4: import python_discovery._discovery",
        "line 5: from _pytest.fixtures import FixtureDef",
        "line 6: from python_discovery._discovery import _uv_python_roots",
        "line 7: from packaging import _parser",
        "line 14: a call with _use_item_location=",
    ]


@pytest.mark.parametrize(
    "module", sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")), ids=str
)
def test_no_module_uses_another_projects_private_names(module: str) -> None:
    found = private_uses((PACKAGE / module).read_text(encoding="utf-8"))
    unexpected = [use for use in found if use.split(": ", 1)[1] not in ALLOWED.get(module, set())]
    assert unexpected == [], f"{module} uses private names of another project: use its public API"
