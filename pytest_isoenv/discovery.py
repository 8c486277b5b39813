"""Finding the interpreters envs are built on, and what identifies one in the key.

python-discovery (virtualenv's discovery) does the searching and the spec
matching: the running interpreter, ``PATH``, uv-managed Pythons and, on
Windows, the PEP 514 registry the ``py`` launcher reads. On top of that, the
versions pyenv installed are searched directly: its shims answer only for the
active version, so a Python that pyenv installed but did not activate is found
nowhere else. The folders of uv's Pythons, which errors name and which tell
that a Python came from uv, are the ones uv documents (:func:`uv_python_roots`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from pytest_isoenv.errors import InterpreterNotFound, SpecError

if TYPE_CHECKING:
    from python_discovery import PythonInfo, PythonSpec


def uv_python_roots(environ: Mapping[str, str]) -> list[Path]:
    """Where uv keeps the Pythons it manages (``uv python dir``), as uv's storage reference documents it.

    ``$UV_PYTHON_INSTALL_DIR``, else ``python`` in uv's persistent data
    directory: on Windows ``%APPDATA%\\uv\\data`` (the roaming application
    data folder), elsewhere ``$XDG_DATA_HOME/uv`` or ``~/.local/share/uv``
    (uv follows the XDG convention on macOS too). Read from *environ*, the
    variables discovery runs with; an empty list where none of them says.
    """
    install_dir = environ.get("UV_PYTHON_INSTALL_DIR")
    if install_dir:
        return [Path(os.path.expanduser(install_dir))]
    if sys.platform == "win32":
        app_data = environ.get("APPDATA") or platformdirs.user_data_dir(roaming=True)
        return [Path(app_data) / "uv" / "data" / "python"]
    data_home = Path(environ.get("XDG_DATA_HOME", ""))
    if not data_home.is_absolute():  # a relative one is ignored, as the XDG specification and uv say
        home = environ.get("HOME")
        if not home:
            return []
        data_home = Path(home) / ".local" / "share"
    return [data_home / "uv" / "python"]


#: Where in a pyenv version folder its interpreter lives, best first (pyenv-win puts ``python.exe`` at the top).
_PYENV_EXECUTABLES = ("bin/python3", "bin/python", "python.exe", "bin/pypy3", "pypy3.exe")

#: How python-discovery words an interpreter too old for it to query (it logs this, or raises it).
_TOO_OLD = re.compile(r"(?P<exe>.+) is Python (?P<version>\S+), older than the minimum \S+ python-discovery can query")


class _TooOld(logging.Filter):
    """Takes python-discovery's "too old to query" warnings off stderr and remembers them."""

    def __init__(self, found: dict[Path, str]) -> None:
        super().__init__()
        self.found = found

    def filter(self, record: logging.LogRecord) -> bool:
        match = _TOO_OLD.match(record.getMessage())
        if match is None:
            return True
        self.found[Path(match["exe"])] = match["version"]
        return False


class _PassOn(logging.Handler):
    """Hands what *catch* lets through to the root logger's handlers, as propagation would have."""

    def __init__(self, catch: logging.Filter) -> None:
        super().__init__()
        self.addFilter(catch)

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


SPEC_FIX = 'Use a version such as "3.12", "py312", "pypy3.10", "3.13t", ">=3.11", or a path to an interpreter'


