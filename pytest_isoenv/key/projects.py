"""What an editable install of a local project reads, and so what of it counts for its env.

A project installed non-editable counts by every file it holds
(:func:`~pytest_isoenv.key.files.project_files`). A project installed editable counts only by what a
new install could change (:func:`editable_inputs`): every file at its top that a build
backend may run or read (``*.py``, ``*.cfg``, ``*.toml``, ``*.txt``, ``*.in``), the files
its build backend's dynamic metadata reads (setuptools, hatchling, flit-core,
pdm-backend), ``[tool.uv] cache-keys``, and the sources of compiled extensions.
This module finds those files; :mod:`pytest_isoenv.key.material` hashes them.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_isoenv.key.files import project_files
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.spec.arguments import PROJECT_FILES
from pytest_isoenv.tomlfile import as_table, read_toml_if_valid

# Files that decide a compiled extension, and the build configurations that mean a project has one.
_EXTENSION_SUFFIXES = (".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".pyx", ".pxd", ".pxi", ".rs", ".f90", ".cu")
_BUILD_CONFIGS = ("CMakeLists.txt", "meson.build", "meson.options", "meson_options.txt", "Cargo.toml", "Cargo.lock")
_EXTENSION_BACKENDS = ("scikit_build_core", "mesonpy", "maturin", "setuptools_rust", "enscons", "py_build_cmake")
# The files at a project's top that a build backend may run or read: setup.py, hatch_build.py and other build
# hooks, setup.cfg and pyproject.toml, MANIFEST.in, requirements.txt. Matched by pattern, not by a list of the
# names known today, so the hook of a backend nobody listed counts too.
_TOP_LEVEL_INPUTS = (".py", ".cfg", ".toml", ".txt", ".in")


def editable_inputs(project: Path, hashes: FileHashes, environ: Mapping[str, str]) -> tuple[list[Path], dict[str, Any]]:
    """The files (and environment variables, by value) an editable install of *project* depends on."""
    # The project files count found or not: one appearing or going away changes what a build does.
    files = [project / name for name in PROJECT_FILES] + _top_level_inputs(project)
    variables: dict[str, Any] = {}
    pyproject = read_toml_if_valid(project / "pyproject.toml")
    tool = pyproject.get("tool", {})
    roots = [project, project / "src"]
    for mapped in as_table(as_table(tool.get("setuptools")).get("package-dir")).values():
        roots.append(project / str(mapped))
    # setuptools: [tool.setuptools.dynamic] version/readme/dependencies/optional-dependencies = {file|attr = ...}
    for name, value in as_table(as_table(tool.get("setuptools")).get("dynamic")).items():
        for directive in as_table(value).values() if name == "optional-dependencies" else [value]:
            files += _directive_files(project, roots, as_table(directive).get("file"), as_table(directive).get("attr"))
    files += _setup_cfg_files(project, roots)
    hatch = as_table(tool.get("hatch"))
    files += _globbed(project, [as_table(hatch.get("version")).get("path")])
    requirements_txt = as_table(as_table(as_table(hatch.get("metadata")).get("hooks")).get("requirements_txt"))
    files += _globbed(project, _list(requirements_txt.get("files")))
    for extra in as_table(requirements_txt.get("optional-dependencies")).values():
        files += _globbed(project, _list(extra))
    pdm_version = as_table(as_table(tool.get("pdm")).get("version"))
    if pdm_version.get("source") == "file":
        files += _globbed(project, [pdm_version.get("path")])
    backend = str(as_table(pyproject.get("build-system")).get("build-backend", ""))
    if backend.startswith("flit") and _list(as_table(pyproject.get("project")).get("dynamic")):
        module = as_table(as_table(tool.get("flit")).get("module")).get("name") or as_table(
            pyproject.get("project")
        ).get("name")
        if isinstance(module, str):
            files += _module_files(roots, re.sub(r"[-.]+", "_", module))
    # uv's own way to name what a project's build depends on: file globs, folders and environment variables.
    for entry in _list(as_table(tool.get("uv")).get("cache-keys")):
        entry = {"file": entry} if isinstance(entry, str) else as_table(entry)
        files += _globbed(project, [entry.get("file")])
        if isinstance(entry.get("dir"), str):
            variables[f"dir:{entry['dir']}"] = hashes.tree(project / entry["dir"])
        if isinstance(entry.get("env"), str):
            variables[entry["env"]] = environ.get(entry["env"])
    if _has_extensions(project, backend, pyproject):
        files += [project / rel for rel in _extension_sources(project, hashes)]
    # A workspace source is a member by name: which folder that is, the workspace root's file says.
    sources = as_table(as_table(tool.get("uv")).get("sources")).values()
    if any(as_table(e).get("workspace") is True for s in sources for e in (s if isinstance(s, list) else [s])):
        workspace = uv_workspace(project)
        files += [workspace[0] / "pyproject.toml"] if workspace else []
    return files, variables


def uv_workspace(project: Path) -> list[Path] | None:
    """The root of *project*'s uv workspace, then its member folders; ``None`` when *project* is in none.

    As uv finds it: the nearest ``pyproject.toml`` at or above *project* with ``[tool.uv.workspace]``
    is the root; its ``members`` globs name member folders (those with a ``pyproject.toml``), less
    those its ``exclude`` globs name. *project* must be the root or a member, else it is in no workspace.
    """
    for folder in (project, *project.parents):
        data = read_toml_if_valid(folder / "pyproject.toml") if (folder / "pyproject.toml").is_file() else {}
        workspace = as_table(as_table(data.get("tool")).get("uv")).get("workspace")
        if not isinstance(workspace, dict):
            continue
        excluded = {p for pattern in _globs(workspace.get("exclude")) for p in folder.glob(pattern)}
        found = [folder] + [
            Path(os.path.abspath(path))
            for pattern in _globs(workspace.get("members"))
            for path in sorted(folder.glob(pattern))
            if path not in excluded and (path / "pyproject.toml").is_file()
        ]
        return found if project.resolve() in {f.resolve() for f in found} else None
    return None


def _top_level_inputs(project: Path) -> list[Path]:
    """The files at *project*'s top a build backend may run or read (see ``_TOP_LEVEL_INPUTS``)."""
    try:
        entries = list(os.scandir(project))
    except OSError:
        return []
    return [Path(e.path) for e in entries if e.name.endswith(_TOP_LEVEL_INPUTS) and e.is_file()]


