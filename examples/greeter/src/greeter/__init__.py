"""Greets people, from Python or from the command line (``greet``)."""

from __future__ import annotations

from collections.abc import Iterable

__version__ = "1.0.0"
__all__ = ["greet", "greet_all"]


def greet(name: str, greeting: str = "Hello") -> str:
    """One greeting: ``greet("Ada")`` is ``"Hello, Ada!"``."""
    name = name.strip()
    if not name:
        raise ValueError("a greeting needs a name")
    return f"{greeting}, {name}!"


def greet_all(names: Iterable[str], greeting: str = "Hello") -> list[str]:
    """A greeting for each name, in order."""
    return [greet(name, greeting) for name in names]
