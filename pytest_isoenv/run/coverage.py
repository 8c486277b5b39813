"""Coverage of code run inside envs, while the session measures coverage (pytest-cov or ``coverage run``).

How it works:

- Each env gets coverage.py at the host's exact version (so the data files
  combine), built for the env's own Python. It is part of the env's key
  (:attr:`EnvSpec.coverage`) only while measuring: a session that does not
  measure uses the env it always had. The wheel is repacked from the host's
  own installation when the env's Python can use it (no index needed), else
  the env's installer fetches ``coverage==<version>`` like any requirement.
- coverage's wheel brings a ``.pth`` start-up hook that starts measuring when
  ``COVERAGE_PROCESS_START`` names a configuration file. ``run()`` and
  ``popen()`` of a measured env set it to a file written here: the session's
  source, include, omit and branch settings, ``parallel`` data files in a
  folder of this session, ``sigterm`` so that a terminated server saves its data.
- When the tests are done, before pytest-cov (or ``coverage run``) saves and
  combines, the envs' data files are merged into the session's own data, with
  each local project's installed copy in ``site-packages`` mapped back to its
  source files. Under xdist each worker merges its own envs' data.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import platform
import re
import shutil
import sys
import sysconfig
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import Distribution

    from pytest_isoenv.discovery import Interpreter
    from pytest_isoenv.run.env import IsolatedEnv
    from pytest_isoenv.spec.envspec import EnvSpec

#: Warnings of coverage that would land in the stderr of every env process that does not happen
#: to import the measured code; the session's own report says what is not covered.
_QUIET = (
    "module-not-imported",
    "module-not-measured",
    "no-data-collected",
    "no-ctracer",
    "no-sysmon",
    "couldnt-parse",
    "already-imported",
    "include-ignored",
)


def host_coverage_version() -> str | None:
    """The version of coverage.py installed where pytest runs, or ``None`` if there is none."""
    from importlib import metadata

    try:
        return metadata.version("coverage")
    except metadata.PackageNotFoundError:
        return None


class Measurement:
    """Measures the code that envs run, for one pytest process (one per xdist worker)."""

    def __init__(self, version: str, topdir: Path) -> None:
        self.version = version
        """The coverage.py version every measured env gets: the host's."""
        self.topdir = topdir
        """Where relative source paths of the coverage configuration are resolved (the invocation dir)."""
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._rcfiles: dict[Path, Path] = {}
        self._paths: dict[str, str] = {}
        self._wheel: Path | bool | None = False  # False: not looked for yet
        self.notes: set[str] = set()
        """What could not be measured, for the session's summary."""

    @property
    def data_dir(self) -> Path:
        """The folder the envs' processes write their data files to (made when first needed)."""
        with self._lock:
            return self._ensure_dir()

    def _ensure_dir(self) -> Path:
        """The data folder; the caller holds the lock."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="isoenv-coverage-"))
        return self._dir

    def install_spec(self, spec: EnvSpec, interpreter: Interpreter) -> EnvSpec:
        """What the installer installs for *spec*: its packages and coverage.py at the host's version."""
        if spec.coverage is None:
            return spec
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

        plain = dataclasses.replace(spec, coverage=None)
        if any(canonicalize_name(Requirement(r).name) == "coverage" for r in spec.requirements):
            return plain  # the test asked for its own coverage: that one it gets
        if _unsupported(spec.coverage, ".".join(map(str, interpreter.version_info))):
            return plain  # not measured: said at each use of the env (see _rcfile)
        wheel = self._host_wheel(interpreter)
        if wheel is not None:
            return dataclasses.replace(plain, local=(*plain.local, wheel))
        return dataclasses.replace(plain, requirements=(*plain.requirements, f"coverage=={spec.coverage}"))

    def environ(self, env: IsolatedEnv) -> Mapping[str, str | None]:
        """Variables that make *env*'s Python processes measure themselves (nothing while no measurement runs)."""
        config = _current_config()
        if config is None:
            return {}
        # A COVERAGE_PROCESS_CONFIG inherited from the host (its patch = subprocess) would win over ours.
        return {"COVERAGE_PROCESS_START": str(self._rcfile(env, config)), "COVERAGE_PROCESS_CONFIG": None}

    def _rcfile(self, env: IsolatedEnv, config: Any) -> Path:
        with self._lock:
            known = self._rcfiles.get(env.path)
        if known is not None:
            return known
        mapped = installed_copies(env)
        with self._lock:
            self._paths.update(mapped)
        if not (env.site_packages / "coverage").is_dir():
            python = _env_python_version(env)
            reason = _unsupported(self.version, python) if python else None
            with self._lock:
                self.notes.add(
                    f"the env ({env.spec.describe()}) on Python {python or '?'} is not measured: "
                    + (reason or "it has no coverage package")
                )
        source = []
        for entry in [*(config.source or ()), *getattr(config, "source_dirs", ())]:
            path = self.topdir / entry
            if not path.is_dir():
                source.append(entry)  # a module or package name: the env resolves it itself
                continue
            path = Path(os.path.abspath(path))
            source.append(str(path))
            # A local project installed non-editable runs from site-packages: measure that copy too.
            source += [copy for copy, original in mapped.items() if Path(original).is_relative_to(path)]
        lines = [
            "# Written by pytest-isoenv: how processes in the isolated env measure coverage",
            "[run]",
            f"data_file = {self.data_dir / '.coverage'}",
            "parallel = True",
            "sigterm = True",
            f"branch = {bool(config.branch)}",
            f"timid = {bool(config.timid)}",
            f"cover_pylib = {bool(config.cover_pylib)}",
            _option("source", source),
            _option("source_pkgs", list(getattr(config, "source_pkgs", ()))),
            _option("include", [self._pattern(p) for p in config.run_include or ()]),
            _option("omit", [self._pattern(p) for p in config.run_omit or ()]),
            _option("concurrency", list(config.concurrency or ())),
            _option("disable_warnings", [*config.disable_warnings, *_QUIET]),
        ]
        name = hashlib.sha256(str(env.path).encode()).hexdigest()[:16]
        rcfile = self.data_dir / f"env-{name}.coveragerc"
        rcfile.write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")
        with self._lock:
            self._rcfiles[env.path] = rcfile
        return rcfile

    def _pattern(self, pattern: str) -> str:
        # coverage makes a pattern that does not start with a wildcard absolute against the current
        # directory, which for an env's process is wherever run() was told to run it.
        return pattern if pattern.startswith(("*", "?")) else str(self.topdir / pattern)

    def finish(self) -> tuple[int, list[str]]:
        """Merge the envs' data files into the session's measurement; remove this session's folder.

        Returns how many data files were merged and the problems met (files that
        could not be read or combined).
        """
        with self._lock:
            folder, self._dir = self._dir, None
            self._rcfiles.clear()
            self._wheel = False
        if folder is None:
            return 0, []
        merged, problems = 0, []
        try:
            import coverage
            from coverage.data import CoverageData
            from coverage.exceptions import CoverageWarning

            current = coverage.Coverage.current()
            files = sorted(folder.glob(".coverage.*"))
            if current is None:
                return 0, [f"{len(files)} data file(s) of env processes dropped: no coverage measurement runs"]
            with warnings.catch_warnings():
                # Asked before the envs' data are in: "no data collected" would be wrong.
                warnings.simplefilter("ignore", CoverageWarning)
                target = current.get_data()
            for path in files:
                try:
                    data = CoverageData(str(path))
                    data.read()
                    # add_lines/add_arcs, not update(): they also feed the hash that names the session's
                    # data file, by which pytest-cov's combine drops files it thinks are duplicates.
                    # Both an installed copy and its source can be in one file (the source touched as
                    # unexecuted): their lines add up under the source's name.
                    lines: dict[str, set[Any]] = {}
                    for measured in data.measured_files():
                        found = data.arcs(measured) if data.has_arcs() else data.lines(measured)
                        lines.setdefault(self.map_path(measured), set()).update(found or ())
                    if data.has_arcs():
                        target.add_arcs({name: sorted(arcs) for name, arcs in lines.items()})
                    else:
                        target.add_lines({name: sorted(numbers) for name, numbers in lines.items()})
                except Exception as exc:  # coverage's DataError, sqlite errors: say so, keep the rest
                    problems.append(f"{path.name}: {exc}")
                else:
                    merged += 1
            return merged, problems
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def map_path(self, path: str) -> str:
        """*path* of a measured file, with an installed copy of a local project mapped to its source."""
        for copy, original in self._paths.items():
            if path == copy or path.startswith(copy + os.sep):
                mapped = original + path[len(copy) :]
                if Path(mapped).exists():
                    return mapped
        return path

    def _host_wheel(self, interpreter: Interpreter) -> Path | None:
        with self._lock:
            if self._wheel is False:
                self._wheel = repack_host_wheel(self.version, self._ensure_dir() / "wheels")
            wheel = self._wheel
        if not isinstance(wheel, Path) or not _wheel_fits(wheel, interpreter):
            return None
        return wheel


