"""The plugin's options: each a command-line flag and an ini key of the same name, defined once.

The reference docs build their option table from :data:`OPTIONS`, so what
``pytest --help`` says and what the docs say cannot drift apart. What the
options and a test's marker say is read here too: the session's
:class:`~pytest_isoenv.session.settings.Settings`, its Python matrix and each test's spec.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_isoenv.errors import IsoEnvError, SpecError
from pytest_isoenv.plugin import xdist as workers
from pytest_isoenv.spec.arguments import RESOLUTIONS
from pytest_isoenv.spec.reqfiles import is_url

if TYPE_CHECKING:
    from pytest_isoenv.session.settings import Settings

# This module is imported by the plugin's entry point in every pytest run: what reads the options into the
# core's objects imports the core inside the functions that need it, so a run that uses no env never loads it.

CACHE_DIR_ENV = "PYTEST_ISOENV_CACHE_DIR"
#: The cache commands, by option name.
COMMANDS = ("list", "prune", "clear")
#: The commands that run no tests, by option name: they work without the project's conftest files.
NO_TEST_COMMANDS = (*COMMANDS, "list_pythons")
#: The installers ``--isoenv-installer`` names (``installers.choice`` holds them; checked here without loading it).
INSTALLER_NAMES = ("auto", "pip", "uv")


@dataclass(frozen=True)
class Option:
    """One setting: ``--isoenv-<name>`` on the command line and ``isoenv_<name>`` in the ini file.

    A ``bool`` is named for what it turns on, whichever way its flag turns it, as
    pytest names ``fold_skipped`` the setting its ``--no-fold-skipped`` turns off.
    """

    name: str
    """The setting, as :func:`get` reads it (the flag's ``dest``)."""
    help: str
    kind: Literal["string", "bool", "linelist", "command"] = "string"
    """``command`` is a flag that does something, like ``--fixtures`` or a report: it has no ini key."""
    default: Any = None
    """The setting's value when neither the flag nor the ini key gives one."""
    metavar: str | None = None
    negative: bool = False
    """A ``bool`` that is on by default: the flag is ``--isoenv-no-<name>`` and turns it off."""
    ini_negative: bool = False
    """The ini key is ``isoenv_no_<name>`` and ``true`` turns the setting off (keys released so keep their name)."""

    @property
    def flag(self) -> str:
        return "--isoenv-" + ("no-" if self.negative else "") + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "isoenv_" + self.name

    @property
    def ini(self) -> str:
        return "isoenv_" + ("no_" if self.ini_negative else "") + self.name

    @property
    def ini_default(self) -> Any:
        """The ini key's own default: the setting's, turned round where the key says no."""
        return not self.default if self.ini_negative else self.default

    @property
    def has_ini(self) -> bool:
        return self.kind != "command"


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
        "prebuild",
        "Build each env when a test first needs it, not all missing ones before the first test",
        kind="bool",
        default=True,
        negative=True,
        ini_negative=True,
    ),
    Option(
        "lock_timeout",
        "Seconds to wait for another process's build before failing (default: as long as it takes)",
        metavar="SECONDS",
    ),
    Option(
        "max_age",
        "Days an env may go unused before pruning removes it (default: 30)",
        default="30",
        metavar="DAYS",
    ),
    Option(
        "max_size",
        "Cache size above which pruning removes the least recently used envs, such as 2GB or 500MiB "
        "(default: no limit)",
        metavar="SIZE",
    ),
    Option(
        "auto_prune",
        "Do not prune the cache when a session ends (it only ever prunes when no other process uses the cache)",
        kind="bool",
        default=True,
        negative=True,
        ini_negative=True,
    ),
    Option(
        "list",
        "List the cached envs (key, Python, packages, installer, size, created, last used) and exit",
        kind="command",
    ),
    Option(
        "prune",
        "Remove envs unused for isoenv_max_age days, then the least recently used ones over isoenv_max_size, and exit",
        kind="command",
    ),
    Option("clear", "Remove every cached env that no other process is using or building, and exit", kind="command"),
    Option(
        "plan",
        "After collection, show the envs the selected tests need, their keys, whether each is cached, "
        "and a plan key for CI caches",
        kind="command",
    ),
    Option(
        "plan_key",
        "Print only the plan key of the selected tests (as --isoenv-plan computes it) and exit without running "
        "them; nothing else is written to stdout",
        kind="command",
    ),
    Option(
        "pythons",
        "The Pythons this run tests on: each test that uses isoenv runs once per interpreter spec (3.12, py312, "
        "pypy3.10, 3.13t, >=3.11, or a path); comma-separated, repeated flags, or one per ini line",
        kind="linelist",
        default=(),
        metavar="SPECS",
    ),
    Option(
        "strict_python",
        "Fail, rather than skip, tests whose interpreter is not installed",
        kind="bool",
        default=False,
    ),
    Option("list_pythons", "List the Python interpreters found, and where, then exit", kind="command"),
    Option(
        "with",
        "A requirement every env gets: its version replaces that of the env's own requirement of the same name, "
        "whose extras and marker stay (the override's extras are added; its marker, if any, wins), such as "
        "django==4.2.* (repeatable; one per ini line)",
        kind="linelist",
        default=(),
        metavar="REQUIREMENT",
    ),
    Option(
        "resolution",
        "Which versions installers pick: highest, lowest-direct (the lowest that the direct requirements allow) "
        "or lowest (also for indirect ones); other than highest needs uv",
        default="highest",
        metavar="STRATEGY",
    ),
    Option(
        "coverage",
        "Measure the code that envs run while the session measures coverage (pytest-cov's --cov or "
        "coverage run): each env then also has the host's coverage version. The flag turns it off",
        kind="bool",
        default=True,
        negative=True,
    ),
)


