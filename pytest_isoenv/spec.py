"""EnvSpec: a frozen, normalised description of one environment, and the key it is cached under.

Everything a test says about the env it wants (marker or factory arguments) is
validated and normalised here, before anything touches the cache, so that two
specs that mean the same env compare equal and hash to the same key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import SpecError

#: Bump when the layout of the key material changes, so old entries are never matched.
KEY_FORMAT = 1

#: The keyword arguments the marker and ``isoenv_factory.get()`` accept.
SPEC_ARGUMENTS = ("editable", "constraints", "requirements_files", "python", "private", "installer")

PathArg = Union[str, "os.PathLike[str]"]

_PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")
# Folders whose contents never change what a project installs, but change all the time.
_IGNORED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".venv", "venv", "__pycache__", "build", "dist",
        ".pytest_cache", ".mypy_cache", ".ruff_cache", ".eggs", "node_modules", ".idea", ".vscode",
    }
)  # fmt: skip


def normalize_requirement(req: Requirement) -> str:
    """The canonical text of a requirement: canonical name, sorted extras, sorted specifiers."""
    text: str = canonicalize_name(req.name)
    if req.extras:
        text += "[" + ",".join(sorted(canonicalize_name(e) for e in req.extras)) + "]"
    if req.url:
        text += f" @ {req.url}"
        if req.marker:
            text += " "
    else:
        text += str(req.specifier)  # SpecifierSet prints its members sorted
    if req.marker:
        text += f"; {req.marker}"
    return text


def _looks_like_path(text: str) -> bool:
    if "@" in text:  # "name @ https://..." has slashes but is a requirement
        try:
            return Requirement(text).url is None
        except InvalidRequirement:
            pass
    return (
        text in (".", "..")
        or "/" in text
        or os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or text.endswith(_ARCHIVE_SUFFIXES)
    )


def hash_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_tree(root: Path) -> str:
    """SHA-256 over a project's files: relative paths and contents, VCS/build/cache folders skipped."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath, name)
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hash_file(path).encode() if path.is_file() else b"<not a file>")
    return digest.hexdigest()


def hash_metadata_files(project: Path) -> str:
    """SHA-256 over an editable project's metadata files: what decides its dependencies and entry points."""
    digest = hashlib.sha256()
    for name in _PROJECT_FILES:
        path = project / name
        digest.update(name.encode() + b"\0" + (hash_file(path).encode() if path.is_file() else b"-"))
    return digest.hexdigest()


@dataclass(frozen=True)
class EnvSpec:
    """What one isolated environment contains, validated and normalised.

    Build it with :meth:`from_arguments`; the constructor trusts its input.
    Equal specs describe the same env. ``private`` says how the env is handed
    out, not what it is, so it is not part of the key.
    """

    requirements: tuple[str, ...] = ()
    """PEP 508 requirements, canonicalised, de-duplicated and sorted."""
    local: tuple[Path, ...] = ()
    """Absolute paths of local projects, wheels and sdists installed non-editable."""
    editable: tuple[Path, ...] = ()
    """Absolute paths of local projects installed in editable mode."""
    constraints: Path | None = None
    """Absolute path of a constraints file."""
    requirements_files: tuple[Path, ...] = ()
    """Absolute paths of requirements files."""
    python: str | None = None
    """The interpreter spec (``"3.12"``, ``"pypy3.10"``, an absolute path) or ``None`` for the running one."""
    installer: str | None = None
    """The installer name asked for, or ``None`` for the session's choice."""
    coverage: str | None = None
    """The coverage.py version installed to measure the env's processes: set only while the session
    measures coverage (the host's version, so the data combine), else ``None``."""
    private: bool = field(default=False, compare=False)
    """Whether the test gets its own, changeable copy."""

    @classmethod
    def from_arguments(
        cls,
        requirements: Iterable[object] = (),
        *,
        rootdir: Path,
        where: str | None = None,
        **kwargs: Any,
    ) -> EnvSpec:
        """Validate marker or factory arguments and normalise them into a spec.

        Relative paths resolve against *rootdir*. *where* names the test in
        errors. Raises :class:`SpecError` on anything that cannot describe an env.
        """
        unknown = sorted(set(kwargs) - set(SPEC_ARGUMENTS))
        if unknown:
            raise SpecError(
                f"unknown isoenv argument(s) {', '.join(map(repr, unknown))}",
                where=where,
                fix=f"The accepted keyword arguments are: {', '.join(SPEC_ARGUMENTS)}",
            )
        reqs: set[str] = set()
        local: list[Path] = []
        for item in requirements:
            if isinstance(item, os.PathLike):
                local.append(_local_source(item, rootdir, where))
            elif not isinstance(item, str):
                raise SpecError(
                    f"requirement {item!r} is a {type(item).__name__}, not a string",
                    where=where,
                    fix='Pass PEP 508 strings such as "requests>=2.28" or paths to local projects',
                )
            elif _looks_like_path(item.strip()):
                local.append(_local_source(item.strip(), rootdir, where))
            else:
                reqs.add(_parse_requirement(item, where))

        editable = [
            _project_dir(p, rootdir, where, "editable") for p in _as_sequence(kwargs.get("editable"), "editable", where)
        ]
        req_files = [
            _existing_file(p, rootdir, where, "requirements file")
            for p in _as_sequence(kwargs.get("requirements_files"), "requirements_files", where)
        ]
        constraints = kwargs.get("constraints")
        python = kwargs.get("python")
        if python is not None and not isinstance(python, (str, os.PathLike)):
            raise SpecError(
                f"python={python!r} is not an interpreter spec",
                where=where,
                fix='Use a version such as "3.12", "pypy3.10", ">=3.11" or a path to an interpreter',
            )
        installer = kwargs.get("installer")
        if installer is not None and not isinstance(installer, str):
            raise SpecError(f"installer={installer!r} is not a name", where=where, fix='Use "auto", "pip" or "uv"')
        private = kwargs.get("private", False)
        if not isinstance(private, bool):
            raise SpecError(f"private={private!r} is not True or False", where=where)
        return cls(
            requirements=tuple(sorted(reqs)),
            local=tuple(sorted(set(local))),
            editable=tuple(sorted(set(editable))),
            constraints=None
            if constraints is None
            else _existing_file(_as_path_arg(constraints, "constraints", where), rootdir, where, "constraints file"),
            requirements_files=tuple(sorted(set(req_files))),
            python=None if python is None else normalize_python(python, rootdir, where) or None,
            installer=installer,
            private=private,
        )

    def key_material(self) -> dict[str, Any]:
        """What this spec contributes to the cache key: its requirements and the content of its files.

        Reads local files, so callers memoise it for a session.
        """
        return {
            "requirements": list(self.requirements),
            "local": [{"path": str(p), "sha256": hash_tree(p) if p.is_dir() else hash_file(p)} for p in self.local],
            "editable": [{"path": str(p), "metadata": hash_metadata_files(p)} for p in self.editable],
            "constraints": None if self.constraints is None else hash_file(self.constraints),
            "requirements_files": [hash_file(p) for p in self.requirements_files],
            # Only while measuring: an env that is not measured keeps the key it always had.
            **({"coverage": self.coverage} if self.coverage else {}),
        }

    def describe(self) -> str:
        """A short human summary, for reports and progress lines."""
        parts = [*self.requirements, *(p.name for p in self.local), *(f"-e {p.name}" for p in self.editable)]
        parts += [f"-r {p.name}" for p in self.requirements_files]
        if self.constraints is not None:
            parts.append(f"-c {self.constraints.name}")
        text = ", ".join(parts) or "(no packages)"
        return f"{text} +coverage {self.coverage}" if self.coverage else text


