"""What pip runs with, and what of the user's pip configuration the key covers.

pip reads configuration of its own: its config files and ``PIP_*`` variables,
read here once as a :class:`PipConfig`. This module turns that into exactly
what an isoenv build may see:

- settings that would send an install somewhere other than the env being built
  (``target``, ``prefix``, ``root``, ``user``, ``python``, ...) are dropped, and
  so are those that add requirements to every install (``requirement``,
  ``editable``, ``group``): an env holds what its test asks for;
- pip's index settings are carried over to uv (:func:`uv_from_pip`), so the env
  comes from the indexes the user configured whichever installer builds it; pip
  settings uv has no faithful equivalent for are named, so ``auto`` can choose
  pip instead.

Every other setting counts for the key (:meth:`PipConfig.resolution_settings`),
unless it is harmless; which is which is :mod:`pytest_isoenv.key.settingrules`.
uv's configuration is :mod:`pytest_isoenv.key.uvconfig`.
"""

from __future__ import annotations

import configparser
import functools
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.settingrules import HARMLESS, REQUIREMENTS, pip_option, pip_variable, setting_contents

# pip settings that send installs into another environment or folder, or run another interpreter's pip,
# or make pip ignore the settings passed to it here.
_PIP_ELSEWHERE = frozenset({"target", "prefix", "root", "user", "python", "src", "isolated", "require-virtualenv"})
# Variables that are pip's own, not settings.
_PIP_NOT_SETTINGS = frozenset({"PIP_CONFIG_FILE", "PIP_VERSION", "PIP_HELP"})
_TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})

# pip settings that change what gets installed and that ``uv pip install`` has no faithful equivalent for:
# with one of them set, ``auto`` chooses pip. (What counts for the key is another question: settingrules.)
_UV_CANNOT_FOLLOW = frozenset(
    {
        "only-binary", "no-binary", "prefer-binary", "build-constraint", "uploaded-prior-to", "use-feature",
        "use-deprecated", "ignore-requires-python", "config-settings", "platform", "python-version",
        "implementation", "abi",
    }
)  # fmt: skip
_FLAGS = frozenset({"prefer-binary", "ignore-requires-python"})


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
                            settings[pip_option(option)] = PipSetting(value, f"{path} [{section}] {option}")
        for variable, value in self.variables:
            if variable not in _PIP_NOT_SETTINGS and value:
                settings[pip_option(variable)] = PipSetting(value, variable)
        return settings

    def resolution_settings(self, hashes: FileHashes | None = None) -> dict[str, Any]:
        """The settings (config files and ``PIP_*`` variables) for the key: every one that counts.

        All but the harmless ones and those no build sees (:func:`pip_counts`). Find-links folders count by
        the content of their archives, constraints files by their content, read through *hashes* each time:
        they may change while the configuration does not.
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
                        if pip_counts(option):
                            settings[f"{section}.{option}"] = value
                            settings.update(
                                setting_contents(f"{section}.{option}", pip_variable(option), value.split(), hashes)
                            )
        for name, value in self.variables:
            if name not in _PIP_NOT_SETTINGS and pip_counts(name):
                settings[name] = value
                settings.update(setting_contents(name, pip_variable(name), value.split(), hashes))
        return settings


def pip_counts(name: str) -> bool:
    """Whether the pip setting *name* (a variable or a file's option) counts for the key.

    All count but the harmless ones and those no build sees: those that install elsewhere and those
    that add requirements (:data:`~pytest_isoenv.key.settingrules.REQUIREMENTS`).
    """
    option = pip_option(name)
    return pip_variable(option) not in HARMLESS and option not in _PIP_ELSEWHERE and option not in REQUIREMENTS


def pip_environ(environ: Mapping[str, str], settings: Mapping[str, PipSetting]) -> dict[str, str]:
    """*environ* for running pip: its configuration restated as variables, without what sends installs elsewhere.

    pip reads no configuration file (``PIP_CONFIG_FILE`` is the null device):
    a file's ``target =`` cannot be undone by a variable, as pip ignores empty
    values. Every other setting the user made still applies.
    """
    result = {name: value for name, value in environ.items() if not name.startswith("PIP_")}
    result["PIP_CONFIG_FILE"] = os.devnull
    for option, setting in settings.items():
        if option not in _PIP_ELSEWHERE and option not in REQUIREMENTS:
            result[pip_variable(option)] = setting.value
    return result


def dropped_pip_settings(settings: Mapping[str, PipSetting], *, requirements: bool = False) -> list[str]:
    """The user's pip settings no build uses, as ``option (source)``: they would send installs elsewhere.

    With *requirements*, those that would add requirements to every env instead.
    """
    dropped = REQUIREMENTS if requirements else _PIP_ELSEWHERE
    return [f"{option} ({s.source})" for option, s in settings.items() if option in dropped]


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
        if (
            option in ("index-url", "extra-index-url", "find-links", "no-index")
            or option in _PIP_ELSEWHERE | REQUIREMENTS
        ):
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
        elif option in _UV_CANNOT_FOLLOW and not (option in _FLAGS and not setting.enabled):
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
