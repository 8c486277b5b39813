"""Key material: the content of every file and setting outside a spec's own text that shapes an env.

An env's key must change whenever a fresh build could differ: a wheel rebuilt
under the same name, a file a requirements file includes, a dynamic-metadata
source of an editable project, a constraints file named by pip's or uv's
configuration. This module reads all of them, and keeps a warm run cheap with
:class:`FileHashes`, which hashes a file only when its ``stat`` changed.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from .errors import SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    from .index import IndexOptions
    from .spec import EnvSpec

PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")
# Left out of a project's files only at its top: what tools and VCSs keep there. Deeper folders of these names
# are ordinary sources (pypa/build's own package is src/build/).
_TOP_LEVEL_SKIP = frozenset(
    {
        ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".venv", "venv", "build", "dist", "node_modules", ".eggs",
        ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".idea", ".vscode",
    }
)  # fmt: skip
# Files that decide a compiled extension, and the build configurations that mean a project has one.
_EXTENSION_SUFFIXES = (".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".pyx", ".pxd", ".pxi", ".rs", ".f90", ".cu")
_BUILD_CONFIGS = ("CMakeLists.txt", "meson.build", "meson.options", "meson_options.txt", "Cargo.toml", "Cargo.lock")
_EXTENSION_BACKENDS = ("scikit_build_core", "mesonpy", "maturin", "setuptools_rust", "enscons", "py_build_cmake")
#: A file changed this recently may change again within the same timestamp tick: hash it, but do not remember it.
_RACY_NS = 2_000_000_000
_STALE_DAYS = 30
_HASHES_FILE = "files.tsv"
_HASHES_VERSION = "isoenv-hashes 1"


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FileHashes:
    """File content hashes, remembered by ``stat`` (size, mtime, inode, ctime) in ``<cache root>/hashes/``.

    One instance serves a session: trees and folders are listed once per
    instance. :meth:`save` merges what it learnt into the file on disk (written
    atomically; a corrupt file is ignored and rebuilt; entries unused for
    30 days are dropped). Without a *folder* nothing is remembered between sessions.
    """

    def __init__(self, folder: Path | None = None, *, cache_root: Path | None = None) -> None:
        self.folder = folder
        #: Never part of any project's files, even inside the project (the CI recipe puts it there).
        self.cache_root = cache_root
        self._today = int(time.time() // 86400)
        self._entries = self._load()
        self._dirty: set[str] = set()
        self._memo: dict[tuple[str, str], Any] = {}

    def _load(self) -> dict[str, tuple[int, int, int, int, str, int]]:
        entries: dict[str, tuple[int, int, int, int, str, int]] = {}
        if self.folder is None:
            return entries
        try:
            lines = (self.folder / _HASHES_FILE).read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError):
            return entries
        if lines[0] != _HASHES_VERSION:
            return entries
        for line in lines[1:]:
            parts = line.split("\t")
            try:
                size, mtime, ino, ctime, day = (int(p) for p in parts[1:5] + parts[6:7])
            except ValueError:
                continue  # a damaged line: that file is hashed again
            if len(parts) == 7 and len(parts[5]) == 64:
                entries[parts[0]] = (size, mtime, ino, ctime, parts[5], day)
        return entries

    def file(self, path: Path) -> str:
        """SHA-256 of *path*'s content (raises :class:`OSError` if it cannot be read)."""
        name = str(path)
        st = path.stat()
        signature = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        entry = self._entries.get(name)
        if entry is not None and entry[:4] == signature:
            if entry[5] != self._today:
                self._entries[name] = (*signature, entry[4], self._today)
                self._dirty.add(name)
            return entry[4]
        digest = sha256_file(path)
        if time.time_ns() - st.st_mtime_ns > _RACY_NS and "\t" not in name and "\n" not in name:
            self._entries[name] = (*signature, digest, self._today)
            self._dirty.add(name)
        return digest

    def file_or_none(self, path: Path) -> str | None:
        """SHA-256 of *path*, or ``None`` when it is missing or not a readable file."""
        try:
            return self.file(path)
        except OSError:
            return None

    def tree(self, root: Path) -> str:
        """SHA-256 over a project's files (see :func:`project_files`): relative paths and contents."""
        memo = self._memo.get(("tree", str(root)))
        if memo is None:
            digest = hashlib.sha256()
            for rel in project_files(root, self.cache_root):
                digest.update(f"{rel}\0{self.file_or_none(root / rel) or '-'}\0".encode())
            memo = self._memo[("tree", str(root))] = digest.hexdigest()
        return str(memo)

    def save(self) -> None:
        """Merge the hashes learnt into the file in :attr:`folder`; best effort (a cache, never an error)."""
        if self.folder is None or not self._dirty:
            return
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            on_disk = self._load()  # another process may have saved meanwhile
            merged = {**on_disk, **{n: self._entries[n] for n in self._dirty if n in self._entries}}
            oldest = self._today - _STALE_DAYS
            lines = [_HASHES_VERSION]
            lines += ["\t".join(map(str, (n, *e))) for n, e in merged.items() if e[5] >= oldest]
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".files-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as stream:
                    stream.write("\n".join(lines))
                os.replace(tmp, self.folder / _HASHES_FILE)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            return
        self._entries = merged
        self._dirty.clear()


