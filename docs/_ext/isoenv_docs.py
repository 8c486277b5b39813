"""Directives that render the plugin's own definitions, so the docs cannot drift from the code.

- ``isoenv-options``: every flag and ini key, from :data:`pytest_isoenv.options.OPTIONS`.
- ``isoenv-marker``: the ``isoenv`` marker's signature, as the plugin registers it.
- ``isoenv-fixtures``: the plugin's fixtures with their scope and docstring.

They emit reStructuredText, so use them in ``.rst`` pages.
"""

from __future__ import annotations

import inspect
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from pytest_isoenv import plugin
from pytest_isoenv.options import OPTIONS, Option


def _default(option: Option) -> str:
    if option.kind == "command":
        return "—"
    if option.kind == "bool":
        return "on" if option.default else "off"
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
            flag = f"``{option.flag}``" + (f" *{option.metavar}*" if option.metavar else "")
            ini = f"``{option.ini}``" if option.has_ini else "— (flag only)"
            lines += [f"   * - {flag}", f"     - {ini}", f"     - {_default(option)}", f"     - {option.help}"]
        return self.render(lines)


class Marker(_RstDirective):
    """The marker's signature and summary, from the line the plugin registers."""

    def run(self) -> list[nodes.Node]:
        signature, _, summary = plugin.MARKER.partition(": ")
        return self.render([f".. describe:: @pytest.mark.{signature}", "", *_indent(summary[0].upper() + summary[1:])])


class Fixtures(_RstDirective):
    """Each fixture the plugin defines, with its scope and docstring."""

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        for name, value in vars(plugin).items():
            definition: Any = getattr(value, "_fixture_function_marker", None)
            if definition is None:
                continue
            fixture = definition.name or name
            lines += [f".. describe:: {fixture}", "", f"   *Scope: {definition.scope}.*", ""]
            lines += [*_indent(inspect.getdoc(value) or ""), ""]
        return self.render(lines)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("isoenv-options", OptionsTable)
    app.add_directive("isoenv-marker", Marker)
    app.add_directive("isoenv-fixtures", Fixtures)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
