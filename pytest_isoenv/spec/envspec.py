"""EnvSpec: a frozen, normalised description of one environment, and what of it goes into its key.

Everything a test says about the env it wants (marker or factory arguments) is
validated and normalised here, before anything touches the cache, so that two
specs that mean the same env compare equal and hash to the same key.
:meth:`EnvSpec.key_material` is the spec's part of the key; the key itself is
made by :func:`pytest_isoenv.key.material.compute_key`. The checks of single arguments
(paths, lists of paths, module names) are in :mod:`pytest_isoenv.spec.arguments`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import Specifier
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pytest_isoenv.discovery import parse_spec
from pytest_isoenv.errors import SpecError
from pytest_isoenv.spec import groups as dependency_groups
from pytest_isoenv.spec.arguments import (
    EnvOptions,
    PathArg,
    as_path,
    as_paths,
    bind_options,
    existing_file,
    find_link,
    keywords,
    local_source,
    module_names,
    project_dir,
    resolve,
)
from pytest_isoenv.spec.labels import file_label, project_label, source_label
from pytest_isoenv.spec.lockfiles import LOCK_FIX, check_lock, lock_needs_uv
from pytest_isoenv.spec.reqfiles import looks_like_path, walk_requirements

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11


def normalize_specifier(specifier: Specifier) -> str:
    """A specifier's text with trailing ``.0`` release parts dropped where PEP 440 compares them as equal.

    ``>=2``, ``>=2.0`` and ``>=2.0.0`` are one specifier: comparison operators pad releases with zeros.
    ``~=`` (its length is its meaning), ``===`` (text), ``==``/``!=`` wildcards (``==2.*`` is not
    ``==2.0.*``) and local versions stay as written.
    """
    operator, version = specifier.operator, specifier.version
    if operator in ("~=", "===") or version.endswith(".*") or "+" in version:
        return str(specifier)
    try:
        parsed = Version(version)
    except InvalidVersion:
        return str(specifier)
    release = list(parsed.release)
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    text = (f"{parsed.epoch}!" if parsed.epoch else "") + ".".join(map(str, release))
    text += "".join(map(str, parsed.pre or ()))
    text += f".post{parsed.post}" if parsed.post is not None else ""
    text += f".dev{parsed.dev}" if parsed.dev is not None else ""
    return operator + text


def normalize_requirement(req: Requirement, *, for_key: bool = False) -> str:
    """The canonical text of a requirement: canonical name, sorted extras, sorted specifiers.

    *for_key*: with specifiers in the form :func:`normalize_specifier` gives, for the cache key (what
    reports show keeps the version as written).
    """
    text: str = canonicalize_name(req.name)
    if req.extras:
        text += "[" + ",".join(sorted(canonicalize_name(e) for e in req.extras)) + "]"
    if req.url:
        text += f" @ {req.url}"
        if req.marker:
            text += " "
    else:
        # SpecifierSet prints its members sorted; the key also merges the ones PEP 440 says are equal.
        text += ",".join(sorted({normalize_specifier(s) for s in req.specifier})) if for_key else str(req.specifier)
    if req.marker:
        text += f"; {req.marker}"
    return text


_EXTRAS = re.compile(r"^(?P<path>.+?)\[(?P<extras>[^\[\]]*)\]$")
_EXTRA_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def split_extras(text: str, rootdir: Path, where: str | None = None) -> tuple[str, tuple[str, ...]]:
    """A local path with extras (``"./pkg[cli,test]"``) as the path and its canonical extras, sorted.

    Text that is not a path followed by extras (a requirement such as ``"attrs[tests]"``, or an
    existing file or folder whose name ends in brackets) comes back unchanged, with no extras.
    """
    match = _EXTRAS.match(text.strip())
    if match is None or resolve(text.strip(), rootdir).exists():
        return text, ()
    path = match["path"].strip()
    names = [name.strip() for name in match["extras"].split(",")]
    bad = [name for name in names if not _EXTRA_NAME.match(name)]
    if bad and looks_like_path(path):
        raise SpecError(
            f"{text!r} names extras that are not extra names ({', '.join(map(repr, bad))})",
            where=where,
            fix='Write extras after the path as in "./my-project[cli,test]"',
        )
    if bad:
        return text, ()
    return path, tuple(sorted({canonicalize_name(name) for name in names}))


@dataclass(frozen=True)
class EnvSpec:
    """What one isolated environment contains, validated and normalised.

    Build it with :meth:`from_arguments`; the constructor trusts its input.
    Equal specs describe the same env. ``private``, ``warm`` and ``preload``
    say how the env is handed out, not what it is, so they are not part of the key.
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
    extras: tuple[tuple[Path, tuple[str, ...]], ...] = ()
    """The extras asked for of local and editable projects (``"./pkg[cli]"``), by path."""
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """PEP 735 dependency groups: each entry as given and the requirements it resolved to, canonicalised."""
    find_links: tuple[str, ...] = ()
    """This env's own find-links locations (URLs, or absolute paths), looked in besides the session's."""
    index_url: str | None = None
    """This env's own package index, instead of the session's."""
    lock: Path | None = None
    """Absolute path of the lock file (``pylock.toml`` or ``uv.lock``) the env is exactly, with its ``editable`` on top."""
    resolution: str = "highest"
    """Which versions the installer picks among those allowed: one of :data:`~pytest_isoenv.spec.arguments.RESOLUTIONS`."""
    coverage: str | None = None
    """The coverage.py version installed to measure the env's processes: set only while the session
    measures coverage (the host's version, so the data combine), else ``None``."""
    private: bool = field(default=False, compare=False)
    """Whether the test gets its own, changeable copy."""
    warm: bool = field(default=False, compare=False)
    """Whether the env's Python programs run in forks of a warm interpreter (see :mod:`pytest_isoenv.run.warm`)."""
    preload: tuple[str, ...] = field(default=(), compare=False)
    """Modules the warm interpreter imports once, before it serves any call."""
    rootdir: Path | None = field(default=None, compare=False)
    """Where relative paths were resolved: :meth:`describe` names files relative to it."""

    @classmethod
    def from_arguments(
        cls,
        requirements: Iterable[object] = (),
        *,
        rootdir: Path,
        where: str | None = None,
        **options: Unpack[EnvOptions],
    ) -> EnvSpec:
        """Validate marker or factory arguments and normalise them into a spec.

        Relative paths resolve against *rootdir*. *where* names the test in
        errors. Raises :class:`SpecError` on anything that cannot describe an env,
        a keyword that is not one of :class:`~pytest_isoenv.spec.arguments.EnvOptions` included.
        """
        # The values are checked here, one by one: what a marker holds is not typed.
        given: dict[str, object] = {name: keyword.default for name, keyword in keywords().items()}
        given.update(bind_options(options, where))
        reqs: set[str] = set()
        local: list[Path] = []
        extras: dict[Path, set[str]] = {}
        for item in requirements:
            if isinstance(item, os.PathLike):
                local.append(local_source(item, rootdir, where))
            elif isinstance(item, (list, tuple)):
                raise SpecError(
                    f"requirement {item!r} is a list of alternatives, which only a marker can run a test over",
                    where=where,
                    fix="Pass one requirement to isoenv_factory.get(), or put the list in @pytest.mark.isoenv(...)",
                )
            elif not isinstance(item, str):
                raise SpecError(
                    f"requirement {item!r} is a {type(item).__name__}, not a string",
                    where=where,
                    fix='Pass PEP 508 strings such as "requests>=2.28" or paths to local projects',
                )
            else:
                text = item.strip()
                path, wanted = split_extras(text, rootdir, where)
                if looks_like_path(text) or (wanted and looks_like_path(path)):
                    local.append(local_source(path, rootdir, where))
                    extras.setdefault(local[-1], set()).update(wanted)
                else:
                    reqs.add(_parse_requirement(item, where))

        editable = []
        for entry in as_paths(given["editable"], "editable", where):
            wanted = ()
            if isinstance(entry, str):
                entry, wanted = split_extras(entry, rootdir, where)
            editable.append(project_dir(entry, rootdir, where, "editable"))
            extras.setdefault(editable[-1], set()).update(wanted)
        req_files = [
            existing_file(p, rootdir, where, "requirements file")
            for p in as_paths(given["requirements_files"], "requirements_files", where)
        ]
        constraints = None
        if given["constraints"] is not None:
            constraints = existing_file(
                as_path(given["constraints"], "constraints", where), rootdir, where, "constraints file"
            )
        for listing in [*req_files, *([constraints] if constraints else [])]:
            try:  # a missing included file is bad input, found before any build
                for _ in walk_requirements(listing):
                    pass
            except SpecError as exc:
                raise SpecError(exc.problem, where=where, fix=exc.fix) from None
        python = given["python"]
        if python is not None and (not isinstance(python, (str, os.PathLike)) or not os.fspath(python).strip()):
            raise SpecError(
                f"python={python!r} is not an interpreter spec",
                where=where,
                fix='Use a version such as "3.12", "pypy3.10", ">=3.11" or a path to an interpreter, '
                "or leave python out for the one running pytest",
            )
        installer = given["installer"]
        if installer is not None and (not isinstance(installer, str) or not installer.strip()):
            raise SpecError(
                f"installer={installer!r} is not a name",
                where=where,
                fix='Use "auto", "pip" or "uv", or leave installer out for the session\'s choice',
            )
        private = given["private"]
        if not isinstance(private, bool):
            raise SpecError(f"private={private!r} is not True or False", where=where)
        warm = given["warm"]
        if not isinstance(warm, bool):
            raise SpecError(f"warm={warm!r} is not True or False", where=where)
        preload = module_names(given["preload"], where)
        if preload and not warm:
            raise SpecError(
                f"preload={preload!r} needs a warm interpreter to import into",
                where=where,
                fix="Add warm=True, or leave preload out",
            )
        lock = _lock(given, bool(reqs or local), rootdir, where)
        index_url = given["index_url"]
        if index_url is not None and (not isinstance(index_url, str) or not index_url.strip()):
            raise SpecError(
                f"index_url={index_url!r} is not a URL", where=where, fix='Use a URL such as "https://pypi.org/simple"'
            )
        return cls(
            requirements=tuple(sorted(reqs)),
            local=tuple(sorted(set(local))),
            editable=tuple(sorted(set(editable))),
            constraints=constraints,
            requirements_files=tuple(sorted(set(req_files))),
            python=None if python is None else normalize_python(python, rootdir, where) or None,
            installer=installer,
            extras=tuple(sorted((path, tuple(sorted(names))) for path, names in extras.items() if names)),
            groups=_groups(given["groups"], rootdir, where),
            find_links=tuple(
                dict.fromkeys(find_link(link, rootdir) for link in as_paths(given["find_links"], "find_links", where))
            ),
            index_url=None if index_url is None else index_url.strip(),
            lock=lock,
            private=private,
            warm=warm,
            preload=preload,
            rootdir=rootdir,
        )

    def with_requirements(self, overrides: Iterable[str]) -> EnvSpec:
        """This spec with the versions of *overrides* (canonical requirements) in its requirements of the same names.

        Each requirement of an override's name takes the override's version (specifier or URL)
        and keeps its own extras and environment marker (see ``override_requirement``); one
        of a dependency group's moves to the spec's own requirements so. An override whose name
        the spec does not ask for is added. Used for ``--isoenv-with``.
        """
        overrides = tuple(overrides)
        if not overrides:
            return self
        by_name: dict[str, list[str]] = {}
        for override in overrides:
            by_name.setdefault(canonicalize_name(Requirement(override).name), []).append(override)
        found: set[str] = set()
        requirements: set[str] = set()

        def kept(given: Iterable[str]) -> tuple[str, ...]:
            """The requirements of *given* no override names; the others, overridden, go to ``requirements``."""
            result = []
            for requirement in given:
                name = canonicalize_name(Requirement(requirement).name)
                if name in by_name:
                    found.add(name)
                    requirements.update(override_requirement(requirement, o) for o in by_name[name])
                else:
                    result.append(requirement)
            return tuple(result)

        requirements.update(kept(self.requirements))
        groups = tuple((label, kept(group)) for label, group in self.groups)
        requirements.update(o for name, named in by_name.items() if name not in found for o in named)
        return dataclasses.replace(self, requirements=tuple(sorted(requirements)), groups=groups)

    def extras_of(self, path: Path) -> str:
        """``"[cli,test]"`` for a local or editable project asked for with extras, else ``""``."""
        names = dict(self.extras).get(path, ())
        return f"[{','.join(names)}]" if names else ""

    def describe(self) -> str:
        """A short human summary, for reports and progress lines.

        Local projects by their name and version (``greeter 0.1``), wheels and sdists as
        ``name==version``, files by their path from the rootdir (``-r requirements/dev.txt``).
        """
        parts = [*self.requirements, *(source_label(p, self.extras_of(p)) for p in self.local)]
        parts += [f"-e {project_label(p, self.extras_of(p))}" for p in self.editable]
        parts += [f"group {label}" for label, _ in self.groups]
        if self.lock is not None:  # by its path from the rootdir: every project's lock has the same name
            parts.insert(0, f"lock {file_label(self.lock, self.rootdir)}")
        parts += [f"-r {file_label(p, self.rootdir)}" for p in self.requirements_files]
        if self.constraints is not None:
            parts.append(f"-c {file_label(self.constraints, self.rootdir)}")
        text = ", ".join(parts) or "(interpreter only)"
        return f"{text} +coverage {self.coverage}" if self.coverage else text


