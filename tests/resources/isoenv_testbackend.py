"""A tiny wheel writer and PEP 517 build backend for the tests' own wheelhouse and projects.

Standard library only, so it runs under every interpreter the tests build envs
for, and pip needs nothing from an index to build a project that uses it
(``backend-path = ["."]`` in the project's pyproject.toml).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # The projects the tests write use only as much TOML as _read_project parses itself.
    tomllib = None


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def write_wheel(
    directory: str | os.PathLike[str],
    name: str,
    version: str,
    *,
    requires: tuple[str, ...] | list[str] = (),
    files: dict[str, str] | None = None,
    scripts: dict[str, str] | None = None,
    extras: dict[str, list[str]] | None = None,
) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl`` into *directory*; *files* maps archive paths to text.

    *extras* maps an extra's name to the requirements it adds.
    """
    dist_info = f"{normalize(name)}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {req}\n" for req in requires)
    for extra, extra_requires in (extras or {}).items():
        metadata += f"Provides-Extra: {extra}\n"
        metadata += "".join(f'Requires-Dist: {req}; extra == "{extra}"\n' for req in extra_requires)
    contents = dict(files or {})
    contents[f"{dist_info}/METADATA"] = metadata
    contents[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: isoenv-testbackend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if scripts:
        lines = "".join(f"{script} = {target}\n" for script, target in scripts.items())
        contents[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{lines}"
    record = []
    path = Path(directory, f"{normalize(name)}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as archive:
        for arcname, text in contents.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}")
            archive.writestr(arcname, data)
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


def _read_project(root: Path) -> dict[str, Any]:
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    if tomllib is not None:
        return tomllib.loads(text)
    data: dict[str, Any] = {}
    table: dict[str, Any] = data
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            table = data
            for part in line.strip("[]").split("."):
                table = table.setdefault(part, {})
        elif "=" in line:
            key, value = (s.strip() for s in line.split("=", 1))
            table[key.strip('"')] = re.findall(r'"([^"]*)"', value) if value.startswith("[") else value.strip('"')
    return data


def _dependencies(root: Path, data: dict[str, Any]) -> list[str]:
    """``[project] dependencies``, or when they are dynamic, the lines of the file that holds them: the one
    ``[tool.setuptools.dynamic]`` names (as setuptools reads it), else ``[tool.isoenv-testbackend]
    dependencies-file`` (a backend option pytest-isoenv cannot know of)."""
    project = data["project"]
    if "dependencies" not in project.get("dynamic", []):
        return list(project.get("dependencies", []))
    tool = data.get("tool", {})
    files = tool.get("setuptools", {}).get("dynamic", {}).get("dependencies", {}).get("file")
    files = files or tool.get("isoenv-testbackend", {}).get("dependencies-file")
    lines = []
    for name in [files] if isinstance(files, str) else files:
        lines += (root / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _project_wheel(wheel_directory: str, *, editable: bool) -> str:
    root = Path.cwd()
    data = _read_project(root)
    project = data["project"]
    # Hooks for the reliability tests: ISOENV_TESTBACKEND_TRACE names a file that gets one line per build
    # (what they count: the project, the backend's process and the installer that started it), and a build
    # waits (two minutes at most) until the file ISOENV_TESTBACKEND_GATE exists.
    trace = os.environ.get("ISOENV_TESTBACKEND_TRACE")
    if trace:
        with open(trace, "a", encoding="utf-8") as stream:
            stream.write(f"{project['name']} {os.getpid()} {os.getppid()}\n")
    gate = os.environ.get("ISOENV_TESTBACKEND_GATE")
    deadline = time.monotonic() + 120
    while gate and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    package = normalize(project["name"])
    if editable:
        files = {f"_{package}_editable.pth": str(root) + "\n"}
    else:
        files = {
            path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted((root / package).rglob("*.py"))
        }
    wheel = write_wheel(
        wheel_directory,
        project["name"],
        project["version"],
        requires=_dependencies(root, data),
        files=files,
        scripts=project.get("scripts"),
        extras=project.get("optional-dependencies"),
    )
    return wheel.name


# PEP 517 / PEP 660 hooks


def get_requires_for_build_wheel(config_settings: object = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: object = None) -> list[str]:
    return []


def build_wheel(wheel_directory: str, config_settings: object = None, metadata_directory: object = None) -> str:
    return _project_wheel(wheel_directory, editable=False)


def build_editable(wheel_directory: str, config_settings: object = None, metadata_directory: object = None) -> str:
    return _project_wheel(wheel_directory, editable=True)
