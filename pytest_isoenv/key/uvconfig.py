"""The user's uv configuration: which files uv reads, what of them the key covers, and what builds run with.

uv reads its ``uv.toml`` files (user, system, and any project's above the
working directory) and ``UV_*`` variables. A build runs uv with the user's
and the system's files combined into one (:func:`uv_config`), less the
``[pip]`` settings that install elsewhere, and never a project's: the cache may
live inside one. Every setting counts for the key by its value, unless it is
harmless (see :mod:`pytest_isoenv.key.settingrules`), and the files and folders
settings name count by what they hold (:func:`uv_resolution_settings`), a local
``[[index]]`` of ``format = "flat"`` as the find-links folder it is.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_isoenv.environ import is_host_leak
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.material import absolute_link, local_path, location_material
from pytest_isoenv.key.settingrules import HARMLESS, setting_contents, uv_variable
from pytest_isoenv.tomlfile import read_toml, toml_document, toml_value

# uv's [pip] settings that send installs elsewhere than the env given with --python.
_UV_ELSEWHERE = frozenset({"target", "prefix", "system", "break-system-packages", "python", "user"})
#: uv variables no build sees: they move where uv runs and looks for a project, and a build runs in the env
#: being built, with no project's configuration.
UV_ELSEWHERE_VARIABLES = frozenset({"UV_WORKING_DIR", "UV_PROJECT"})
# Settings of a uv.toml that name an index or find-links location: uv reads a relative one against the file's folder.
_PATH_SETTINGS = frozenset({"find-links", "index-url", "extra-index-url"})
# Keys of a uv.toml whose variable has another name.
_UV_FILE_NAMES = {"allow-insecure-host": "UV_INSECURE_HOST"}


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


def uv_counts(variable: str) -> bool:
    """Whether the uv setting *variable* (``UV_*``) counts for the key: all but the harmless and those no build sees."""
    return variable not in HARMLESS and variable not in UV_ELSEWHERE_VARIABLES and not is_host_leak(variable)


def uv_resolution_settings(environ: Mapping[str, str], hashes: FileHashes | None = None) -> dict[str, Any]:
    """The user's uv settings (config files and ``UV_*`` variables) for the key: every one that counts.

    Values that name files or folders count by what those hold, each time: they may change while
    the setting does not.
    """
    hashes = FileHashes() if hashes is None else hashes
    settings: dict[str, Any] = {f"file:{path}": _uv_file_material(path, hashes) for path in uv_config_files(environ)}
    for name, value in environ.items():
        if name.startswith("UV_") and uv_counts(name):
            settings[name] = value
            settings.update(setting_contents(name, name, _uv_values(value), hashes))
    return settings


def _uv_values(value: str) -> list[str]:
    """A ``UV_*`` list variable's entries: uv takes them separated by spaces (and find-links by commas)."""
    return value.replace(",", " ").split()


def _uv_file_material(path: Path, hashes: FileHashes) -> Any:
    """A uv configuration file as it counts: each setting by value (harmless ones left out), paths by content."""
    digest = hashes.file_or_none(path)
    if digest is None:
        return None
    try:
        data = _read_uv_config(str(path), digest)
    except (OSError, ValueError):
        return {"unreadable": digest}  # uv will refuse it; the key still notices every change
    material = _uv_table(data, path.parent, hashes)
    pip = data.get("pip")
    if isinstance(pip, dict):
        material["pip"] = _uv_table({k: v for k, v in pip.items() if k not in _UV_ELSEWHERE}, path.parent, hashes)
    return material


@functools.lru_cache(maxsize=64)
def _read_uv_config(path: str, digest: str) -> dict[str, Any]:
    """*path* parsed, remembered by its content's *digest*: a warm run parses nothing again."""
    return read_toml(Path(path))


def _uv_table(table: Mapping[str, Any], base: Path, hashes: FileHashes) -> dict[str, Any]:
    """The settings of one table of a uv configuration file that count, as TOML text, with what their paths hold."""
    material: dict[str, Any] = {}
    for key, value in table.items():
        variable = _UV_FILE_NAMES.get(key) or uv_variable(key)
        if key == "pip" or not uv_counts(variable):
            continue
        material[key] = toml_value(value)
        material.update(setting_contents(key, variable, _strings(value), hashes, base))
    flat = flat_indexes(table, base)
    if flat:  # only then: the keys of configurations without one stay what they were
        material["index:flat"] = [location_material(link, hashes) for link in flat]
    return material


def flat_indexes(table: Mapping[str, Any], base: Path) -> list[str]:
    """The ``[[index]]`` entries of a uv configuration *table* with ``format = "flat"``: find-links by another name.

    uv reads such an index as a find-links location, so a local folder counts by its archives, as one
    named by ``find-links`` does. Local paths are made absolute against *base* (the file's folder, as
    uv reads them); URLs are as given.
    """
    entries = table.get("index")
    if not isinstance(entries, list):
        return []
    found = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("format") == "flat" and isinstance(entry.get("url"), str):
            path = local_path(entry["url"], base)
            found.append(entry["url"] if path is None else str(path))
    return found


def _strings(value: Any) -> list[str]:
    """A configuration value as a list of strings (a string alone, or the strings of a list)."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def uv_config(files: Sequence[Path]) -> tuple[str | None, list[str]]:
    """The uv configuration an isoenv build runs with, made from *files* (user first, then system).

    Returns the TOML text to run uv with (``None``: no configuration at all)
    and the settings left out because they send installs elsewhere. The files
    are combined as uv combines them (the first file's value wins; lists are
    joined), so uv can be given them as one ``--config-file`` and be told not to
    look for any other file, a project's included.
    """
    merged: dict[str, Any] = {}
    for path in files:
        try:
            data = read_toml(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the uv configuration file {path}: {exc}") from exc
        merged = _combine(merged, _absolute_paths(data, path.parent))
    pip = merged.get("pip")
    dropped = []
    if isinstance(pip, dict):
        for option in sorted(_UV_ELSEWHERE & set(pip)):
            dropped.append(f"[pip] {option}")
            del pip[option]
    if not merged:
        return None, dropped
    return toml_document(merged), dropped


def _absolute_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """*data*, a uv configuration file's, with its find-links and index paths made absolute against *base*.

    uv reads them against the folder of the file that names them; a build runs with the files combined
    into one elsewhere, where a relative path would name another folder.
    """

    def absolute(value: Any) -> Any:
        if isinstance(value, list):
            return [absolute(v) for v in value]
        return absolute_link(value, base) if isinstance(value, str) else value

    def table(settings: dict[str, Any]) -> dict[str, Any]:
        out = {k: absolute(v) if k in _PATH_SETTINGS else v for k, v in settings.items()}
        if isinstance(out.get("index"), list):
            out["index"] = [
                {**e, "url": absolute(e["url"])} if isinstance(e, dict) and "url" in e else e for e in out["index"]
            ]
        return out

    result = table(data)
    if isinstance(result.get("pip"), dict):
        result["pip"] = table(result["pip"])
    return result


def _combine(first: Any, second: Any) -> Any:
    """uv's rule for two configuration values: tables field by field, lists joined, otherwise the first."""
    if isinstance(first, dict) and isinstance(second, dict):
        out = dict(first)
        for key, value in second.items():
            out[key] = _combine(first[key], value) if key in first else value
        return out
    if isinstance(first, list) and isinstance(second, list):
        return [*first, *second]
    return first
