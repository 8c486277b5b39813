"""Building one env: the installer makes it and installs the spec, and what the record says of it is read back.

The cache decides where and when (a new generation, under the key's lock); this
module does the work inside that folder and turns a record into the
:class:`~pytest_isoenv.IsolatedEnv` handed out, for a generation or a private copy.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_isoenv.discovery import Interpreter
from pytest_isoenv.environ import host_environ, isolated_environ
from pytest_isoenv.errors import BuildError, RunError
from pytest_isoenv.installers.api import Installer
from pytest_isoenv.installers.distributions import inventory
from pytest_isoenv.run.env import Installs, IsolatedEnv, introspect
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.index import IndexOptions
from pytest_isoenv.store.record import Built, Record
from pytest_isoenv.text import LineSink

if TYPE_CHECKING:
    from pytest_isoenv.run.coverage import Measurement


def build_env(
    spec: EnvSpec,
    path: Path,
    log: Path,
    *,
    interpreter: Interpreter,
    installer: Installer,
    index: IndexOptions,
    coverage: Measurement | None,
    echo: LineSink | None,
) -> Built:
    """Create the env at *path* from *interpreter* and install *spec* into it; what the record says of it.

    The installer's output goes to *log* and, labelled with the env, to *echo*.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    header = f"building {spec.describe()} with {installer.name} on {interpreter.executable}"
    log.write_text(f"# pytest-isoenv: {header}\n", encoding="utf-8")
    echo = labelled_echo(echo, f"{spec.describe()} {interpreter.label}")
    if echo is not None:
        echo(f"{header} (log: {log})")
    started = time.monotonic()
    installs = spec if coverage is None else coverage.install_spec(spec, interpreter)
    python = installer.build(path, interpreter.executable, installs, index, log=log, environ=host_environ(), echo=echo)
    venv_paths = dict(interpreter.venv_paths)
    dirs = [path / venv_paths[k] for k in ("scripts", "purelib", "platlib") if k in venv_paths]
    if len(dirs) == 3 and all(d.is_dir() for d in dirs):
        # Read from here what the env's interpreter would report: a subprocess less per build.
        packages, dist_infos = inventory(str(d) for d in dirs[1:])
        scripts, purelib = str(dirs[0]), str(dirs[1])
    else:  # a layout the interpreter's venv scheme did not predict: ask the env itself
        try:
            info = introspect(python, isolated_environ(path, python.parent))
        except RunError as exc:
            raise BuildError(
                f"the new env of {spec.describe()} cannot report its paths and packages",
                cmd=exc.cmd,
                returncode=exc.returncode,
                output=exc.stderr or exc.stdout,
                log=log,
            ) from exc
        packages, dist_infos, scripts, purelib = (
            info["packages"],
            info["dist_infos"],
            info["scripts"],
            info["purelib"],
        )

    def rel(value: str | Path) -> str:
        return os.path.relpath(value, path)

    return Built(
        description=spec.describe(),
        python_spec=spec.python,
        installer=installer.name,
        interpreter=interpreter.key_material(),
        base_executable=str(interpreter.executable),
        python=rel(python),
        bin_dir=rel(scripts),
        site_packages=rel(purelib),
        packages=packages,
        dist_infos=[rel(d) for d in dist_infos if Path(d).is_relative_to(path)],
        build_seconds=round(time.monotonic() - started, 3),
        resolution=spec.resolution,
    )


def env_from_record(
    record: Record, path: Path, spec: EnvSpec, *, coverage: Measurement | None, installs: Installs | None = None
) -> IsolatedEnv:
    """The env described by *record*, at *path* (the record's own generation, or a private copy of it)."""
    return IsolatedEnv(
        path,
        python=path / record.built.python,
        bin_dir=path / record.built.bin_dir,
        site_packages=path / record.built.site_packages,
        key=record.key,
        spec=spec,
        installs=installs,
        coverage=coverage if spec.coverage else None,
    )


def labelled_echo(echo: LineSink | None, label: str) -> LineSink | None:
    """*echo* with each line labelled by the env it belongs to: builds run in parallel."""
    if echo is None:
        return None
    label = label if len(label) <= 40 else label[:39] + "…"
    return lambda line: echo(f"[{label}] {line}")
