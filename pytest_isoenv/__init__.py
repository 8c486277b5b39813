"""pytest-isoenv: cached, isolated Python environments for pytest.

Ask for an env with ``@pytest.mark.isoenv(...)`` and the ``isoenv`` fixture, or
build your own fixtures on ``isoenv_factory``; code that cannot take fixtures
(custom items, hooks) calls :func:`get_factory`. Each distinct env is built
once and reused by every test, session and xdist worker that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_isoenv.errors import (
    BuildError,
    CacheError,
    CommandNotFound,
    InterpreterNotFound,
    IsoEnvError,
    RunError,
    SharedEnvError,
    SpecError,
)

if TYPE_CHECKING:
    from pytest_isoenv.factory import IsoEnvFactory
    from pytest_isoenv.plugin.access import get_factory
    from pytest_isoenv.run.env import IsolatedEnv
    from pytest_isoenv.run.warm import WarmError
    from pytest_isoenv.spec.envspec import EnvSpec

#: The public names that live in the core, by module: imported on first use, as pytest imports this
#: package for the plugin's entry point in every run, and a run that uses no env should not load the core.
#: get_factory is the plugin layer's, which imports pytest: only code that uses it pays for that import.
_LAZY = {
    "EnvSpec": "pytest_isoenv.spec.envspec",
    "get_factory": "pytest_isoenv.plugin.access",
    "IsoEnvFactory": "pytest_isoenv.factory",
    "IsolatedEnv": "pytest_isoenv.run.env",
    "WarmError": "pytest_isoenv.run.warm",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later look-ups find it without this function
    return value


__all__ = [
    "BuildError",
    "CacheError",
    "CommandNotFound",
    "EnvSpec",
    "InterpreterNotFound",
    "IsoEnvError",
    "IsoEnvFactory",
    "IsolatedEnv",
    "RunError",
    "SharedEnvError",
    "SpecError",
    "WarmError",
    "get_factory",
]