@dataclass(frozen=True)
class Interpreter:
    """A base (non-virtual) interpreter that envs can be created from."""

    executable: Path
    """The real executable, links and shims resolved."""
    version: str
    """The full ``sys.version`` text: a rebuild or upgrade in place changes it."""
    version_info: tuple[int, int, int]
    implementation: str
    architecture: int
    machine: str
    free_threaded: bool
    found_in: str = field(default="", compare=False)
    """Where discovery found it: ``running pytest``, ``PATH``, ``pyenv``, ``uv``, ``given path``..."""
    venv_paths: tuple[tuple[str, str], ...] = ()
    """Where a venv of this interpreter keeps ``scripts``, ``purelib`` and ``platlib``, relative to its root."""

    @classmethod
    def from_info(cls, info: PythonInfo, found_in: str = "") -> Interpreter:
        exe = info.system_executable or info.executable
        assert exe is not None
        return cls(
            executable=Path(os.path.realpath(exe)),
            version=info.version,
            version_info=(info.version_info.major, info.version_info.minor, info.version_info.micro),
            implementation=info.implementation,
            architecture=info.architecture,
            machine=info.machine,
            free_threaded=bool(getattr(info, "free_threaded", False)),
            found_in=found_in,
            venv_paths=tuple((key, info.install_path(key)) for key in ("scripts", "purelib", "platlib")),
        )

    def key_material(self) -> dict[str, Any]:
        """What identifies this interpreter in a cache key."""
        return {
            "executable": str(self.executable),
            "version": self.version,
            "implementation": self.implementation,
            "architecture": self.architecture,
            "machine": self.machine,
            "free_threaded": self.free_threaded,
        }

    @property
    def label(self) -> str:
        """A short name such as ``py3.12`` or ``pypy3.10``, for test ids and reports."""
        prefix = "py" if self.implementation == "CPython" else self.implementation.lower()
        major, minor, _ = self.version_info
        return f"{prefix}{major}.{minor}{'t' if self.free_threaded else ''}"

    @property
    def version_text(self) -> str:
        """``3.12.1``: the version numbers alone."""
        return ".".join(map(str, self.version_info))


def parse_spec(spec: str, *, where: str | None = None) -> PythonSpec:
    """*spec* parsed the way discovery reads it; :class:`SpecError` if it cannot name an interpreter."""
    from python_discovery import KNOWN_IMPLEMENTATIONS, PythonSpec

    try:
        parsed = PythonSpec.from_string_spec(spec)
    except ValueError as exc:
        raise SpecError(f"python={spec!r} is not an interpreter spec ({exc})", where=where, fix=SPEC_FIX) from None
    implementation = parsed.implementation
    if implementation is not None and implementation.lower() not in KNOWN_IMPLEMENTATIONS:
        # A typo ("snakes3"), not an interpreter that happens to be missing: it must not turn into a skip.
        raise SpecError(
            f"python={spec!r} is not an interpreter spec ({implementation!r} is no Python implementation)",
            where=where,
            fix=f'Use a version such as "3.12", "py312", ">=3.11", one of {", ".join(KNOWN_IMPLEMENTATIONS)} '
            "with a version, or a path to an interpreter",
        )
    # What python-discovery reads no version or implementation from, it takes for the name of a program: a typo
    # such as "3.1O" would then match any interpreter (pyenv's 2.7 among them) or none, never say it is a typo.
    if parsed.path is not None and not _names_a_path(spec):
        raise SpecError(
            f"python={spec!r} is malformed: it is neither a version nor a path to an interpreter",
            where=where,
            fix=SPEC_FIX,
        )
    return parsed


def _names_a_path(spec: str) -> bool:
    return spec.startswith("~") or any(sep and sep in spec for sep in (os.sep, os.altsep))


def is_path_spec(spec: str) -> bool:
    """Whether *spec* names an interpreter by its path rather than by what it is."""
    return parse_spec(spec).is_abs


def spec_label(spec: str) -> str:
    """A short name for *spec* in test ids: ``py3.12``, ``pypy3.10``, ``py3.13t``, ``py>=3.11``.

    Made from the spec alone, not from what it finds, so a test has the same id
    on every machine and in every xdist worker. ``3.12``, ``py312`` and
    ``cpython3.12`` all read ``py3.12``; a path is its own label.
    """
    parsed = parse_spec(spec)
    if parsed.path is not None:
        return spec
    impl = (parsed.implementation or "cpython").lower()
    label = "py" if impl == "cpython" else impl
    if parsed.version_specifier is not None:
        label += re.sub(r"\s+", "", str(parsed.version_specifier))
    else:
        label += ".".join(str(part) for part in (parsed.major, parsed.minor, parsed.micro) if part is not None)
    label += "t" if parsed.free_threaded else ""
    label += "d" if parsed.debug else ""
    label += f"-{parsed.architecture}" if parsed.architecture else ""
    label += f"-{parsed.machine}" if parsed.machine else ""
    return label


def pyenv_root(environ: Mapping[str, str]) -> Path:
    """pyenv's root folder: ``$PYENV_ROOT``, else where pyenv (or pyenv-win) installs itself by default."""
    root = environ.get("PYENV_ROOT")
    if root:
        return Path(os.path.expanduser(root))
    return Path(os.path.expanduser("~/.pyenv/pyenv-win" if sys.platform == "win32" else "~/.pyenv"))