def project_files(root: Path, cache_root: Path | None = None) -> list[str]:
    """The files of a local project that count for its key, as sorted POSIX paths relative to *root*.

    In a git work tree, what ``git ls-files`` lists (tracked and untracked, without what
    ``.gitignore`` leaves out); elsewhere every file. Either way not VCS and tool folders at the top
    (``.git``, ``.tox``, ``build``, ``dist``, ``*.egg-info``...), ``__pycache__``, bytecode, nor *cache_root*.
    """
    listed = _git_files(root)
    if listed is None:
        listed = []
        for dirpath, dirnames, filenames in os.walk(root):
            top = dirpath == str(root)
            dirnames[:] = [d for d in dirnames if not (d == "__pycache__" or (top and _skipped_at_top(d)))]
            rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
            listed += [name if top else f"{rel}/{name}" for name in filenames]
    skip = None
    if cache_root is not None and cache_root.is_relative_to(root) and cache_root != root:
        skip = cache_root.relative_to(root).as_posix() + "/"
    return sorted(
        rel
        for rel in listed
        if not _skipped_at_top(rel.split("/", 1)[0])
        and not rel.endswith((".pyc", ".pyo"))
        and "__pycache__/" not in rel
        and not (skip and rel.startswith(skip))
    )


def _skipped_at_top(name: str) -> bool:
    return name in _TOP_LEVEL_SKIP or name.endswith(".egg-info")


