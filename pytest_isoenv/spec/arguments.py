"""The marker's and ``get()``'s keyword arguments, defined once, and the checks of single arguments.

:class:`EnvOptions` is the one definition of the keywords that
``@pytest.mark.isoenv(...)`` and :meth:`pytest_isoenv.IsoEnvFactory.get` take:
their names, types, defaults and what each does. The marker's help text, the
fixtures' docstrings and the reference are made from it, and
:func:`bind_options` refuses any other keyword, whichever way it came.

:meth:`pytest_isoenv.spec.envspec.EnvSpec.from_arguments` validates a whole set of
arguments; the checks below are the ones it repeats for several of them. Each either
returns the value in its normalised form or raises :class:`SpecError` naming the
argument, the value and the fix.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypedDict, cast, get_type_hints

from pytest_isoenv.errors import SpecError
from pytest_isoenv.spec.reqfiles import ARCHIVE_SUFFIXES, is_url

#: A path as the marker and ``get()`` take it.
PathArg = str | os.PathLike[str]

#: The choices of ``--isoenv-resolution``: which versions the installer picks among those allowed.
RESOLUTIONS = ("highest", "lowest-direct", "lowest")

#: The files that make a folder a Python project.
PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")


@dataclass(frozen=True)
class Keyword:
    """What :class:`EnvOptions` says of one keyword besides its type: its default and what it does."""

    default: object
    """The value an omitted keyword has, as the signature shows it."""
    doc: str
    """What the keyword does, in reStructuredText, for the reference."""


class EnvOptions(TypedDict, total=False):
    """The keyword arguments of ``@pytest.mark.isoenv(...)`` and ``isoenv_factory.get()``; each is optional.

    Each is annotated with its type and a ``Keyword`` giving its default
    and what it does. A keyword that is not here is refused with a
    :class:`~pytest_isoenv.SpecError` naming the test, the value and these names.
    """

    editable: Annotated[
        PathArg | Sequence[PathArg],
        Keyword(
            (),
            "A path or a list of paths of local projects, installed in editable mode, each optionally followed "
            'by extras (``".[cli]"``). In the marker, a list inside the list is a set of alternatives.',
        ),
    ]
    constraints: Annotated[PathArg | None, Keyword(None, "A constraints file (pip's ``-c``).")]
    requirements_files: Annotated[
        PathArg | Sequence[PathArg],
        Keyword((), "A path or a list of paths of requirements files (pip's ``-r``)."),
    ]
    groups: Annotated[
        str | Sequence[str],
        Keyword(
            (),
            "A name or a list of names of PEP 735 dependency groups of the rootdir's ``pyproject.toml`` "
            '(``"test"``), or of another one (``"sub/pyproject.toml:test"``), installed as the requirements '
            "they resolve to, includes expanded. Keyed by their content.",
        ),
    ]
    lock: Annotated[
        PathArg | None,
        Keyword(
            None,
            "A lock file the environment is exactly: a PEP 751 ``pylock.toml`` (or ``pylock.<name>.toml``) or a "
            "project's ``uv.lock``, installed as pinned, with no resolution and hashes checked, by uv. Keyed by its "
            "content and the local files it names. Takes no other packages but ``editable=`` projects, installed "
            "on top without their dependencies (see :doc:`how-to/lock-files`).",
        ),
    ]
    python: Annotated[
        PathArg | None,
        Keyword(
            None,
            'The interpreter the environment is built on: a version such as ``"3.12"``, a spec such as '
            '``"pypy3.10"`` or ``">=3.11"``, or a path. Default: the interpreter running pytest. In the marker, '
            "a list of them runs the test once per interpreter (see :doc:`how-to/ci-matrix`).",
        ),
    ]
    private: Annotated[
        bool,
        Keyword(
            False,
            "``True`` gives the test an environment of its own that it may change (see :doc:`how-to/private-envs`).",
        ),
    ]
    installer: Annotated[
        str | None,
        Keyword(
            None,
            'Which installer builds this environment: ``"auto"``, ``"pip"`` or ``"uv"`` (default: the session\'s).',
        ),
    ]
    find_links: Annotated[
        PathArg | Sequence[PathArg],
        Keyword(
            (),
            "A folder or URL, or a list of them, where the installer looks for packages for this environment, "
            "besides the session's ``isoenv_find_links``. A folder is keyed by the files in it.",
        ),
    ]
    index_url: Annotated[
        str | None,
        Keyword(None, "The package index of this environment, instead of the session's ``isoenv_index_url``."),
    ]
    warm: Annotated[
        bool,
        Keyword(
            False,
            "``True`` runs the environment's Python programs (``python -c``, ``-m``, a script, a console script) "
            "in forks of an interpreter of the environment that started once: a few milliseconds a call instead "
            "of an interpreter's start (see :doc:`how-to/warm`). Not part of the key.",
        ),
    ]
    preload: Annotated[
        str | Sequence[str],
        Keyword(
            (),
            "A module name or a list of them that the warm interpreter imports once, before it serves any call "
            "(needs ``warm=True``). Not part of the key.",
        ),
    ]


@functools.cache
def keywords() -> dict[str, Keyword]:
    """Each keyword of :class:`EnvOptions` with its :class:`Keyword`, in the order the signature lists them."""
    hints = get_type_hints(EnvOptions, include_extras=True)
    return {name: next(m for m in hint.__metadata__ if isinstance(m, Keyword)) for name, hint in hints.items()}


def signature() -> str:
    """The marker's and ``get()``'s arguments as their signature reads: ``*requirements, editable=(), ...``."""
    return ", ".join(["*requirements", *(f"{name}={kw.default!r}" for name, kw in keywords().items())])


def bind_options(given: Mapping[str, object], where: str | None) -> EnvOptions:
    """*given* (a marker's keyword arguments, or ``get()``'s) as :class:`EnvOptions`, or a :class:`SpecError`.

    The names are checked, not the values: :meth:`~pytest_isoenv.spec.envspec.EnvSpec.from_arguments`
    checks those. A misspelled name is told the accepted name it is closest to.
    """
    accepted = keywords()
    unknown = [name for name in given if name not in accepted]
    if unknown:
        given_as = []
        for name in unknown:
            close = difflib.get_close_matches(name, accepted, n=1)
            given_as.append(f"{name}={given[name]!r}" + (f" (did you mean {close[0]}?)" if close else ""))
        raise SpecError(
            f"unknown isoenv argument(s) {', '.join(map(repr, unknown))}: {', '.join(given_as)}",
            where=where,
            fix=f"The accepted keyword arguments are: {', '.join(accepted)}",
        )
    return cast("EnvOptions", dict(given))


def as_paths(value: object, name: str, where: str | None) -> list[PathArg]:
    """Argument *name*: one path or a list of them (``None``: none)."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [as_path(v, name, where) for v in value]
    raise SpecError(f"{name}={value!r} is not a path or a list of paths", where=where)


