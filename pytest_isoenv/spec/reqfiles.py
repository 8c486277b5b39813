"""Requirements files as pip reads them: their lines, the files they include, and copies with absolute paths.

A requirements or constraints file can include others (``-r``, ``-c``) and name
local projects, archives and find-links folders relative to its own folder.
This module walks such a file and everything it includes (:func:`walk_requirements`),
classifies each line (:func:`parse_line`), and writes copies whose paths are
absolute (:func:`absolute_copies`), so both installers read the file as its author
meant. Variables (``${NAME}``) are expanded in every line as pip expands them, so the
key, the copies and verify all read the lines the installer would. It reads files but
hashes nothing: what their content contributes to the key is
:func:`pytest_isoenv.key.material.requirements_material`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from pytest_isoenv.environ import host_environ
from pytest_isoenv.errors import SpecError

ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")

# Patterns as strings, compiled by ``re`` on first use and cached there: pytest imports this module in every
# run (for the options' checks), and most runs read no requirements file.
_OPTION = r"^(?P<opt>-r|-c|-e|-f|--requirement|--constraint|--editable|--find-links)(?:\s*=\s*|\s+|(?<=^-.)(?=\S))(?P<value>\S+)"
_KINDS = {"-r": "include", "--requirement": "include", "-c": "constraint", "--constraint": "constraint"}
_KINDS |= {"-e": "editable", "--editable": "editable", "-f": "find_links", "--find-links": "find_links"}
# pip's form of a variable in a requirements file, and uv's: only ${NAME}, so a "$" in a URL is left alone.
_VARIABLE = r"\$\{([A-Z0-9_]+)\}"
# RFC 3986's scheme, at least two characters long: a Windows drive (C:) is a path.
_URL_SCHEME = r"^[A-Za-z][A-Za-z0-9+.-]+:"


def is_url(text: str) -> bool:
    """Whether *text* is a URL (``https://...``, ``file:...``, ``git+ssh://...``) rather than a path."""
    return re.match(_URL_SCHEME, text) is not None


def looks_like_path(text: str) -> bool:
    """Whether a requirement string names a local path rather than a PEP 508 requirement."""
    if "@" in text:  # "name @ https://..." has slashes but is a requirement
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            return Requirement(text).url is None
        except InvalidRequirement:
            pass
    return (
        text in (".", "..")
        or text.startswith(("./", "../", "~", ".\\", "..\\"))
        or "/" in text
        or os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or text.endswith(ARCHIVE_SUFFIXES)
    )


def _joined_lines(path: Path) -> Iterator[str]:
    pending = ""
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        line = re.sub(r"(^|\s+)#.*$", "", line).strip()
        if line:
            yield line
    if pending.strip():
        yield pending.strip()


def expand_variables(line: str, environ: Mapping[str, str]) -> str:
    """*line* with each ``${NAME}`` replaced by its value in *environ*, as pip replaces it.

    A variable that is unset or empty is left as written, as pip leaves it.
    """
    for name in re.findall(_VARIABLE, line):
        value = environ.get(name)
        if value:
            line = line.replace(f"${{{name}}}", value)
    return line


def logical_lines(path: Path, environ: Mapping[str, str] | None = None) -> Iterator[str]:
    """The lines of the requirements file *path* as pip reads them: continuations joined, comments dropped,
    variables expanded from *environ* (default: the host environment builds run with, see
    :func:`~pytest_isoenv.environ.host_environ`).

    Only the file's own lines: see :func:`walk_requirements` for the files it includes.
    """
    environ = host_environ() if environ is None else environ
    for line in _joined_lines(path):
        yield expand_variables(line, environ)


def variables(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The variables the lines of the requirements file *path* name, with their values (``None``: unset).

    An empty value and an unset variable read the same to pip, not to uv (which expands the empty
    value): both count.
    """
    environ = host_environ() if environ is None else environ
    names = {name for line in _joined_lines(path) for name in re.findall(_VARIABLE, line)}
    return {name: environ.get(name) for name in sorted(names)}


def parse_line(line: str) -> tuple[str, str, str]:
    """``(kind, value, rest)`` of one logical requirements line.

    Kinds: ``include``, ``constraint``, ``editable``, ``find_links``, ``path`` (a local project or
    archive), ``url`` (``name @ file:...``), ``other`` (a requirement or an option that names no file).
    """
    match = re.match(_OPTION, line)
    if match:
        return _KINDS[match["opt"]], match["value"], line[match.end() :]
    if line.startswith("-"):
        return "other", line, ""
    first, _, rest = line.partition(" ")
    bare = re.sub(r"\[[^\]]*\]$", "", first)
    if looks_like_path(bare) and "@" not in first:
        return "path", bare, first[len(bare) :] + (" " + rest if rest else "")
    url = re.search(r"@\s*(file:\S+)", line)
    if url:
        return "url", url[1], line
    return "other", line, ""


def walk_requirements(
    path: Path, *, seen: set[Path] | None = None, environ: Mapping[str, str] | None = None
) -> Iterator[tuple[Path, str, str, str]]:
    """Every line of the requirements or constraints file *path* and of the files it includes, recursively.

    Yields ``(file, kind, value, rest)`` as :func:`parse_line` does, with variables expanded from
    *environ* (see :func:`logical_lines`) and file and path values made absolute against the
    including file's folder, as pip resolves them. Each file once, so cycles end. Raises
    :class:`SpecError` naming the including file when an included file is missing.
    """
    seen = set() if seen is None else seen
    environ = host_environ() if environ is None else environ
    if path in seen:
        return
    seen.add(path)
    for line in logical_lines(path, environ):
        kind, value, rest = parse_line(line)
        if kind in ("include", "constraint", "editable", "find_links", "path") and not is_url(value):
            value = os.path.abspath(path.parent / os.path.expanduser(value))
        yield path, kind, value, rest
        if kind in ("include", "constraint"):
            nested = Path(value)
            if not nested.is_file():
                raise SpecError(
                    f"{path} includes {line!r}, which does not exist (resolved to {nested})",
                    fix="Paths in a requirements file resolve against that file's folder, and ${NAME} "
                    "against the environment; fix the line or add the file",
                )
            yield from walk_requirements(nested, seen=seen, environ=environ)


def needs_rewrite(path: Path, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a requirements file (or one it includes) names a local path, which installers would misread,
    or a variable that is set, which uv would leave as written where pip expands it.

    Given a copy, both installers read the lines the key was made of.
    """
    environ = host_environ() if environ is None else environ
    files = set()
    for file, kind, value, _ in walk_requirements(path, environ=environ):
        if _is_local(kind, value):
            return True
        files.add(file)
    return any(value for file in files for value in variables(file, environ).values())


def names_local_files(path: Path, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a requirements file (or one it includes) names a local project, archive or folder."""
    return any(_is_local(kind, value) for _, kind, value, _ in walk_requirements(path, environ=environ))


def _is_local(kind: str, value: str) -> bool:
    return kind == "path" or (kind in ("editable", "find_links") and Path(value).is_absolute())


def names_url(path: Path) -> bool:
    """Whether a requirements file (or one it includes) has a ``name @ file:...`` line."""
    return any(kind == "url" for _, kind, _, _ in walk_requirements(path))


def absolute_copies(
    paths: Iterable[Path],
    folder: Path,
    environ: Mapping[str, str] | None = None,
    *,
    relocate: Callable[[str], str] | None = None,
) -> dict[Path, Path]:
    """Copies in *folder* of requirements files with every path in them absolute and variables expanded from
    *environ* (see :func:`logical_lines`); original -> copy.

    pip reads ``-e .`` and ``./pkg`` in a requirements file against its working directory, uv against its
    own: the copies say what the file's author meant, the file's folder, whichever installer runs. uv
    expands variables only in paths and URLs, pip in every line: the copies are read the same by both.
    *relocate* maps the project paths and ``file:`` URLs of non-editable lines to what the copies name instead.
    """
    environ = host_environ() if environ is None else environ
    copies: dict[Path, Path] = {}
    for original in paths:
        for file, *_ in walk_requirements(original, environ=environ):
            copies.setdefault(file, folder / f"{len(copies)}-{file.name}")
    for file, copy in copies.items():
        lines = []
        # Only this file's own lines: every other file is marked seen, so none is entered.
        for _, kind, value, rest in walk_requirements(file, seen=set(copies) - {file}, environ=environ):
            if kind in ("include", "constraint"):
                lines.append(f"{'-r' if kind == 'include' else '-c'} {copies[Path(value)]}")
            elif kind in ("editable", "find_links"):
                lines.append(f"{'-e' if kind == 'editable' else '-f'} {value}{rest}")
            elif kind == "url":
                lines.append(rest if relocate is None else rest.replace(value, relocate(value), 1))
            elif kind == "path" and relocate is not None:
                lines.append(f"{relocate(value)}{rest}")
            else:
                lines.append(f"{value}{rest}")
        copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return copies