def _git_files(root: Path) -> list[str] | None:
    """``git ls-files -co --exclude-standard`` in *root*, or ``None`` outside a git work tree (or without git)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        return None
    files = [f for f in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if f]
    # A project git ignores as a whole (inside an ignored folder of another repository) is walked instead.
    if proc.returncode != 0 or not any(name in files for name in PROJECT_FILES):
        return None
    return [f for f in files if (root / f).is_file() or not (root / f).exists()]


def location_material(link: str, hashes: FileHashes, base: Path | None = None) -> Any:
    """A find-links location as it counts for the key: a local folder by the content of its archives."""
    path = _local_path(link, base)
    if path is None:
        return link
    memo = hashes._memo.get(("dir", str(path)))
    if memo is not None:
        return memo
    if path.is_dir():
        try:
            names = sorted(e.name for e in os.scandir(path) if e.name.endswith(ARCHIVE_SUFFIXES) and e.is_file())
        except OSError:
            names = []
        material: Any = {"dir": str(path), "files": {n: hashes.file_or_none(path / n) for n in names}}
    elif path.is_file():
        material = {"file": str(path), "sha256": hashes.file_or_none(path)}
    else:
        material = {"missing": str(path)}
    hashes._memo[("dir", str(path))] = material
    return material


def _local_path(link: str, base: Path | None) -> Path | None:
    """The local path a find-links entry or ``file:`` URL names, absolute; ``None`` for a remote URL."""
    if link.startswith("file:"):
        parsed = urllib.parse.urlsplit(link)
        text = urllib.request.url2pathname(parsed.path if not parsed.netloc else f"//{parsed.netloc}{parsed.path}")
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", link):
        return None
    else:
        text = link
    path = Path(os.path.expanduser(text))
    return Path(os.path.abspath((base or Path.cwd()) / path))


def url_material(url: str, hashes: FileHashes, editable: bool = False) -> Any:
    """A ``file:`` URL requirement by what it points at (a project's tree or an archive's content)."""
    path = _local_path(url.split("#", 1)[0], None) if url.startswith("file:") else None
    if path is None:
        return url
    if path.is_dir():
        return editable_material(path, hashes) if editable else {"tree": str(path), "sha256": hashes.tree(path)}
    return {"file": str(path), "sha256": hashes.file_or_none(path)}


def uses_local_files(spec: EnvSpec, find_links: Iterable[str], environ: Mapping[str, str]) -> bool:
    """Whether installing *spec* reads local projects, archives or find-links folders (which uv caches)."""
    links = [*find_links, *environ.get("UV_FIND_LINKS", "").replace(",", " ").split()]
    return bool(
        spec.local
        or any(_local_path(link, None) for link in links)
        or any("@ file:" in r for r in spec.requirements)
        or any(needs_rewrite(p) for p in (*spec.requirements_files, *([spec.constraints] if spec.constraints else [])))
    )


def local_material(path: Path, hashes: FileHashes) -> dict[str, Any]:
    """A local project (its tree) or archive (its content), installed non-editable."""
    return {"path": str(path), "sha256": hashes.tree(path) if path.is_dir() else hashes.file_or_none(path)}


# Requirements files -----------------------------------------------------------------------------------------

_OPTION = re.compile(
    r"^(?P<opt>-r|-c|-e|-f|--requirement|--constraint|--editable|--find-links)(?:\s*=\s*|\s+|(?<=^-.)(?=\S))(?P<value>\S+)"
)
_KINDS = {"-r": "include", "--requirement": "include", "-c": "constraint", "--constraint": "constraint"}
_KINDS |= {"-e": "editable", "--editable": "editable", "-f": "find_links", "--find-links": "find_links"}


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


def _logical_lines(text: str) -> Iterator[str]:
    """The lines of a requirements file as pip reads them: continuations joined, comments dropped."""
    pending = ""
    for raw in text.splitlines():
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
    for line in _logical_lines(path.read_text(encoding="utf-8", errors="replace")):
        kind, value, rest = parse_line(line)
        if kind in ("include", "constraint", "editable", "find_links", "path") and not re.match(r"^\w[\w+.-]+:", value):
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


def requirements_material(path: Path, hashes: FileHashes) -> list[Any]:
    """A requirements (or constraints) file by its content, the files it includes, and the projects it names."""
    material: list[Any] = []
    current = None
    for file, kind, value, _ in walk_requirements(path):
        if file != current:  # by content, not path: a copy elsewhere keys the same (its paths are in its lines)
            current = file
            material.append(["file", hashes.file_or_none(file)])
        if kind == "editable" and Path(value).is_dir():
            material.append(["-e", editable_material(Path(value), hashes)])
        elif kind == "path":
            material.append(["path", local_material(Path(value), hashes)])
        elif kind == "find_links":
            material.append(["-f", location_material(value, hashes)])
        elif kind == "url":
            material.append(["url", url_material(value, hashes)])
    return material


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


# Editable projects ------------------------------------------------------------------------------------------


def editable_material(project: Path, hashes: FileHashes, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An editable project by what a new install of it could change: its metadata and what that reads.

    Its Python sources are live in the env and stay out. In: ``pyproject.toml``, ``setup.py``,
    ``setup.cfg``, the files the common backends' dynamic metadata reads, ``[tool.uv] cache-keys``,
    and, for a project with compiled extensions, their sources and build configuration.
    """
    files, variables = editable_inputs(project, hashes, os.environ if environ is None else environ)
    return {
        "path": str(project),
        "files": {os.path.relpath(f, project): hashes.file_or_none(f) for f in sorted(set(files))},
        "env": variables,
    }


