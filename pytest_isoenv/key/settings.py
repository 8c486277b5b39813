"""What configuration an installer runs with: the user's settings the key covers, and nothing else.

pip and uv both read configuration of their own: pip its config files and
``PIP_*`` variables, uv its ``uv.toml`` files (user, system, and any project's
above the working directory) and ``UV_*`` variables. This module turns that
into exactly what an isoenv build may see:

- settings that would send an install somewhere other than the env being built
  (pip's ``target``, ``prefix``, ``root``, ``user``, ``python``; uv's
  ``[pip] target``, ``prefix``, ``system``) are dropped;
- uv never reads a project's configuration (the cache may live inside one), only
  the user and system files the key includes;
- pip's index settings are carried over to uv, so the env comes from the indexes
  the user configured whichever installer builds it; pip settings uv has no
  faithful equivalent for are named, so ``auto`` can choose pip instead.

It also says which of those settings the key covers
(:meth:`PipConfig.resolution_settings`, :func:`uv_resolution_settings`: what changes
what gets resolved or built, and the content of the files they name), and where
each tool's configuration files are (:func:`pip_config_files`,
:func:`uv_config_files`): one place for "which pip and uv settings matter".
"""

from __future__ import annotations

import configparser
import functools
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.material import constraints_material, location_material
from pytest_isoenv.tomlfile import read_toml

# pip settings that send installs into another environment or folder, or run another interpreter's pip,
# or make pip ignore the settings passed to it here.
_PIP_ELSEWHERE = frozenset({"target", "prefix", "root", "user", "python", "src", "isolated", "require-virtualenv"})
# Variables that are pip's own, not settings.
_PIP_NOT_SETTINGS = frozenset({"PIP_CONFIG_FILE", "PIP_VERSION", "PIP_HELP"})
# uv's [pip] settings that send installs elsewhere than the env given with --python.
_UV_ELSEWHERE = frozenset({"target", "prefix", "system", "break-system-packages", "python", "user"})
_TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})

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


# The configuration files, and what of them the key covers ---------------------------------------------------


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


