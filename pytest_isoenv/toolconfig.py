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

The files themselves are found by :mod:`pytest_isoenv.installers`' key code and
passed in here.
"""

from __future__ import annotations

import configparser
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

# pip settings that send installs into another environment or folder, or run another interpreter's pip,
# or make pip ignore the settings passed to it here.
_PIP_ELSEWHERE = frozenset({"target", "prefix", "root", "user", "python", "src", "isolated", "require-virtualenv"})
# Variables that are pip's own, not settings.
_PIP_NOT_SETTINGS = frozenset({"PIP_CONFIG_FILE", "PIP_VERSION", "PIP_HELP"})
# uv's [pip] settings that send installs elsewhere than the env given with --python.
_UV_ELSEWHERE = frozenset({"target", "prefix", "system", "break-system-packages", "python", "user"})
_TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})


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


def pip_settings(environ: Mapping[str, str], files: Sequence[Path]) -> dict[str, PipSetting]:
    """The pip settings ``pip install`` would use, by option name: *files* then ``PIP_*`` variables.

    As pip orders them: every file's ``[global]`` section, then every file's
    ``[install]`` section, then the environment, each later one winning.
    """
    settings: dict[str, PipSetting] = {}
    parsers = []
    for path in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue  # pip refuses it with a message of its own; the key notices the file
        parsers.append((path, parser))
    for section in ("global", "install"):
        for path, parser in parsers:
            if parser.has_section(section):
                for option, value in parser.items(section):
                    if value:  # pip ignores empty values
                        name = option.lower().replace("_", "-").lstrip("-")
                        settings[name] = PipSetting(value, f"{path} [{section}] {option}")
    for variable, value in environ.items():
        if variable.startswith("PIP_") and variable not in _PIP_NOT_SETTINGS and value:
            settings[variable[4:].lower().replace("_", "-")] = PipSetting(value, variable)
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
# for. upgrade-strategy is not among them: nothing is upgraded in a fresh env.
_RESOLUTION = frozenset(
    {
        "only-binary", "no-binary", "prefer-binary", "build-constraint", "use-feature", "use-deprecated",
        "ignore-requires-python", "config-settings", "uploaded-prior-to", "platform", "python-version",
        "implementation", "abi",
    }
)  # fmt: skip
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
            with path.open("rb") as stream:
                data = tomllib.load(stream)
        except (OSError, tomllib.TOMLDecodeError) as exc:
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