def editable_inputs(project: Path, hashes: FileHashes, environ: Mapping[str, str]) -> tuple[list[Path], dict[str, Any]]:
    """The files (and environment variables, by value) an editable install of *project* depends on."""
    files = [project / name for name in PROJECT_FILES]
    variables: dict[str, Any] = {}
    pyproject = _read_toml(project / "pyproject.toml")
    tool = pyproject.get("tool", {})
    roots = [project, project / "src"]
    for mapped in _dict(_dict(tool.get("setuptools")).get("package-dir")).values():
        roots.append(project / str(mapped))
    # setuptools: [tool.setuptools.dynamic] version/readme/dependencies/optional-dependencies = {file|attr = ...}
    for name, value in _dict(_dict(tool.get("setuptools")).get("dynamic")).items():
        for directive in _dict(value).values() if name == "optional-dependencies" else [value]:
            files += _directive_files(project, roots, _dict(directive).get("file"), _dict(directive).get("attr"))
    files += _setup_cfg_files(project, roots)
    hatch = _dict(tool.get("hatch"))
    files += _globbed(project, [_dict(hatch.get("version")).get("path")])
    requirements_txt = _dict(_dict(_dict(hatch.get("metadata")).get("hooks")).get("requirements_txt"))
    files += _globbed(project, _list(requirements_txt.get("files")))
    for extra in _dict(requirements_txt.get("optional-dependencies")).values():
        files += _globbed(project, _list(extra))
    pdm_version = _dict(_dict(tool.get("pdm")).get("version"))
    if pdm_version.get("source") == "file":
        files += _globbed(project, [pdm_version.get("path")])
    backend = str(_dict(pyproject.get("build-system")).get("build-backend", ""))
    if backend.startswith("flit") and _list(_dict(pyproject.get("project")).get("dynamic")):
        module = _dict(_dict(tool.get("flit")).get("module")).get("name") or _dict(pyproject.get("project")).get("name")
        if isinstance(module, str):
            files += _module_files(roots, re.sub(r"[-.]+", "_", module))
    # uv's own way to name what a project's build depends on: file globs, folders and environment variables.
    for entry in _list(_dict(tool.get("uv")).get("cache-keys")):
        entry = {"file": entry} if isinstance(entry, str) else _dict(entry)
        files += _globbed(project, [entry.get("file")])
        if isinstance(entry.get("dir"), str):
            variables[f"dir:{entry['dir']}"] = hashes.tree(project / entry["dir"])
        if isinstance(entry.get("env"), str):
            variables[entry["env"]] = environ.get(entry["env"])
    if _has_extensions(project, backend, pyproject):
        files += [project / rel for rel in _extension_sources(project, hashes)]
    return files, variables


def _has_extensions(project: Path, backend: str, pyproject: Mapping[str, Any]) -> bool:
    """Whether *project* builds compiled extensions, judged cheaply: its build backend, files at its top, setup.py."""
    if backend.startswith(_EXTENSION_BACKENDS) or any((project / name).is_file() for name in _BUILD_CONFIGS):
        return True
    if _dict(_dict(pyproject.get("tool")).get("setuptools")).get("ext-modules"):
        return True
    try:
        setup_py = (project / "setup.py").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(word in setup_py for word in ("Extension", "ext_modules", "cythonize", "RustExtension"))


def _extension_sources(project: Path, hashes: FileHashes) -> list[str]:
    memo = hashes._memo.get(("ext", str(project)))
    if memo is None:
        memo = hashes._memo[("ext", str(project))] = [
            rel
            for rel in project_files(project, hashes.cache_root)
            if rel.endswith(_EXTENSION_SUFFIXES) or rel.rsplit("/", 1)[-1] in _BUILD_CONFIGS
        ]
    return list(memo)


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


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            return dict(tomllib.load(stream))
    except (OSError, tomllib.TOMLDecodeError):
        return {}  # missing, or broken: the build will say so, and the file's hash is in the key anyway


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value] if isinstance(value, str) else []


# Installer settings -----------------------------------------------------------------------------------------


def index_material(index: IndexOptions, hashes: FileHashes) -> dict[str, Any]:
    """The plugin's own index options: local find-links folders by the content of their archives."""
    return {
        "index_url": index.index_url,
        "find_links": [location_material(link, hashes) for link in index.find_links],
        "offline": index.offline,
    }


# Settings that change what pip resolves or how it builds. Others (timeouts, certificates,
# progress bars, cache location) change only how it gets there, and stay out of the key.
_PIP_RESOLUTION_SETTINGS = frozenset(
    {
        "index-url", "extra-index-url", "find-links", "no-index", "pre", "only-binary", "no-binary",
        "prefer-binary", "constraint", "build-constraint", "upgrade-strategy", "no-build-isolation",
        "no-deps", "uploaded-prior-to", "use-feature", "use-deprecated", "ignore-requires-python",
        "config-settings", "platform", "python-version", "implementation", "abi", "isolated",
    }
)  # fmt: skip


def pip_config_files(environ: Mapping[str, str]) -> list[Path]:
    """The pip configuration files pip itself would read, in its order of precedence (lowest first)."""
    config_file = environ.get("PIP_CONFIG_FILE")
    if config_file == os.devnull:
        return []
    name = "pip.ini" if sys.platform == "win32" else "pip.conf"
    files = [
        Path(d, name) for d in platformdirs.site_config_dir("pip", appauthor=False, multipath=True).split(os.pathsep)
    ]
    if sys.platform != "win32":
        files.append(Path("/etc", name))
    files.append(Path.home() / (f"pip/{name}" if sys.platform == "win32" else f".pip/{name}"))
    files.append(Path(platformdirs.user_config_dir("pip", appauthor=False, roaming=True), name))
    if config_file:
        files.append(Path(config_file))
    return [f for f in files if f.is_file()]


