"""The session's factory for code that cannot take fixtures: :func:`get_factory`, and the state behind it.

Custom :class:`pytest.Item` subclasses and hooks get no fixtures; they reach
the same factory as the ``isoenv_factory`` fixture through the config.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from pytest_isoenv.errors import IsoEnvError
from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.session.envs import SessionEnvs

#: The session's envs, behind the ``isoenv_factory`` fixture and :func:`get_factory`.
ENVS = pytest.StashKey[SessionEnvs]()
#: pytest's temporary directories, where private envs go (set by the ``isoenv_factory`` and ``isoenv`` fixtures).
TMP_PATH_FACTORY = pytest.StashKey[pytest.TempPathFactory]()
_FACTORY = pytest.StashKey[IsoEnvFactory]()
#: Set once the session's envs are closed: a factory handed out after that would lease nothing.
_ENDED = pytest.StashKey[bool]()
#: The folder of private envs when no fixture gave pytest's temporary directories (custom items, hooks).
_OWN_TMP = pytest.StashKey[Path]()


def get_factory(config: pytest.Config) -> IsoEnvFactory:
    """The session's :class:`~pytest_isoenv.IsoEnvFactory`, for code that cannot take fixtures.

    The same object as the ``isoenv_factory`` fixture, for a custom
    :class:`pytest.Item`'s ``runtest()`` or a hook: ``get_factory(self.config).get("attrs==23.*")``.
    Shared, private and warm envs all work through it. A private env made
    before any test took ``isoenv`` or ``isoenv_factory`` lives in a temporary
    folder of the session's own, removed when the session ends, instead of
    under pytest's ``tmp_path`` folders.

    Raises :class:`~pytest_isoenv.IsoEnvError` before the plugin has configured
    the session (before its ``pytest_configure``), after the session ended,
    and when the plugin is disabled (``-p no:isoenv``).
    """
    __tracebackhide__ = True
    envs = config.stash.get(ENVS, None)
    if envs is None or config.stash.get(_ENDED, False):
        when = "after the session ended" if envs is not None else "before the isoenv plugin configured the session"
        raise IsoEnvError(
            f"pytest_isoenv.get_factory(config) was called {when}: there is no session factory then. "
            "Call it while tests run (in an item's runtest(), a fixture or a runtest hook) or from a "
            "pytest_configure that runs after the plugin's (trylast=True), with the plugin enabled (no -p no:isoenv)"
        )
    factory = config.stash.get(_FACTORY, None)
    if factory is None:
        factory = config.stash[_FACTORY] = IsoEnvFactory(envs)
    return factory


def start(config: pytest.Config, envs: SessionEnvs) -> None:
    """Make *envs* the session's, until the session ends (the plugin's ``pytest_configure`` calls this)."""
    config.stash[ENVS] = envs
    # After every pytest_unconfigure, the plugin's own included, which releases the envs.
    config.add_cleanup(lambda: config.stash.__setitem__(_ENDED, True))


def private_root(config: pytest.Config) -> Path:
    """A new folder for one private env: under pytest's temporary directories when a fixture gave them."""
    tmp_path_factory = config.stash.get(TMP_PATH_FACTORY, None)
    if tmp_path_factory is not None:
        return tmp_path_factory.mktemp("isoenv-private", numbered=True)
    own = config.stash.get(_OWN_TMP, None)
    if own is None:
        folder = own = config.stash[_OWN_TMP] = Path(tempfile.mkdtemp(prefix="isoenv-private-"))
        # The plugin made it, for this session alone: nobody else can find what is in it.
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    return Path(tempfile.mkdtemp(dir=own, prefix="env-"))