def _release(name: str) -> tuple[int, ...]:
    """The version numbers a pyenv version folder's name starts with (``pypy3.10-7.3.12`` -> 3, 10)."""
    found = re.search(r"\d+(?:\.\d+)*", name)
    return tuple(int(part) for part in found.group().split(".")) if found else ()


class Discovery:
    """Resolves ``python=`` specs to interpreters, caching what it learns on disk under *cache_dir*.

    *environ* (default: ``os.environ``) supplies ``PATH``, ``PYENV_ROOT`` and
    uv's settings.
    """

    def __init__(self, cache_dir: Path, environ: Mapping[str, str] | None = None) -> None:
        from python_discovery import DiskCache

        self._cache = DiskCache(cache_dir)
        env = dict(os.environ if environ is None else environ)
        self.pyenv_versions = pyenv_root(env) / "versions"
        if "PATH" in env:
            # A pyenv shim is a shell script that runs only the active version: probing each one costs a
            # process and seconds in all, and finds nothing the scan of the pyenv versions folder misses.
            shims = os.path.normcase(os.path.abspath(self.pyenv_versions.parent / "shims"))
            entries = env["PATH"].split(os.pathsep)
            env["PATH"] = os.pathsep.join(p for p in entries if os.path.normcase(os.path.abspath(p or ".")) != shims)
        self._env = env
        self._found: dict[str | None, tuple[Interpreter, PythonInfo]] = {}
        #: Interpreters found but too old to make envs from (python-discovery cannot query them), with their version.
        self.too_old: dict[Path, str] = {}

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """While discovery runs: what it would log about too-old interpreters is remembered, not printed."""
        # Caught where python-discovery's records meet, whichever of its modules logs one (a logger's filters do not
        # see its children's records): its package logger passes them on to the root's handlers, less these.
        logger = logging.getLogger("python_discovery")
        catch = _TooOld(self.too_old)
        passed_on = _PassOn(catch)
        logger.addHandler(passed_on)
        propagate, logger.propagate = logger.propagate, False
        try:
            yield
        finally:
            logger.propagate = propagate
            logger.removeHandler(passed_on)

    def find(self, spec: str | None, *, where: str | None = None) -> Interpreter:
        """The interpreter for *spec*; ``None`` means the one running pytest.

        Raises :class:`InterpreterNotFound` naming where it looked, or
        :class:`SpecError` if *spec* cannot name an interpreter.
        """
        if spec not in self._found:
            with self._quiet():
                self._found[spec] = self._find(spec, where)
        return self._found[spec][0]

    def _find(self, spec: str | None, where: str | None) -> tuple[Interpreter, PythonInfo]:
        from python_discovery import PythonInfo, get_interpreter

        if spec is None:
            info = PythonInfo.current_system(self._cache)
            return Interpreter.from_info(info, "running pytest"), info
        parsed = parse_spec(spec, where=where)
        try:
            found = get_interpreter(spec, cache=self._cache, env=self._env)
        except RuntimeError as exc:  # a path to something that is not a Python python-discovery can query
            raise SpecError(
                f"python={spec!r} cannot be used: {exc}",
                where=where,
                fix='Point it at a Python 3 interpreter, or name a version such as "3.12"',
            ) from None
        if found is not None:
            return Interpreter.from_info(found, self._origin(found, parsed)), found
        if not parsed.is_abs:
            for info in self._pyenv_infos():
                if info.satisfies(parsed, impl_must_match=True):
                    return Interpreter.from_info(info, "pyenv"), info
            for exe, version in self.too_old.items():
                if parse_spec(version).satisfies(parsed):
                    raise SpecError(
                        f"python={spec!r} finds only {exe}, Python {version}, which is too old to make envs from "
                        "(python-discovery, which virtualenv and pytest-isoenv use, cannot query it)",
                        where=where,
                        fix="Test on Python 3.9 or newer: install one and name its version in python=",
                    )
        raise InterpreterNotFound(spec, self.looked_in(spec), where=where)

    def covers(self, spec: str, wanted: str) -> bool:
        """Whether the interpreter *spec* stands for also satisfies the spec *wanted*.

        ``3.12`` covers ``>=3.11`` and ``cpython3.12``. A spec that finds
        nothing is compared as a spec (``3.14`` covers ``>=3.12`` even where no
        3.14 is installed), except against a path, which only it can cover.
        """
        if spec == wanted:
            return True
        try:
            interpreter = self.find(spec)
        except InterpreterNotFound:
            return not is_path_spec(wanted) and parse_spec(spec).satisfies(parse_spec(wanted))
        if is_path_spec(wanted):
            try:
                return self.find(wanted).executable == interpreter.executable
            except InterpreterNotFound:
                return False
        return self._found[spec][1].satisfies(parse_spec(wanted), impl_must_match=True)

    def available(self) -> list[Interpreter]:
        """Every interpreter discovery can find, of any implementation, sorted by implementation and version.

        Those too old to make envs from are in :attr:`too_old` afterwards.
        """
        with self._quiet():
            return self._available()

    def _available(self) -> list[Interpreter]:
        from python_discovery import PythonInfo, PythonSpec, iter_interpreters

        seen: dict[Path, Interpreter] = {}
        current = Interpreter.from_info(PythonInfo.current_system(self._cache), "running pytest")
        seen[current.executable] = current
        every = PythonSpec("", None, None, None, None, None, None)
        for info in iter_interpreters(None, cache=self._cache, env=self._env):
            interpreter = Interpreter.from_info(info, self._origin(info, every))
            seen.setdefault(interpreter.executable, interpreter)
        for info in self._pyenv_infos():
            interpreter = Interpreter.from_info(info, "pyenv")
            seen.setdefault(interpreter.executable, interpreter)
        return sorted(seen.values(), key=lambda i: (i.implementation != "CPython", i.implementation, i.version_info))

    def looked_in(self, spec: str) -> list[str]:
        """The places a search for *spec* covers, for error messages."""
        if parse_spec(spec).is_abs:
            return [spec]
        places = ["the running interpreter", "PATH"]
        if sys.platform == "win32":
            places.append("the Windows registry (as the py launcher)")
        places.append(f"pyenv versions ({self.pyenv_versions})")
        uv_roots = [str(root) for root in uv_python_roots(self._env)]
        places.append(f"uv-managed Pythons ({', '.join(uv_roots)})" if uv_roots else "uv-managed Pythons")
        return places

    def _pyenv_infos(self) -> Iterator[PythonInfo]:
        """The interpreters of every pyenv version, newest first; ones that cannot be queried are left out."""
        from python_discovery import PythonInfo

        try:
            versions = sorted(
                (entry for entry in self.pyenv_versions.iterdir() if entry.is_dir()),
                key=lambda entry: (_release(entry.name), entry.name),
                reverse=True,
            )
        except OSError:
            return
        for version in versions:
            exe = next((version / name for name in _PYENV_EXECUTABLES if (version / name).is_file()), None)
            if exe is None:
                continue
            try:
                info = PythonInfo.from_exe(str(exe), self._cache, raise_on_error=True, env=self._env)
            except Exception as exc:
                # Remembered when python-discovery refuses it as too old; it says so only on its first query.
                too_old = _TOO_OLD.match(str(exc))
                if too_old is not None:
                    self.too_old[exe] = too_old["version"]
                continue
            if info is not None:
                yield info

    def _origin(self, info: PythonInfo, parsed: PythonSpec) -> str:
        """Where *info* was found, in a word or two, for ``--isoenv-pythons`` and the report header."""
        from python_discovery import PythonInfo

        exe = Path(os.path.realpath(info.system_executable or info.executable or ""))
        # A manager's folder may hold only links to the interpreter, so the path it was run by counts too.
        paths = [exe, *(Path(p) for p in (info.executable, info.system_executable) if p)]
        current = PythonInfo.current_system(self._cache)
        if parsed.is_abs:
            return "given path"
        if exe == Path(os.path.realpath(current.system_executable or current.executable or "")):
            return "running pytest"
        if any(_is_within(path, self.pyenv_versions) for path in paths):
            return "pyenv"
        uv_roots = uv_python_roots(self._env)
        if any(_is_within(path, root) for path in paths for root in uv_roots):
            return "uv"
        if sys.platform == "win32":
            on_path = {Path(os.path.realpath(p)) for p in self._env.get("PATH", "").split(os.pathsep) if p}
            if exe.parent not in on_path:
                return "Windows registry"
        return "PATH"


def _is_within(path: Path, folder: Path) -> bool:
    return path.is_relative_to(folder) or path.is_relative_to(os.path.realpath(folder))
