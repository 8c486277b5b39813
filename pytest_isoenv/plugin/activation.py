"""The marker alone is enough: a test marked ``isoenv`` runs with its env activated.

Activated means what activating a virtual env in a shell means, for the test's
own process: the env's scripts first on ``PATH``, ``VIRTUAL_ENV`` set, and the
host's Python variables (``PYTHONHOME``, ``PYTHONPATH``, ...) left out, as
:attr:`~pytest_isoenv.IsolatedEnv.environ` leaves them out. A suite whose tests
call ``subprocess.run(["mycli", ...])`` moves over by adding the marker.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_isoenv.run.env import IsolatedEnv


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Module | pytest.Class, name: str, obj: object) -> None:
    """A function marked ``isoenv`` (itself, or its class or module) takes the ``isoenv`` fixture, named or not.

    Before pytest works out the test's fixtures: the matrices (a list in the
    marker, ``--isoenv-pythons``) then parametrise a test that does not name the
    fixture as they parametrise one that does. Only ``pytest.mark.usefixtures``
    is added, so what the test sees is what naming the fixture gives it.
    """
    if not inspect.isfunction(obj):
        return
    own = getattr(obj, "pytestmark", ())  # where pytest keeps a function's marks, as for a module's pytestmark
    marked = any(getattr(mark, "name", None) == "isoenv" for mark in own) or collector.get_closest_marker("isoenv")
    # Once: a function collected again (a class in two modules) has it already.
    taken = any(getattr(mark, "name", None) == "usefixtures" and "isoenv" in mark.args for mark in own)
    if marked and not taken:
        pytest.mark.usefixtures("isoenv")(obj)


def uses_env(item: pytest.Item) -> bool:
    """Whether *item* gets an ``isoenv`` env: it takes the fixture, or it is marked (and the marker activates one)."""
    return "isoenv" in getattr(item, "fixturenames", ()) or item.get_closest_marker("isoenv") is not None


@contextlib.contextmanager
def activated(env: IsolatedEnv) -> Iterator[None]:
    """``os.environ`` as *env*'s processes see it, until the block ends; then every variable as it was.

    The variables are :attr:`IsolatedEnv.environ`'s, plus coverage's while the
    session measures the env's processes, so that a plain ``subprocess.run``
    of the env's Python is measured as :meth:`IsolatedEnv.run` would be.
    """
    wanted: dict[str, str | None] = dict(env.environ)
    if env.coverage is not None:
        wanted.update(env.coverage.environ(env))
    # What the env leaves out of the host's variables goes for the block too.
    wanted.update({name: None for name in os.environ if name not in wanted})
    saved = {name: os.environ.get(name) for name, value in wanted.items() if os.environ.get(name) != value}
    _apply({name: wanted[name] for name in saved})
    try:
        yield
    finally:
        _apply(saved)


def _apply(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _isoenv_activate(request: pytest.FixtureRequest) -> Generator[None, None, None]:
    """A test marked ``isoenv`` runs with its env activated, whether or not it takes the ``isoenv`` fixture.

    Its env's scripts are first on ``PATH`` and ``VIRTUAL_ENV`` is set, for the
    test and its function-scoped fixtures; every variable is restored after the
    test, passed or failed. A test without the marker is left as it is.
    """
    # The only cost an unmarked test pays.
    if request.node.get_closest_marker("isoenv") is None:
        yield
        return
    # Through the fixture, so that a test without it gets its env, and its errors and skips, exactly as one with it.
    env = request.getfixturevalue("isoenv")
    with activated(env):
        yield