def _has_extensions(project: Path, backend: str, pyproject: Mapping[str, Any]) -> bool:
    """Whether *project* builds compiled extensions, judged cheaply: its build backend, files at its top, setup.py."""
    if backend.startswith(_EXTENSION_BACKENDS) or any((project / name).is_file() for name in _BUILD_CONFIGS):
        return True
    if as_table(as_table(pyproject.get("tool")).get("setuptools")).get("ext-modules"):
        return True
    try:
        setup_py = (project / "setup.py").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(word in setup_py for word in ("Extension", "ext_modules", "cythonize", "RustExtension"))


def _extension_sources(project: Path, hashes: FileHashes) -> list[str]:
    """The project's extension sources and build configurations, listed once per :class:`FileHashes`."""

    def listed(root: Path) -> list[str]:
        return [
            rel
            for rel in project_files(root, hashes.cache_root)
            if rel.endswith(_EXTENSION_SUFFIXES) or rel.rsplit("/", 1)[-1] in _BUILD_CONFIGS
        ]

    return list(hashes.once("ext", project, listed))


def _setup_cfg_files(project: Path, roots: list[Path]) -> list[Path]:
    """What ``file:`` and ``attr:`` directives in setup.cfg read."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(project / "setup.cfg", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return []
    if parser.has_option("options", "package_dir"):
        for line in parser.get("options", "package_dir").replace(",", "\n").splitlines():
            if "=" in line:
                roots.append(project / line.split("=", 1)[1].strip())
    files: list[Path] = []
    for section in parser.sections():
        for _, value in parser.items(section):
            value = value.strip()
            if value.startswith("file:"):
                files += _directive_files(project, roots, [v.strip() for v in value[5:].split(",")], None)
            elif value.startswith("attr:"):
                files += _directive_files(project, roots, None, value[5:].strip())
    return files


def _directive_files(project: Path, roots: list[Path], file: object, attr: object) -> list[Path]:
    found = _globbed(project, _list(file) if isinstance(file, list) else [file])
    if isinstance(attr, str) and "." in attr:
        found += _module_files(roots, attr.rsplit(".", 1)[0])
    return found


def _module_files(roots: list[Path], module: str) -> list[Path]:
    """The files that may hold *module* under the project's source roots (all of them count, found or not)."""
    rel = module.replace(".", "/")
    return [root / candidate for root in roots for candidate in (f"{rel}.py", f"{rel}/__init__.py")]


def _globbed(project: Path, patterns: Iterable[object]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        if isinstance(pattern, str) and pattern:
            matches = sorted(project.glob(pattern)) if any(c in pattern for c in "*?[") else [project / pattern]
            found += [m for m in matches if not m.is_dir()]
    return found


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value] if isinstance(value, str) else []


def _globs(value: object) -> list[str]:
    return [v for v in _list(value) if isinstance(v, str) and v and not Path(v).is_absolute()]
