"""pytest-isoenv: cached, isolated Python environments for pytest.

Ask for an env with ``@pytest.mark.isoenv(...)`` and the ``isoenv`` fixture, or
build your own fixtures on ``isoenv_factory``. Each distinct env is built once
and reused by every test, session and xdist worker that needs it.
"""

from __future__ import annotations

from .env import IsolatedEnv
from .errors import (
    BuildError,
    CacheError,
    CommandNotFound,
    InterpreterNotFound,
    IsoEnvError,
    IsoEnvWarning,
    RunError,
    SharedEnvError,
    SpecError,
)
from .factory import IsoEnvFactory
from .spec import EnvSpec
from .warm import WarmError

__all__ = [
    "BuildError",
    "CacheError",
    "CommandNotFound",
    "EnvSpec",
    "InterpreterNotFound",
    "IsoEnvError",
    "IsoEnvFactory",
    "IsoEnvWarning",
    "IsolatedEnv",
    "RunError",
    "SharedEnvError",
    "SpecError",
    "WarmError",
]