def normalize_python(value: PathArg, rootdir: Path, where: str | None = None) -> str:
    """An interpreter spec with a path in it made absolute against *rootdir*; versions stay as given.

    A spec that names no known implementation (``"banana"``, ``"snakes3"``) is refused here: it
    is a typo, not an interpreter that happens to be missing, so it must not turn into a skip.
    """
    from python_discovery import KNOWN_IMPLEMENTATIONS, PythonSpec  # not at import: it slows every pytest start

    text = os.fspath(value).strip()
    if isinstance(value, os.PathLike) or text.startswith("~") or any(s and s in text for s in (os.sep, os.altsep)):
        return str(_resolve(text, rootdir))
    implementation = PythonSpec.from_string_spec(text).implementation
    if implementation is not None and implementation.lower() not in KNOWN_IMPLEMENTATIONS:
        raise SpecError(
            f"python={text!r} is not an interpreter spec ({implementation!r} is no Python implementation)",
            where=where,
            fix=f'Use a version such as "3.12", "py312", ">=3.11", one of {", ".join(KNOWN_IMPLEMENTATIONS)} '
            "with a version, or a path to an interpreter",
        )
    return text


def compute_key(material: Mapping[str, Any]) -> str:
    """The cache key for a complete key material: a hex SHA-256 of its canonical JSON."""
    blob = json.dumps({"format": KEY_FORMAT, **material}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _parse_requirement(text: str, where: str | None) -> str:
    try:
        return normalize_requirement(Requirement(text))
    except InvalidRequirement as exc:
        raise SpecError(
            f"invalid requirement {text!r} ({str(exc).splitlines()[0]})",  # one line: no caret diagram
            where=where,
            fix='Use a PEP 508 requirement such as "requests>=2.28", or a path such as "./my-project"',
        ) from None


def _as_sequence(value: object, name: str, where: str | None) -> list[PathArg]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [_as_path_arg(v, name, where) for v in value]
    raise SpecError(f"{name}={value!r} is not a path or a list of paths", where=where)


def _as_path_arg(value: object, name: str, where: str | None) -> PathArg:
    if isinstance(value, (str, os.PathLike)):
        return value
    raise SpecError(f"{name} entry {value!r} is a {type(value).__name__}, not a path", where=where)


def _resolve(value: PathArg, rootdir: Path) -> Path:
    path = Path(os.path.expanduser(os.fspath(value)))
    return Path(os.path.abspath(rootdir / path))


def _local_source(value: PathArg, rootdir: Path, where: str | None) -> Path:
    path = _resolve(value, rootdir)
    if path.is_file() and path.name.endswith(_ARCHIVE_SUFFIXES):
        return path
    return _project_dir(value, rootdir, where, "local requirement")


def _project_dir(value: PathArg, rootdir: Path, where: str | None, what: str) -> Path:
    path = _resolve(value, rootdir)
    if not path.exists():
        raise SpecError(
            f"{what} path {os.fspath(value)!r} does not exist (resolved to {path})",
            where=where,
            fix="Relative paths resolve against pytest's rootdir; check the path",
        )
    if not path.is_dir() or not any((path / name).is_file() for name in _PROJECT_FILES):
        raise SpecError(
            f"{what} path {os.fspath(value)!r} is not a Python project (resolved to {path})",
            where=where,
            fix="Point it at a directory holding pyproject.toml, setup.py or setup.cfg, or at a wheel or sdist",
        )
    return path


def _existing_file(value: PathArg, rootdir: Path, where: str | None, what: str) -> Path:
    path = _resolve(value, rootdir)
    if not path.is_file():
        raise SpecError(
            f"{what} {os.fspath(value)!r} does not exist (resolved to {path})",
            where=where,
            fix="Relative paths resolve against pytest's rootdir; check the path",
        )
    return path
