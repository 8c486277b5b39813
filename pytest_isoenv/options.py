"""The plugin's options: each a command-line flag and an ini key of the same name, defined once.

The reference docs build their option table from :data:`OPTIONS`, so what
``pytest --help`` says and what the docs say cannot drift apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import platformdirs
import pytest

CACHE_DIR_ENV = "PYTEST_ISOENV_CACHE_DIR"


@dataclass(frozen=True)
class Option:
    """One setting: ``--isoenv-<name>`` on the command line and ``isoenv_<name>`` in the ini file."""

    name: str
    help: str
    kind: Literal["string", "bool", "linelist", "command"] = "string"
    """``command`` is a flag that does something and exits, like ``--fixtures``: it has no ini key."""
    default: Any = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--isoenv-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "isoenv_" + self.name


OPTIONS: tuple[Option, ...] = (
    Option(
        "cache_dir",
        f"Where built envs are cached (also ${CACHE_DIR_ENV}; default: the user cache directory)",
        metavar="DIR",
    ),
    Option("rebuild", "Rebuild every env this run uses, once, before using it", kind="bool", default=False),
    Option(
        "offline",
        "Install only from --isoenv-find-links and local paths, never from an index",
        kind="bool",
        default=False,
    ),
    Option(
        "find_links",
        "A directory or URL of wheels and sdists for installers to look in (repeatable)",
        kind="linelist",
        default=(),
        metavar="PATH_OR_URL",
    ),
    Option("index_url", "The package index installers use instead of the configured one", metavar="URL"),
    Option(
        "installer",
        "Which tool builds envs: auto (uv when installed, else pip), pip (virtualenv and pip) or uv",
        default="auto",
        metavar="NAME",
    ),
    Option(
        "no_prebuild",
        "Build each env when a test first needs it, not all missing ones before the first test",
        kind="bool",
        default=False,
    ),
    Option(
        "lock_timeout",
        "Seconds to wait for another process's build before failing (default: as long as it takes)",
        metavar="SECONDS",
    ),
    Option(
        "python",
        "Run each test that uses isoenv once per interpreter spec (3.12, py312, pypy3.10, 3.13t, >=3.11, or a "
        "path); give several comma-separated, as repeated flags, or one per ini line",
        kind="linelist",
        default=(),
        metavar="SPEC",
    ),
    Option(
        "strict_python",
        "Fail, rather than skip, tests whose interpreter is not installed",
        kind="bool",
        default=False,
    ),
    Option("pythons", "List the Python interpreters found, and where, then exit", kind="command"),
)


def add_options(parser: pytest.Parser) -> None:
    """Register every option as a flag and an ini key, with the same help text."""
    group = parser.getgroup("isoenv", "cached isolated environments (pytest-isoenv)")
    for option in OPTIONS:
        if option.kind == "command":
            group.addoption(option.flag, action="store_true", default=False, dest=option.ini, help=option.help)
            continue
        if option.kind == "bool":
            group.addoption(option.flag, action="store_true", default=None, dest=option.ini, help=option.help)
        elif option.kind == "linelist":
            group.addoption(
                option.flag,
                action="append",
                default=None,
                dest=option.ini,
                metavar=option.metavar,
                help=option.help,
            )
        else:
            group.addoption(option.flag, default=None, dest=option.ini, metavar=option.metavar, help=option.help)
        parser.addini(option.ini, option.help, type=option.kind, default=option.default)


def get(config: pytest.Config, name: str) -> Any:
    """The value of option *name*: the command line wins over the ini file."""
    value = config.getoption("isoenv_" + name)
    return config.getini("isoenv_" + name) if value is None else value


def cache_dir(config: pytest.Config) -> Path:
    """The cache root: the flag, else the environment variable, else the ini key, else the user cache dir."""
    value = config.getoption("isoenv_cache_dir") or os.environ.get(CACHE_DIR_ENV) or config.getini("isoenv_cache_dir")
    if not value:
        return Path(platformdirs.user_cache_dir("pytest-isoenv", appauthor=False))
    path = Path(os.path.expanduser(value))
    # A relative ini value means the same place wherever pytest is started from.
    base = config.rootpath if not config.getoption("isoenv_cache_dir") and not os.environ.get(CACHE_DIR_ENV) else Path()
    return Path(os.path.abspath(base / path))