def as_path(value: object, name: str, where: str | None) -> PathArg:
    """One entry of argument *name*, which must be a path."""
    if isinstance(value, (str, os.PathLike)):
        return value
    raise SpecError(f"{name} entry {value!r} is a {type(value).__name__}, not a path", where=where)


def resolve(value: PathArg, rootdir: Path) -> Path:
    """*value* with ``~`` expanded, made absolute against *rootdir* (``abspath``: links are not resolved)."""
    path = Path(os.path.expanduser(os.fspath(value)))
    return Path(os.path.abspath(rootdir / path))


def find_link(value: PathArg, rootdir: Path) -> str:
    """A find-links location: URLs as given, paths made absolute against *rootdir*."""
    text = os.fspath(value).strip()
    if is_url(text):
        return text
    return str(resolve(text, rootdir))


def local_source(value: PathArg, rootdir: Path, where: str | None) -> Path:
    """A local requirement: a wheel or sdist, or a project folder (see :func:`project_dir`)."""
    path = resolve(value, rootdir)
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        return path
    return project_dir(value, rootdir, where, "local requirement")


def project_dir(value: PathArg, rootdir: Path, where: str | None, what: str) -> Path:
    """*value* resolved: a folder with ``pyproject.toml``, ``setup.py`` or ``setup.cfg``; *what* names it in errors."""
    path = _existing(value, rootdir, where, f"{what} path", Path.exists)
    if not path.is_dir() or not any((path / name).is_file() for name in PROJECT_FILES):
        raise SpecError(
            f"{what} path {os.fspath(value)!r} is not a Python project (resolved to {path})",
            where=where,
            fix="Point it at a directory holding pyproject.toml, setup.py or setup.cfg, or at a wheel or sdist",
        )
    return path


def existing_file(value: PathArg, rootdir: Path, where: str | None, what: str) -> Path:
    """*value* resolved: a file that exists; *what* names it in errors."""
    return _existing(value, rootdir, where, what, Path.is_file)


def _existing(value: PathArg, rootdir: Path, where: str | None, what: str, exists: Callable[[Path], bool]) -> Path:
    path = resolve(value, rootdir)
    if not exists(path):
        raise SpecError(
            f"{what} {os.fspath(value)!r} does not exist (resolved to {path})",
            where=where,
            fix="Relative paths resolve against pytest's rootdir; check the path",
        )
    return path


def module_names(value: object, where: str | None) -> tuple[str, ...]:
    """``preload=``: one dotted module name or a list of them, each checked, in the order given."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)):
        raise SpecError(f"preload={value!r} is not a module name or a list of them", where=where)
    for name in names:
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise SpecError(
                f"preload entry {name!r} is not a module name",
                where=where,
                fix='Use importable dotted names such as "requests" or "mypkg.cli"',
            )
    return tuple(dict.fromkeys(names))