def _unsupported(version: str, python: str) -> str | None:
    """Why coverage *version* (the host's) cannot run on Python *python*, by its ``Requires-Python``; else ``None``."""
    from importlib import metadata

    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        requires = metadata.metadata("coverage")["Requires-Python"]
        specifier = SpecifierSet(requires or "")
    except (metadata.PackageNotFoundError, InvalidSpecifier):
        return None
    if specifier.contains(python, prereleases=True):
        return None
    return f"coverage {version} (the version pytest runs with) needs Python {requires}"


def _env_python_version(env: IsolatedEnv) -> str | None:
    """The Python version *env* was made from, as its ``pyvenv.cfg`` says."""
    try:
        lines = (env.path / "pyvenv.cfg").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    values = dict(line.partition("=")[::2] for line in lines)
    found = {k.strip(): v.strip() for k, v in values.items()}
    version = found.get("version_info") or found.get("version")
    return ".".join(version.split(".")[:3]) if version else None


def _current_config() -> Any:
    import coverage

    current = coverage.Coverage.current()
    return None if current is None else current.config


def _option(name: str, values: list[str]) -> str:
    if not values:
        return ""
    return f"{name} =\n" + "\n".join(f"    {value}" for value in values)


def installed_copies(env: IsolatedEnv) -> dict[str, str]:
    """Where the packages of *env*'s non-editable local projects are installed, and their source: copy to original.

    Packages are found the way build backends look for them: ``src/<name>/__init__.py``
    or ``<name>/__init__.py`` in the project, and top-level modules next to them.
    """
    copies: dict[str, str] = {}
    site_dirs = {str(env.site_packages), os.path.realpath(env.site_packages)}
    for project in env.spec.local:
        if not project.is_dir():
            continue  # a wheel or sdist: no source files to map to
        for base in (project / "src", project):
            if not base.is_dir():
                continue
            for entry in base.iterdir():
                if (entry / "__init__.py").is_file() or (entry.suffix == ".py" and entry.is_file()):
                    for site in site_dirs:
                        if (Path(site) / entry.name).exists():
                            copies[str(Path(site, entry.name))] = str(entry)
    return copies


