"""Requirements files as pip reads them: their lines, the files they include, and copies with absolute paths.

A requirements or constraints file can include others (``-r``, ``-c``) and name
local projects, archives and find-links folders relative to its own folder.
This module walks such a file and everything it includes (:func:`walk_requirements`),
classifies each line (:func:`parse_line`), and writes copies whose paths are
absolute (:func:`absolute_copies`), so both installers read the file as its author
meant. It reads files but hashes nothing: what their content contributes to the
key is :func:`pytest_isoenv.key.material.requirements_material`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from pytest_isoenv.errors import SpecError

ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")

_OPTION = re.compile(
    r"^(?P<opt>-r|-c|-e|-f|--requirement|--constraint|--editable|--find-links)(?:\s*=\s*|\s+|(?<=^-.)(?=\S))(?P<value>\S+)"
)
_KINDS = {"-r": "include", "--requirement": "include", "-c": "constraint", "--constraint": "constraint"}
_KINDS |= {"-e": "editable", "--editable": "editable", "-f": "find_links", "--find-links": "find_links"}
# RFC 3986's scheme, at least two characters long: a Windows drive (C:) is a path.
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def is_url(text: str) -> bool:
    """Whether *text* is a URL (``https://...``, ``file:...``, ``git+ssh://...``) rather than a path."""
    return _URL_SCHEME.match(text) is not None


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


def logical_lines(path: Path) -> Iterator[str]:
    """The lines of the requirements file *path* as pip reads them: continuations joined, comments dropped.

    Only the file's own lines: see :func:`walk_requirements` for the files it includes.
    """
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


def parse_line(line: str) -> tuple[str, str, str]:
    """``(kind, value, rest)`` of one logical requirements line.

    Kinds: ``include``, ``constraint``, ``editable``, ``find_links``, ``path`` (a local project or
    archive), ``url`` (``name @ file:...``), ``other`` (a requirement or an option that names no file).
    """
    match = _OPTION.match(line)
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


def walk_requirements(path: Path, *, seen: set[Path] | None = None) -> Iterator[tuple[Path, str, str, str]]:
    """Every line of the requirements or constraints file *path* and of the files it includes, recursively.

    Yields ``(file, kind, value, rest)`` as :func:`parse_line` does, with file and path values made
    absolute against the including file's folder, as pip resolves them. Each file once, so cycles end.
    Raises :class:`SpecError` naming the including file when an included file is missing.
    """
    seen = set() if seen is None else seen
    if path in seen:
        return
    seen.add(path)
    for line in logical_lines(path):
        kind, value, rest = parse_line(line)
        if kind in ("include", "constraint", "editable", "find_links", "path") and not is_url(value):
            value = os.path.abspath(path.parent / os.path.expanduser(value))
        yield path, kind, value, rest
        if kind in ("include", "constraint"):
            nested = Path(value)
            if not nested.is_file():
                raise SpecError(
                    f"{path} includes {line!r}, which does not exist (resolved to {nested})",
                    fix="Paths in a requirements file resolve against that file's folder; fix the line or add the file",
                )
            yield from walk_requirements(nested, seen=seen)


def needs_rewrite(path: Path) -> bool:
    """Whether a requirements file (or one it includes) names a local path, which installers would misread."""
    return any(_is_local(kind, value) for _, kind, value, _ in walk_requirements(path))


def _is_local(kind: str, value: str) -> bool:
    return kind == "path" or (kind in ("editable", "find_links") and Path(value).is_absolute())


def absolute_copies(paths: Iterable[Path], folder: Path) -> dict[Path, Path]:
    """Copies in *folder* of requirements files with every path in them absolute; original -> copy.

    pip reads ``-e .`` and ``./pkg`` in a requirements file against its working directory, uv against its
    own: the copies say what the file's author meant, the file's folder, whichever installer runs.
    """
    copies: dict[Path, Path] = {}
    for original in paths:
        for file, *_ in walk_requirements(original):
            copies.setdefault(file, folder / f"{len(copies)}-{file.name}")
    for file, copy in copies.items():
        lines = []
        # Only this file's own lines: every other file is marked seen, so none is entered.
        for _, kind, value, rest in walk_requirements(file, seen=set(copies) - {file}):
            if kind in ("include", "constraint"):
                lines.append(f"{'-r' if kind == 'include' else '-c'} {copies[Path(value)]}")
            elif kind in ("editable", "find_links"):
                lines.append(f"{'-e' if kind == 'editable' else '-f'} {value}{rest}")
            elif kind == "url":
                lines.append(rest)
            else:
                lines.append(f"{value}{rest}")
        copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return copies
