"""Directives that render the plugin's own definitions, so the docs cannot drift from the code.

- ``isoenv-options``: every flag and ini key, from :data:`pytest_isoenv.plugin.options.OPTIONS`.
- ``isoenv-marker``: the ``isoenv`` marker's signature, as the plugin registers it.
- ``isoenv-keywords``: the keyword arguments of the marker and ``get()``, from
  :class:`pytest_isoenv.spec.arguments.EnvOptions`.
- ``isoenv-fixtures``: the plugin's fixtures with their scope and docstring.

They emit reStructuredText, so use them in ``.rst`` pages.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.ext import intersphinx
from sphinx.util.docutils import SphinxDirective

from pytest_isoenv.plugin import fixtures as plugin
from pytest_isoenv.plugin.options import OPTIONS, Option
from pytest_isoenv.spec.arguments import EnvOptions, keywords


def _default(option: Option) -> str:
    if option.kind == "command":
        return "—"
    if option.kind == "bool":
        return "on" if option.ini_default else "off"
    if option.default in (None, (), ""):
        return "—"
    return f"``{option.default}``"


def _indent(text: str, prefix: str = "   ") -> list[str]:
    return [prefix + line if line else "" for line in text.splitlines()]


class _RstDirective(SphinxDirective):
    def render(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), self.content_offset, container)
        return list(container.children)


class OptionsTable(_RstDirective):
    """One table of every option: flag, ini key, default and help, as ``pytest --help`` shows them."""

    def run(self) -> list[nodes.Node]:
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 30 22 10 38",
            "",
            "   * - Command-line flag",
            "     - ini key",
            "     - Default",
            "     - What it does",
        ]
        for option in OPTIONS:
            # One argument: pytest picks its rootdir before it knows the plugin's options, so a value given
            # as a second argument counts as a test path there.
            flag = f"``{option.flag}={option.metavar}``" if option.metavar else f"``{option.flag}``"
            ini = f"``{option.ini}``" if option.has_ini else "— (flag only)"
            lines += [f"   * - {flag}", f"     - {ini}", f"     - {_default(option)}", f"     - {option.help}"]
        return self.render(lines)


class Marker(_RstDirective):
    """The marker's signature and summary, from the line the plugin registers."""

    def run(self) -> list[nodes.Node]:
        signature, _, summary = plugin.MARKER.partition(": ")
        return self.render([f".. describe:: @pytest.mark.{signature}", "", *_indent(summary[0].upper() + summary[1:])])


class Keywords(_RstDirective):
    """The marker's and ``get()``'s keyword arguments, each with its default and what it does, from their definition."""

    def run(self) -> list[nodes.Node]:
        lines = [f".. py:class:: {EnvOptions.__name__}", f"   :module: {EnvOptions.__module__}", ""]
        lines += [*_indent(inspect.getdoc(EnvOptions) or ""), ""]
        for name, keyword in keywords().items():
            lines += [f"   ``{name}`` (default ``{keyword.default!r}``)", *_indent(keyword.doc, "      ")]
        return self.render(lines)


class Fixtures(_RstDirective):
    """Each fixture the plugin defines, with its scope and docstring, as ``pytest --fixtures`` lists them."""

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        for name, scope in plugin_fixtures():
            lines += [f".. describe:: {name}", "", f"   *Scope: {scope}.*", ""]
            lines += [*_indent(inspect.getdoc(vars(plugin)[name]) or ""), ""]
        return self.render(lines)


_FIXTURE_LINE = re.compile(r"^(?P<name>\w+)(?: \[(?P<scope>\w+) scope\])? -- ")