def add_options(parser: pytest.Parser) -> None:
    """Register every option as a flag and an ini key, with the same help text."""
    group = parser.getgroup("isoenv", "cached isolated environments (pytest-isoenv)")
    for option in OPTIONS:
        if option.kind == "command":
            group.addoption(option.flag, action="store_true", default=False, dest=option.dest, help=option.help)
            continue
        if option.kind == "bool":
            action = "store_false" if option.negative else "store_true"
            group.addoption(option.flag, action=action, default=None, dest=option.dest, help=option.help)
        elif option.kind == "linelist":
            group.addoption(
                option.flag,
                action="append",
                default=None,
                dest=option.dest,
                metavar=option.metavar,
                help=option.help,
            )
        else:
            group.addoption(option.flag, default=None, dest=option.dest, metavar=option.metavar, help=option.help)
        parser.addini(option.ini, option.help, type=option.kind, default=option.ini_default)


_BY_NAME = {option.name: option for option in OPTIONS}


def get(config: pytest.Config, name: str) -> Any:
    """The value of option *name*: the command line wins over the ini file."""
    option = _BY_NAME[name]
    value = config.getoption(option.dest)
    if value is not None:
        return value
    value = config.getini(option.ini)
    return not value if option.ini_negative else value


def parse_resolution(config: pytest.Config) -> str:
    """``isoenv_resolution``: one of :data:`~pytest_isoenv.spec.arguments.RESOLUTIONS`."""
    value = str(get(config, "resolution") or "highest").strip()
    if value not in RESOLUTIONS:
        raise pytest.UsageError(
            f"--isoenv-resolution / isoenv_resolution: {value!r} is no resolution strategy. "
            f"Choose one of: {', '.join(RESOLUTIONS)}"
        )
    return value


