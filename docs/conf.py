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

extensions = ["myst_parser", "sphinx.ext.autodoc", "isoenv_docs"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
# "--isoenv-..." must stay two hyphens.
smartquotes = False

html_theme = "furo"
html_title = f"pytest-isoenv {release}"
