"""Sphinx configuration of the pytest-isoenv documentation."""

from __future__ import annotations

import sys
from importlib.metadata import version as installed_version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "pytest-isoenv"
author = "The pytest-isoenv developers"
copyright = "the pytest-isoenv developers"
release = installed_version("pytest-isoenv")
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.intersphinx", "isoenv_docs"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
# "--isoenv-..." must stay two hyphens.
smartquotes = False

# Python's and pytest's inventories come from their sites; where those cannot be reached (a build without
# network), from the few entries these docs link to, written by isoenv_docs (a build stays warning-free).
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", (None, "_build/inventories/python.inv")),
    "pytest": ("https://docs.pytest.org/en/stable", (None, "_build/inventories/pytest.inv")),
}
intersphinx_timeout = 10

html_theme = "furo"
html_title = f"pytest-isoenv {release}"