def _read_pip_config(path: Path) -> configparser.RawConfigParser | None:
    """A pip configuration file parsed as pip parses it, or ``None`` when it cannot be read."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    return parser


def _contents(name: str, values: list[str], hashes: FileHashes) -> dict[str, Any]:
    """Key material for the files a find-links or constraint setting names (others: nothing)."""
    setting = name.rsplit(".", 1)[-1].lower().replace("_", "-")
    if setting.endswith("find-links"):
        return {f"{name}:contents": [location_material(v, hashes) for v in values]}
    if setting.endswith("constraint"):
        return {f"{name}:contents": [constraints_material(v, hashes) for v in values]}
    return {}


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


# What builds run with ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipSetting:
    """One effective pip setting: its value and where it came from (a variable, or a file's section)."""

    value: str
    source: str

    @property
    def enabled(self) -> bool:
        """The value read as pip reads a flag (``true``, ``yes``, ``1``, ...)."""
        return self.value.strip().lower() in _TRUE

    @property
    def values(self) -> list[str]:
        """The value split as pip splits a list setting (whitespace)."""
        return self.value.split()


@dataclass(frozen=True, eq=False)
class PipConfig:
    """The user's pip configuration, read once: its files, parsed, and the ``PIP_*`` variables.

    What builds run with (:attr:`settings`) and what of it the key covers
    (:meth:`resolution_settings`) are both made from this one reading. An
    installer choice reads it once (:meth:`read`) and passes it down.
    """

    files: tuple[tuple[Path, configparser.RawConfigParser | None], ...]
    """Each config file pip reads, lowest precedence first, parsed (``None``: pip cannot read it either)."""
    variables: tuple[tuple[str, str], ...]
    """The ``PIP_*`` environment variables, in the environment's order."""

    @classmethod
    def read(cls, environ: Mapping[str, str], files: Sequence[Path] | None = None) -> PipConfig:
        """The configuration pip reads with *environ*: *files*, by default those :func:`pip_config_files` finds."""
        paths = pip_config_files(environ) if files is None else files
        variables = tuple((name, value) for name, value in environ.items() if name.startswith("PIP_"))
        return cls(tuple((path, _read_pip_config(path)) for path in paths), variables)

    @functools.cached_property
    def settings(self) -> dict[str, PipSetting]:
        """The pip settings ``pip install`` would use, by option name: the files' then the variables'.

        As pip orders them: every file's ``[global]`` section, then every file's
        ``[install]`` section, then the environment, each later one winning.
        """
        settings: dict[str, PipSetting] = {}
        # A file pip cannot read, pip refuses with a message of its own; the key notices the file.
        parsers = [(path, parser) for path, parser in self.files if parser is not None]
        for section in ("global", "install"):
            for path, parser in parsers:
                if parser.has_section(section):
                    for option, value in parser.items(section):
                        if value:  # pip ignores empty values
                            name = option.lower().replace("_", "-").lstrip("-")
                            settings[name] = PipSetting(value, f"{path} [{section}] {option}")
        for variable, value in self.variables:
            if variable not in _PIP_NOT_SETTINGS and value:
                settings[variable[4:].lower().replace("_", "-")] = PipSetting(value, variable)
        return settings

    def resolution_settings(self, hashes: FileHashes | None = None) -> dict[str, Any]:
        """The settings (config files and ``PIP_*`` variables) that change what pip installs, for the key.

        Find-links folders count by the content of their archives, constraints files by their content,
        read through *hashes* each time: they may change while the configuration does not.
        """
        hashes = FileHashes() if hashes is None else hashes
        settings: dict[str, Any] = {}
        for path, parser in self.files:
            if parser is None:
                settings[f"unreadable:{path}"] = True  # pip will complain; the key still notices the file
                continue
            for section in ("global", "install"):
                if parser.has_section(section):
                    for option, value in parser.items(section):
                        if option.replace("_", "-") in _PIP_RESOLUTION_SETTINGS:
                            settings[f"{section}.{option}"] = value
                            settings.update(_contents(f"{section}.{option}", value.split(), hashes))
        for name, value in self.variables:
            if name[4:].lower().replace("_", "-") in _PIP_RESOLUTION_SETTINGS:
                settings[name] = value
                settings.update(_contents(name, value.split(), hashes))
        return settings


def pip_environ(environ: Mapping[str, str], settings: Mapping[str, PipSetting]) -> dict[str, str]:
    """*environ* for running pip: its configuration restated as variables, without what sends installs elsewhere.

    pip reads no configuration file (``PIP_CONFIG_FILE`` is the null device):
    a file's ``target =`` cannot be undone by a variable, as pip ignores empty
    values. Every other setting the user made still applies.
    """
    result = {name: value for name, value in environ.items() if not name.startswith("PIP_")}
    result["PIP_CONFIG_FILE"] = os.devnull
    for option, setting in settings.items():
        if option not in _PIP_ELSEWHERE:
            result["PIP_" + option.upper().replace("-", "_")] = setting.value
    return result


def dropped_pip_settings(settings: Mapping[str, PipSetting]) -> list[str]:
    """The user's pip settings no build uses, as ``option (source)``: they would send installs elsewhere."""
    return [f"{option} ({s.source})" for option, s in settings.items() if option in _PIP_ELSEWHERE]


@dataclass(frozen=True)
class UvFromPip:
    """pip's settings carried over to ``uv pip install``: arguments, variables, and what cannot be carried."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    arguments: tuple[str, ...] = ()
    """Resolution arguments besides the index ones (``--prerelease allow``, ``-c FILE``, ...)."""
    environ: dict[str, str] = field(default_factory=dict)
    """Variables for reaching the indexes (certificates, trusted hosts, proxy), set unless the user set them."""
    not_carried: tuple[str, ...] = ()
    """pip settings that change what gets installed and that uv has no faithful equivalent for."""

    def key_material(self) -> dict[str, Any]:
        """What of pip's settings shapes an env built by uv."""
        return {
            "index_url": self.index_url,
            "extra_index_urls": list(self.extra_index_urls),
            "find_links": list(self.find_links),
            "no_index": self.no_index,
            "arguments": list(self.arguments),
        }


def uv_from_pip(settings: Mapping[str, PipSetting]) -> UvFromPip:
    """Translate the user's pip settings into what ``uv pip install`` understands."""
    arguments: list[str] = []
    environ: dict[str, str] = {}
    not_carried: list[str] = []
    for option, setting in settings.items():
        if option in ("index-url", "extra-index-url", "find-links", "no-index") or option in _PIP_ELSEWHERE:
            continue
        if option in ("pre", "no-build-isolation", "no-deps"):
            if setting.enabled:
                arguments += ["--prerelease", "allow"] if option == "pre" else [f"--{option}"]
        elif option == "constraint":
            for path in setting.values:
                arguments += ["--constraint", path]
        elif option == "trusted-host":
            environ["UV_INSECURE_HOST"] = " ".join(setting.values)
        elif option == "cert":
            environ["SSL_CERT_FILE"] = setting.value
        elif option == "client-cert":
            environ["SSL_CLIENT_CERT"] = setting.value
        elif option == "timeout":
            environ["UV_HTTP_TIMEOUT"] = setting.value
        elif option == "proxy":
            environ["HTTP_PROXY"] = environ["HTTPS_PROXY"] = setting.value
        elif option in _RESOLUTION and not (option in _FLAGS and not setting.enabled):
            not_carried.append(f"{option} ({setting.source})")
    index = settings.get("index-url")
    no_index = settings.get("no-index")
    return UvFromPip(
        index_url=index.value.strip() if index else None,
        extra_index_urls=tuple(settings["extra-index-url"].values) if "extra-index-url" in settings else (),
        find_links=tuple(settings["find-links"].values) if "find-links" in settings else (),
        no_index=bool(no_index and no_index.enabled),
        arguments=tuple(arguments),
        environ=environ,
        not_carried=tuple(not_carried),
    )


# The pip settings that change what gets installed (the key's list) and that uv has no faithful equivalent
# for: all but those uv_from_pip carries over and those that send installs elsewhere. upgrade-strategy is not
# among them: nothing is upgraded in a fresh env.
_CARRIED = frozenset(
    {"index-url", "extra-index-url", "find-links", "no-index", "pre", "no-build-isolation", "no-deps", "constraint"}
)
_RESOLUTION = _PIP_RESOLUTION_SETTINGS - _CARRIED - {"upgrade-strategy"} - _PIP_ELSEWHERE
_FLAGS = frozenset({"prefer-binary", "ignore-requires-python"})


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
        merged = _combine(merged, data)
    pip = merged.get("pip")
    dropped = []
    if isinstance(pip, dict):
        for option in sorted(_UV_ELSEWHERE & set(pip)):
            dropped.append(f"[pip] {option}")
            del pip[option]
    if not merged:
        return None, dropped
    return "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in merged.items()), dropped


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


def _toml(value: Any) -> str:
    """*value* as an inline TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value.isoformat())  # dates and times