def parse_with(config: pytest.Config) -> tuple[str, ...]:
    """``isoenv_with``: named requirements, canonicalised, each once."""
    requirements: list[str] = []
    if not any(value.strip() for value in get(config, "with")):
        return ()
    from pytest_isoenv.spec.envspec import parse_requirement

    for value in get(config, "with"):
        if value.strip():
            try:
                requirements.append(parse_requirement(value))
            except SpecError as exc:
                raise pytest.UsageError(f"--isoenv-with / isoenv_with: {exc}") from None
    return tuple(dict.fromkeys(requirements))


def parse_days(config: pytest.Config) -> float:
    """``isoenv_max_age`` as a number of days."""
    value = get(config, "max_age")
    try:
        days = float(value)
    except (TypeError, ValueError):
        days = -1.0
    if not days >= 0:
        raise pytest.UsageError(f"isoenv_max_age must be a number of days such as 30 or 0.5, not {value!r}")
    return days


_SIZE = r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(i)?)?b?"  # compiled on first use: most runs set no size


def parse_size(config: pytest.Config) -> int | None:
    """``isoenv_max_size`` in bytes (``None``: no limit). ``KB``, ``MB``... count in thousands, ``KiB``... in 1024s."""
    value = get(config, "max_size")
    if value in (None, ""):
        return None
    match = re.fullmatch(_SIZE, str(value).strip(), re.IGNORECASE)
    if match is None:
        raise pytest.UsageError(f"isoenv_max_size must be a size such as 2GB, 500MiB or 10000000, not {value!r}")
    number, prefix, binary = match.groups()
    return int(float(number) * (1024 if binary else 1000) ** " kmgt".index((prefix or " ").lower()))


@dataclass(frozen=True)
class Policy:
    """When envs go: the session's ``isoenv_max_age``, ``isoenv_max_size`` and whether it prunes at its end."""

    max_age: float
    max_size: int | None
    auto: bool

    @classmethod
    def from_config(cls, config: pytest.Config) -> Policy:
        """Read and check the options (a bad value is a usage error before anything runs)."""
        return cls(parse_days(config), parse_size(config), bool(get(config, "auto_prune")))


def paths_or_urls(config: pytest.Config, name: str) -> list[str]:
    """A linelist option of paths and URLs, each path made absolute as pytest does for its own options.

    Paths from the command line resolve against the invocation directory, paths from the ini file
    against the rootdir; URLs (``https://...``, ``file:...``) stay as given.
    """
    given = config.getoption("isoenv_" + name)
    base = config.invocation_params.dir if given is not None else config.rootpath
    values = config.getini("isoenv_" + name) if given is None else given
    return [value if is_url(value) else os.path.abspath(base / os.path.expanduser(value)) for value in map(str, values)]


def cache_dir(config: pytest.Config) -> Path:
    """The cache root: the flag, else the environment variable, else the ini key, else the user cache dir."""
    value = config.getoption("isoenv_cache_dir") or os.environ.get(CACHE_DIR_ENV) or config.getini("isoenv_cache_dir")
    if not value:
        import platformdirs

        return Path(platformdirs.user_cache_dir("pytest-isoenv", appauthor=False))
    path = Path(os.path.expanduser(value))
    # A relative ini value means the same place wherever pytest is started from.
    base = config.rootpath if not config.getoption("isoenv_cache_dir") and not os.environ.get(CACHE_DIR_ENV) else Path()
    return Path(os.path.abspath(base / path))


def misread_path_option(config: pytest.Config) -> str | None:
    """What went wrong if pytest took the rootdir from a path option's value given as a separate argument.

    pytest finds the rootdir before it knows the plugin's options, so in
    ``--isoenv-cache-dir PATH`` it counts ``PATH`` as a test path: an existing
    one moves the rootdir, and with it every relative path in markers. Seen
    where it shows: the rootdir holds ``PATH``, is not where pytest was
    started and has no configuration file of its own.
    """
    args = [str(arg) for arg in config.invocation_params.args]
    rootpath, invocation = config.rootpath, config.invocation_params.dir
    if rootpath == invocation or (config.inipath is not None and config.inipath.parent == rootpath):
        return None
    for option in OPTIONS:
        if option.metavar is None:
            continue
        for flag, value in itertools.pairwise(args):
            path = Path(os.path.abspath(invocation / os.path.expanduser(value)))
            if flag == option.flag and path.exists() and path.is_relative_to(rootpath):
                return (
                    f"the rootdir {str(rootpath)!r} is where pytest found {value!r}: it reads its rootdir before "
                    f"it knows this plugin's options, so {option.flag} {value} counted as a test path. "
                    f"Write {option.flag}={value} (one argument)"
                )
    return None


