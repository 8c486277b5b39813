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

#: The exceptions, by module (none: each one used to be a dependency on another project's internals).
ALLOWED: dict[str, set[str]] = {}
#: Names that start with ``_`` and are public all the same (documented as such).
PUBLIC = {"os._exit"}


def _private(name: str) -> bool:
    """A name that starts with ``_``; a dunder (``__future__``, ``__file__=``) is not private."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _of_another_module(node: ast.expr, modules: set[str]) -> bool:
    """Whether *node* is a module of another project: a name it was imported as, or ``sys.modules[...]``."""
    if isinstance(node, ast.Subscript):
        return ast.unparse(node.value) == "sys.modules"
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id in modules


def private_uses(source: str) -> list[str]:
    """What *source* uses of another project's private names: imports, their attributes, call keywords."""
    found: list[str] = []
    tree = ast.parse(source)
    modules = {
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.split(".")[0] != "pytest_isoenv"
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and _of_another_module(node.value, modules):
            if ast.unparse(node) not in PUBLIC:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "sys.modules":
            key = node.slice.value if isinstance(node.slice, ast.Constant) else None
            if isinstance(key, str) and any(map(_private, key.split("."))):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
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
    return sorted(found, key=lambda use: int(use.split(":")[0].split()[1]))


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
        import runpy, sys
        runpy._run_module_as_main(name)
        sys.modules["atexit"]._run_exitfuncs()
        os.path._joinrealpath(a, b)
        os._exit(0)
        loader = sys.modules["_frozen_importlib_external"].SourceFileLoader
        self._private(), _own._helper()
        """
    )
    assert private_uses(source) == [
        "line 3: import _pytest.python",
        "line 4: import python_discovery._discovery",
        "line 5: from _pytest.fixtures import FixtureDef",
        "line 6: from python_discovery._discovery import _uv_python_roots",
        "line 7: from packaging import _parser",
        "line 14: a call with _use_item_location=",
        "line 18: runpy._run_module_as_main",
        "line 19: sys.modules['atexit']._run_exitfuncs",
        "line 20: os.path._joinrealpath",
        "line 22: sys.modules['_frozen_importlib_external']",
    ]


@pytest.mark.parametrize(
    "module", sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")), ids=str
)
def test_no_module_uses_another_projects_private_names(module: str) -> None:
    found = private_uses((PACKAGE / module).read_text(encoding="utf-8"))
    unexpected = [use for use in found if use.split(": ", 1)[1] not in ALLOWED.get(module, set())]
    assert unexpected == [], f"{module} uses private names of another project: use its public API"