def override_requirement(requirement: str, override: str) -> str:
    """*requirement* with the version of *override*, canonical: what ``--isoenv-with`` makes of it.

    The override's specifier or URL replaces the requirement's; their extras are merged; the
    requirement's environment marker stays, unless the override has one of its own, which wins.
    ``gamma[fast]; python_version >= "3.10"`` with ``gamma==1.0`` is
    ``gamma[fast]==1.0; python_version >= "3.10"``.
    """
    own, wanted = Requirement(requirement), Requirement(override)
    wanted.extras |= own.extras
    if wanted.marker is None:
        wanted.marker = own.marker
    return normalize_requirement(wanted)


def normalize_python(value: PathArg, rootdir: Path, where: str | None = None) -> str:
    """An interpreter spec with a path in it made absolute against *rootdir*; versions stay as given.

    A spec that names no known implementation (``"banana"``, ``"snakes3"``) or is malformed
    (``"3.1O"``) is refused here (see :func:`~pytest_isoenv.discovery.parse_spec`): it is a typo,
    not an interpreter that happens to be missing, so it must not turn into a skip.
    """
    text = os.fspath(value).strip()
    if isinstance(value, os.PathLike) or text.startswith("~") or any(s and s in text for s in (os.sep, os.altsep)):
        return str(resolve(text, rootdir))
    parse_spec(text, where=where)
    return text