def check(config: pytest.Config) -> None:
    """Refuse bad option values before anything runs, with a usage error, without loading the core.

    What only the core can check (that an installer named explicitly is
    installed) is checked when the first env is asked for.
    """
    lock_timeout(config)
    installer = get(config, "installer") or None
    if installer not in (None, *INSTALLER_NAMES):
        raise pytest.UsageError(
            f"--isoenv-installer / isoenv_installer: unknown installer {installer!r}. "
            f"Choose one of: {', '.join(INSTALLER_NAMES)}"
        )
    if parse_resolution(config) != "highest":
        installer_for(config)  # whether it can follow the strategy
    parse_with(config)
    session_pythons(config)


def lock_timeout(config: pytest.Config) -> float:
    """``isoenv_lock_timeout`` in seconds (``-1``: as long as it takes)."""
    value = get(config, "lock_timeout")
    try:
        return -1.0 if value in (None, "") else float(value)
    except ValueError:
        raise pytest.UsageError(f"isoenv_lock_timeout must be a number of seconds, not {value!r}") from None


def installer_for(config: pytest.Config) -> str | None:
    """``isoenv_installer``, checked: the installer is available, and follows ``isoenv_resolution``."""
    from pytest_isoenv.installers.api import resolution_needs_uv
    from pytest_isoenv.installers.choice import installer_class

    installer = get(config, "installer") or None
    try:
        chosen = installer_class(installer)
    except SpecError as exc:
        raise pytest.UsageError(f"--isoenv-installer / isoenv_installer: {exc}") from None
    resolution = parse_resolution(config)
    if resolution != "highest" and chosen.name == "pip":
        raise pytest.UsageError(resolution_needs_uv(resolution))
    return installer


def settings_from_config(config: pytest.Config) -> Settings:
    """The session's :class:`~pytest_isoenv.factory.Settings`, read from flags and ini keys."""
    from pytest_isoenv.session.settings import Settings
    from pytest_isoenv.spec.index import IndexOptions

    given = workers.workerinput(config)
    return Settings(
        cache_dir=cache_dir(config),
        rootdir=config.rootpath,
        # Every xdist worker of one run shares the controller's id, so --isoenv-rebuild rebuilds once per run.
        run_id=given["testrunuid"] if given else uuid.uuid4().hex,
        index=IndexOptions(
            index_url=get(config, "index_url") or None,
            find_links=tuple(paths_or_urls(config, "find_links")),
            offline=bool(get(config, "offline")),
        ),
        rebuild=bool(get(config, "rebuild")),
        lock_timeout=lock_timeout(config),
        worker=given["workerid"] if given else None,
        installer=installer_for(config),
        with_requirements=parse_with(config),
        resolution=parse_resolution(config),
    )


def session_pythons(config: pytest.Config) -> list[str]:
    """The specs of ``--isoenv-pythons`` (paths against the invocation dir) or else of ``isoenv_pythons`` (rootdir)."""
    from_flags = config.getoption("isoenv_pythons")
    base = config.invocation_params.dir if from_flags else config.rootpath
    values = from_flags or config.getini("isoenv_pythons")
    if not values:
        return []
    from pytest_isoenv.plugin import matrix

    try:
        return matrix.split_specs(values, base)
    except IsoEnvError as exc:
        raise pytest.UsageError(f"--isoenv-pythons / isoenv_pythons: {exc}") from None