def plugin_fixtures() -> list[tuple[str, str]]:
    """The plugin's fixtures and their scopes, read from ``pytest --fixtures``: pytest's public word on them."""
    with tempfile.TemporaryDirectory() as empty:
        listing = subprocess.run(
            [sys.executable, "-m", "pytest", "--fixtures", "-v", "-p", "no:cacheprovider"],
            cwd=empty,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    found: list[tuple[str, str]] = []
    section = ""
    for line in listing.splitlines():
        if line.startswith("-") and " fixtures defined from " in line:
            section = line.split(" fixtures defined from ", 1)[1].strip(" -")
        elif section == plugin.__name__ and (match := _FIXTURE_LINE.match(line)):
            found.append((match["name"], match["scope"] or "function"))
    if not found:
        raise RuntimeError(f"pytest --fixtures listed no fixture of {plugin.__name__}:\n{listing}")
    return found


#: What these docs link to in Python's and pytest's documentation: (name, role, page#anchor).
FALLBACK_INVENTORIES: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "python": (
        "Python",
        [
            ("os.PathLike", "py:class", "library/os.html#$"),
            ("pathlib.Path", "py:class", "library/pathlib.html#$"),
            ("subprocess.CompletedProcess", "py:class", "library/subprocess.html#$"),
            ("subprocess.CalledProcessError", "py:exception", "library/subprocess.html#$"),
            ("subprocess.Popen", "py:class", "library/subprocess.html#$"),
            ("subprocess.TimeoutExpired", "py:exception", "library/subprocess.html#$"),
            ("socket.socket", "py:class", "library/socket.html#$"),
            ("collections.abc.Callable", "py:class", "library/collections.abc.html#$"),
            ("collections.abc.Iterable", "py:class", "library/collections.abc.html#$"),
            ("collections.abc.Iterator", "py:class", "library/collections.abc.html#$"),
            ("collections.abc.Mapping", "py:class", "library/collections.abc.html#$"),
            ("collections.abc.Sequence", "py:class", "library/collections.abc.html#$"),
            ("typing.Any", "py:data", "library/typing.html#$"),
            ("UserWarning", "py:exception", "library/exceptions.html#$"),
            ("ValueError", "py:exception", "library/exceptions.html#$"),
            ("Exception", "py:exception", "library/exceptions.html#$"),
        ],
    ),
    "pytest": (
        "pytest",
        [
            (f"pytest.{name}", "py:class", "reference/reference.html#$")
            for name in ("Config", "FixtureRequest", "Item", "Parser", "Pytester", "TempPathFactory", "MonkeyPatch")
        ],
    ),
}

#: Names that annotations give without their module (``from __future__ import annotations``).
SHORT_NAMES = {
    "Path": "pathlib.Path",
    "PathLike": "os.PathLike",
    "CompletedProcess": "subprocess.CompletedProcess",
    "Popen": "subprocess.Popen",
    "EnvSpec": "pytest_isoenv.EnvSpec",
    "EnvOptions": "pytest_isoenv.spec.arguments.EnvOptions",
    "PathArg": "pytest_isoenv.spec.arguments.PathArg",
    "IsolatedEnv": "pytest_isoenv.IsolatedEnv",
    "Installs": "pytest_isoenv.run.env.Installs",
    "Measures": "pytest_isoenv.run.env.Measures",
}


def write_fallback_inventories(app: Sphinx, config: Any) -> None:
    """Write the inventories intersphinx falls back on when Python's and pytest's sites cannot be reached."""
    folder = Path(app.confdir) / "_build" / "inventories"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (project, entries) in FALLBACK_INVENTORIES.items():
        header = (
            f"# Sphinx inventory version 2\n# Project: {project}\n# Version: \n"
            "# The remainder of this file is compressed using zlib.\n"
        )
        body = "".join(f"{target} {role} 1 {uri} -\n" for target, role, uri in entries)
        (folder / f"{name}.inv").write_bytes(header.encode() + zlib.compress(body.encode()))


def resolve_short_name(app: Sphinx, env: Any, node: Any, contnode: nodes.Element) -> nodes.Element | None:
    """Resolve a name given without its module: postponed annotations, or a docstring's short reference."""
    name = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not name:
        return None
    domain = env.get_domain("py")
    documented = [
        f"{module}.{name}" for module in ("pytest_isoenv", "pytest_isoenv.spec.envspec", "pytest_isoenv.run.env")
    ]
    for target in (SHORT_NAMES.get(name), *documented):
        if target is None:
            continue
        node["reftarget"] = target
        if target.startswith("pytest_isoenv."):
            if target in domain.objects:
                resolved: nodes.Element | None = domain.resolve_xref(
                    env, node["refdoc"], app.builder, node["reftype"], target, node, contnode
                )
                return resolved
            continue
        return intersphinx.missing_reference(app, env, node, contnode)
    node["reftarget"] = name
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("isoenv-options", OptionsTable)
    app.add_directive("isoenv-marker", Marker)
    app.add_directive("isoenv-keywords", Keywords)
    app.add_directive("isoenv-fixtures", Fixtures)
    app.connect("config-inited", write_fallback_inventories)
    app.connect("missing-reference", resolve_short_name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