def parse_requirement(text: str, where: str | None = None) -> str:
    """A named PEP 508 requirement, canonicalised (``--isoenv-with``); paths are refused, they have no name."""
    if looks_like_path(text.strip()):
        raise SpecError(
            f"{text!r} is a path, not a requirement with a name",
            where=where,
            fix='Give a requirement such as "django==4.2.*" or "mypkg @ file:///path/to/mypkg"',
        )
    return _parse_requirement(text, where)


def _parse_requirement(text: str, where: str | None) -> str:
    try:
        return normalize_requirement(Requirement(text))
    except InvalidRequirement as exc:
        raise SpecError(
            f"invalid requirement {text!r} ({str(exc).splitlines()[0]})",  # one line: no caret diagram
            where=where,
            fix='Use a PEP 508 requirement such as "requests>=2.28", or a path such as "./my-project"',
        ) from None


def _lock(given: dict[str, object], packages: bool, rootdir: Path, where: str | None) -> Path | None:
    """``lock=``: the lock file, checked, and refused beside what it cannot be combined with."""
    value = given["lock"]
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise SpecError(f"lock={value!r} is not a path", where=where, fix='Give the path of a lock file ("uv.lock")')
    path = check_lock(existing_file(value, rootdir, where, "lock file"), os.fspath(value), where)
    others = [name for name in ("requirements_files", "groups", "constraints") if given[name] not in ((), [], None)]
    if packages or others:
        what = ", ".join([*(["requirements"] if packages else []), *(f"{name}=" for name in others)])
        raise SpecError(
            f"lock={os.fspath(value)!r} cannot be combined with {what}: the env is exactly what the lock pins, "
            "and more packages would need a resolution on top of it",
            where=where,
            fix="Add the packages to the project and lock again, or ask for a second env without lock=; "
            "editable= projects may go on top (installed without their dependencies)",
        )
    if given["installer"] == "pip":
        raise SpecError(lock_needs_uv(os.fspath(value)), where=where, fix=LOCK_FIX)
    return path


def _groups(value: object, rootdir: Path, where: str | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    groups: dict[str, tuple[str, ...]] = {}
    for entry in as_paths(value, "groups", where):
        if not isinstance(entry, str):
            raise SpecError(f"groups entry {entry!r} is not a group name", where=where, fix='Use names such as "test"')
        pyproject, name = dependency_groups.split_group(entry, rootdir)
        found = dependency_groups.resolve(pyproject, name, where=where, given=entry)
        groups[entry.strip()] = tuple(sorted({_parse_requirement(r, where) for r in found}))
    return tuple(sorted(groups.items()))