def pip_resolution_settings(environ: Mapping[str, str], hashes: FileHashes | None = None) -> dict[str, Any]:
    """The user's pip settings (config files and ``PIP_*`` variables) that change what pip installs.

    Find-links folders count by the content of their archives, constraints files by their content.
    """
    hashes = FileHashes() if hashes is None else hashes
    settings: dict[str, Any] = {}
    for path in pip_config_files(environ):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            settings[f"unreadable:{path}"] = True  # pip will complain; the key still notices the file
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                for option, value in parser.items(section):
                    if option.replace("_", "-") in _PIP_RESOLUTION_SETTINGS:
                        settings[f"{section}.{option}"] = value
                        settings.update(_contents(f"{section}.{option}", value.split(), hashes))
    for name, value in environ.items():
        if name.startswith("PIP_") and name[4:].lower().replace("_", "-") in _PIP_RESOLUTION_SETTINGS:
            settings[name] = value
            settings.update(_contents(name, value.split(), hashes))
    return settings


def _contents(name: str, values: list[str], hashes: FileHashes) -> dict[str, Any]:
    """Key material for the files a find-links or constraint setting names (others: nothing)."""
    setting = name.rsplit(".", 1)[-1].lower().replace("_", "-")
    if setting.endswith("find-links"):
        return {f"{name}:contents": [location_material(v, hashes) for v in values]}
    if setting.endswith("constraint"):
        material = []
        for value in values:
            path = _local_path(value, None)
            try:
                material.append(requirements_material(path, hashes) if path and path.is_file() else value)
            except SpecError as exc:  # the installer will refuse it too; the key still sees the broken file
                material.append(str(exc))
        return {f"{name}:contents": material}
    return {}


# uv settings that change what ``uv pip install`` resolves or how it builds (environment variables;
# config files count whole). Cache, network and output settings stay out of the key.
_UV_RESOLUTION_VARIABLES = frozenset(
    {
        "UV_INDEX", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_NO_INDEX",
        "UV_INDEX_STRATEGY", "UV_PRERELEASE", "UV_RESOLUTION", "UV_CONSTRAINT", "UV_BUILD_CONSTRAINT",
        "UV_OVERRIDE", "UV_EXCLUDE_NEWER", "UV_NO_BINARY", "UV_NO_BINARY_PACKAGE", "UV_NO_BUILD",
        "UV_NO_BUILD_PACKAGE", "UV_NO_BUILD_ISOLATION", "UV_NO_BUILD_ISOLATION_PACKAGE", "UV_CONFIG_SETTINGS",
        "UV_TORCH_BACKEND", "UV_NO_SOURCES", "UV_CONFIG_FILE", "UV_NO_CONFIG",
    }
)  # fmt: skip


def uv_config_files(environ: Mapping[str, str]) -> list[Path]:
    """The uv configuration files uv itself would read for a command run outside any project.

    ``UV_CONFIG_FILE`` replaces every discovered file and ``UV_NO_CONFIG`` turns discovery off.
    Otherwise the user's file, then the first system file found.
    """
    if environ.get("UV_NO_CONFIG"):
        return []
    if environ.get("UV_CONFIG_FILE"):
        return [Path(environ["UV_CONFIG_FILE"])]
    if sys.platform == "win32":
        user = [Path(environ.get("APPDATA", Path.home() / "AppData" / "Roaming"), "uv", "uv.toml")]
        system = [Path(environ.get("SYSTEMDRIVE", "C:") + "\\", "ProgramData", "uv", "uv.toml")]
    else:
        user = [Path(environ.get("XDG_CONFIG_HOME") or Path.home() / ".config", "uv", "uv.toml")]
        system = [Path(d, "uv", "uv.toml") for d in (environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":") if d]
        system.append(Path("/etc/uv/uv.toml"))
    found = [f for f in user if f.is_file()]
    return found + [f for f in system if f.is_file()][:1]


def uv_resolution_settings(environ: Mapping[str, str], hashes: FileHashes | None = None) -> dict[str, Any]:
    """The user's uv settings (config files and ``UV_*`` variables) that change what uv installs."""
    hashes = FileHashes() if hashes is None else hashes
    settings: dict[str, Any] = {f"file:{path}": hashes.file_or_none(path) for path in uv_config_files(environ)}
    for name, value in environ.items():
        if name in _UV_RESOLUTION_VARIABLES:
            settings[name] = value
            if name in ("UV_FIND_LINKS", "UV_CONSTRAINT"):
                settings.update(_contents(name, value.replace(",", " ").split(), hashes))
    return settings
