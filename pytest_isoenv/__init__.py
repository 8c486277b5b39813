"""pytest-isoenv: cached, isolated Python environments for pytest.

Ask for an env with ``@pytest.mark.isoenv(...)`` and the ``isoenv`` fixture, or
build your own fixtures on ``isoenv_factory``; code that cannot take fixtures
(custom items, hooks) calls :func:`get_factory`. Each distinct env is built
once and reused by every test, session and xdist worker that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.run.env import IsolatedEnv
from pytest_isoenv.run.warm import WarmError
from pytest_isoenv.spec.envspec import EnvSpec

if TYPE_CHECKING:
    from pytest_isoenv.plugin.access import get_factory

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


def __getattr__(name: str) -> object:
    # get_factory is the plugin layer's, which imports pytest: only code that uses it pays for that import.
    if name == "get_factory":
        from pytest_isoenv.plugin.access import get_factory

        return get_factory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
