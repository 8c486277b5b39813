"""pytest-isoenv: cached, isolated Python environments for pytest.

Ask for an env with ``@pytest.mark.isoenv(...)`` and the ``isoenv`` fixture, or
build your own fixtures on ``isoenv_factory``. Each distinct env is built once
and reused by every test, session and xdist worker that needs it.
"""

from __future__ import annotations

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
]
