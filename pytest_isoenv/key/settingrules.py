"""How each pip and uv setting counts for the key: by value unless known harmless, by content when it names files.

The rule is the other way round from a list of settings that matter: every
``PIP_*`` and ``UV_*`` variable and every setting of pip's and uv's
configuration files counts by its value, so a setting added by a new release
of either tool counts from the day it appears. Exceptions, each stated here:

- :data:`HARMLESS`, the one list of settings that cannot change what gets
  installed, each with the reason;
- :data:`BY_CONTENT`, the settings whose value names files or folders: they
  count by what those hold, as a requirement that names them would;
- :data:`REQUIREMENTS` and the settings :mod:`pytest_isoenv.key.settings` drops
  because they install elsewhere: no build sees them, so they count for nothing.

Settings are named as variables (``PIP_CACHE_DIR``, ``UV_CACHE_DIR``): pip's
file option ``cache-dir`` is the variable ``PIP_CACHE_DIR``, and a key of a
``uv.toml`` is the ``UV_`` variable of the same name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.material import constraints_material, location_material

#: Settings that cannot change what gets installed, by variable name, each with the reason.
HARMLESS: dict[str, str] = {
    "PIP_CACHE_DIR": "where downloads and built wheels are cached, not what they are",
    "PIP_NO_CACHE_DIR": "whether the cache is used: the same index gives the same files",
    "PIP_PROGRESS_BAR": "output only",
    "PIP_NO_COLOR": "output only",
    "PIP_VERBOSE": "output only",
    "PIP_QUIET": "output only",
    "PIP_LOG": "a log file pip writes, never reads",
    "PIP_REPORT": "a report file pip writes after installing, never reads",
    "PIP_NO_INPUT": "prompts: without input a build fails, it does not change",
    "PIP_KEYRING_PROVIDER": "where credentials come from, not what the index serves",
    "PIP_TIMEOUT": "network patience: a timeout fails a build, it does not change it",
    "PIP_RETRIES": "network patience",
    "PIP_RESUME_RETRIES": "network patience",
    "PIP_DISABLE_PIP_VERSION_CHECK": "a notice about pip's own version",
    "PIP_ROOT_USER_ACTION": "a warning when run as root",
    "PIP_NO_WARN_SCRIPT_LOCATION": "a warning only",
    "PIP_NO_WARN_CONFLICTS": "a warning only",
    "PIP_CERT": "which certificates are trusted for reaching the index, not what it serves",
    "PIP_CLIENT_CERT": "how pip proves who it is to the index, not what it serves",
    "PIP_TRUSTED_HOST": "whether plain HTTP is allowed to a host: a failure, not another env",
    "PIP_PROXY": "the route to the index, not what it serves",
    "PIP_NO_PROXY_ENV": "the route to the index, not what it serves",
    "PIP_NO_CLEAN": "keeps pip's temporary build folders, outside the env",
    "UV_CACHE_DIR": "where uv caches, not what it installs (the installer keeps it on the envs' file system)",
    "UV_NO_CACHE": "whether the cache is used: the same index gives the same files",
    "UV_NO_PROGRESS": "output only",
    "UV_KEYRING_PROVIDER": "where credentials come from, not what the index serves",
    "UV_HTTP_TIMEOUT": "network patience: a timeout fails a build, it does not change it",
    "UV_HTTP_RETRIES": "network patience",
    "UV_INSECURE_HOST": "whether certificates are checked for a host: a failure, not another env",
    "UV_NATIVE_TLS": "which certificates are trusted, not what the index serves",
    "UV_SYSTEM_CERTS": "which certificates are trusted, not what the index serves",
    "UV_CONCURRENT_DOWNLOADS": "parallelism only",
    "UV_CONCURRENT_BUILDS": "parallelism only",
    "UV_CONCURRENT_INSTALLS": "parallelism only",
}

#: Settings whose value names files or folders, by variable name, and what of them counts:
#: ``requirements`` files by content and what they include, ``find-links`` folders by their archives,
#: ``config`` files by the settings in them. ``index`` settings name an index, local or remote: what it
#: serves is the state of the index, which the key leaves out by design (see the docs), so they count
#: by value only.
BY_CONTENT: dict[str, str] = {
    "PIP_CONSTRAINT": "requirements",
    "PIP_BUILD_CONSTRAINT": "requirements",
    "PIP_FIND_LINKS": "find-links",
    "PIP_INDEX_URL": "index",
    "PIP_EXTRA_INDEX_URL": "index",
    "UV_CONSTRAINT": "requirements",
    "UV_OVERRIDE": "requirements",
    "UV_EXCLUDE": "requirements",
    "UV_BUILD_CONSTRAINT": "requirements",
    "UV_FIND_LINKS": "find-links",
    "UV_CONFIG_FILE": "config",
    "UV_INDEX": "index",
    "UV_DEFAULT_INDEX": "index",
    "UV_INDEX_URL": "index",
    "UV_EXTRA_INDEX_URL": "index",
}

#: pip settings that add requirements to every install. An env holds what its test asks for, whichever
#: installer builds it (uv never reads these), so no build sees them: the way to add requirements is the
#: marker's ``requirements_files=``, ``editable=`` and ``groups=``, which count by content.
REQUIREMENTS = frozenset({"requirement", "editable", "group", "requirements-from-script"})

#: pip's second names of options (``--default-timeout`` is ``--timeout``): a variable or file option may use
#: either, and counts as the first.
PIP_ALIASES: dict[str, str] = {
    "default-timeout": "timeout",
    "log-file": "log",
    "local-log": "log",
    "require-venv": "require-virtualenv",
    "pypi-url": "index-url",
    "source": "src",
    "source-dir": "src",
    "source-directory": "src",
    "no-dependencies": "no-deps",
    "only-dependencies": "only-deps",
}


def pip_option(name: str) -> str:
    """A pip option as pip matches it, from a variable (``PIP_DEFAULT_TIMEOUT``) or a file (``default_timeout``)."""
    option = (name[4:] if name.upper().startswith("PIP_") else name).lower().replace("_", "-").lstrip("-")
    return PIP_ALIASES.get(option, option)


def pip_variable(option: str) -> str:
    """The variable name of a pip option (``cache-dir`` is ``PIP_CACHE_DIR``)."""
    return "PIP_" + pip_option(option).upper().replace("-", "_")


def uv_variable(name: str) -> str:
    """The variable name of a uv setting (``cache-dir`` in a ``uv.toml`` is ``UV_CACHE_DIR``)."""
    return name if name.startswith("UV_") else "UV_" + name.upper().replace("-", "_")


def setting_contents(name: str, variable: str, values: list[str], hashes: FileHashes, base: Path | None = None) -> Any:
    """Key material for the files and folders the setting *variable* names (its value split into *values*).

    Requirements-like files by their content and what they include, find-links folders by their archives
    (see :data:`~pytest_isoenv.key.settingrules.BY_CONTENT`); for other settings nothing but the value.
    Relative paths mean *base* (default: the working directory).
    """
    kind = BY_CONTENT.get(variable)
    if kind == "find-links":
        return {f"{name}:contents": [location_material(v, hashes, base) for v in values]}
    if kind == "requirements":
        return {f"{name}:contents": [constraints_material(v, hashes, base) for v in values]}
    return {}