def repack_host_wheel(version: str, folder: Path) -> Path | None:
    """A wheel of the coverage.py installed here, written to *folder*; ``None`` if it cannot be made.

    ``None`` too when the installed coverage.py is not at *version* (see :func:`repack_installed`).
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("coverage")
    except metadata.PackageNotFoundError:
        return None
    return repack_installed(dist, folder) if dist.version == version else None


def repack_installed(dist: Distribution, folder: Path) -> Path | None:
    """A wheel of the installed distribution *dist*, written to *folder*; ``None`` if it cannot be made.

    Made from the installed files listed in its ``RECORD``, with the tags of its own
    ``WHEEL`` file, so an env on the same Python gets the very same build without an index.
    Console scripts (which the installer makes again from the entry points), other files
    installed outside site-packages, and byte code are left out.
    """
    try:
        wheel_meta = dist.read_text("WHEEL") or ""
    except OSError:
        return None
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    # The dist-info folder as installed: the installer kept the wheel's own spelling of it.
    dist_infos = {
        file.parts[0]
        for file in dist.files or ()
        if len(file.parts) == 2 and file.parts[0].endswith(".dist-info") and file.name == "WHEEL"
    }
    if not tags or len(dist_infos) != 1:
        return None
    dist_info = dist_infos.pop()
    skipped = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    files = []
    for file in dist.files or ():
        name = file.as_posix()
        if name.startswith("..") or "__pycache__" in name or name.endswith(".pyc"):
            continue  # console scripts (re-made by the installer) and byte code
        if name.startswith(dist_info + "/") and name.rsplit("/", 1)[1] in skipped:
            continue
        located = Path(str(file.locate()))
        if not located.is_file():
            return None  # an installation with files missing: let the installer fetch a whole one
        files.append((name, located))
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{re.sub(r'[-_.]+', '_', dist.name).lower()}-{dist.version}-{_compress(tags)}.whl"
    partial = wheel.with_suffix(".part")
    record = []
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, located in sorted(files):
            content = located.read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(content)}")
            archive.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), content)
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", (2020, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    os.replace(partial, wheel)
    return wheel


def _compress(tags: list[str]) -> str:
    """The wheel file name's tag part for *tags* (``cp311-cp311-manylinux_2_5_x86_64.manylinux1_x86_64``)."""
    parts = [tag.split("-") for tag in tags]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))


def _wheel_fits(wheel: Path, interpreter: Interpreter) -> bool:
    """Whether the host's coverage wheel installs on *interpreter*: pure Python, or the same build of Python."""
    *_, abi_tag, platform_tag = wheel.stem.split("-")
    if abi_tag == "none" and platform_tag == "any":
        return True
    host_free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    return (
        interpreter.implementation == platform.python_implementation()
        and interpreter.version_info[:2] == sys.version_info[:2]
        and interpreter.free_threaded == host_free_threaded
        and interpreter.machine.lower() == platform.machine().lower()
    )
