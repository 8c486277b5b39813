"""Finding the interpreter an env is built on, and what identifies it in the key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_discovery import DiskCache, PythonInfo, get_interpreter

from .errors import InterpreterNotFound


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
    venv_paths: tuple[tuple[str, str], ...] = ()
    """Where a venv of this interpreter keeps ``scripts``, ``purelib`` and ``platlib``, relative to its root."""

    @classmethod
    def from_info(cls, info: PythonInfo) -> Interpreter:
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


class Discovery:
    """Resolves ``python=`` specs to interpreters, caching what it learns on disk under *cache_dir*."""

    def __init__(self, cache_dir: Path) -> None:
        self._cache = DiskCache(cache_dir)
        self._found: dict[str | None, Interpreter] = {}

    def find(self, spec: str | None, *, where: str | None = None) -> Interpreter:
        """The interpreter for *spec*; ``None`` means the one running pytest."""
        if spec not in self._found:
            if spec is None:
                info: PythonInfo | None = PythonInfo.current_system(self._cache)
            else:
                info = get_interpreter(spec, cache=self._cache, env=os.environ)
            if info is None:
                raise InterpreterNotFound(str(spec), ["PATH", "uv-managed Pythons"], where=where)
            self._found[spec] = Interpreter.from_info(info)
        return self._found[spec]
