"""What a test writes: the ``isoenv`` marker, the spec a test's marker asks for, and the plugin's fixtures.

The entry point (:mod:`pytest_isoenv.plugin.hooks`) registers this module as a
plugin of its own when it configures the session, so that the fixtures exist
only while the plugin is enabled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_isoenv.errors import InterpreterNotFound, IsoEnvError
from pytest_isoenv.plugin import access, options
from pytest_isoenv.plugin.access import TMP_PATH_FACTORY
from pytest_isoenv.plugin.state import REPORTER, SKIPPED_BY_FIXTURE, session_envs
from pytest_isoenv.spec.arguments import bind_options, signature

if TYPE_CHECKING:
    from pytest_isoenv.factory import IsoEnvFactory
    from pytest_isoenv.run.env import IsolatedEnv
    from pytest_isoenv.session.envs import SessionEnvs
    from pytest_isoenv.spec.envspec import EnvSpec

#: The marker's line in ``pytest --markers``, its arguments as the spec layer defines them.
MARKER = (
    f"isoenv({signature()}): the packages the test's `isoenv` env has; "
    "a list in place of a requirement runs the test once per alternative; the closest marker wins"
)

_Function = TypeVar("_Function", bound=Callable[..., Any])


def _with_signature(fixture: _Function) -> _Function:
    """*fixture* with ``{signature}`` in its docstring replaced by the marker's arguments, so that they cannot drift."""
    fixture.__doc__ = (fixture.__doc__ or "").replace("{signature}", signature())
    return fixture


#: A test's spec, once worked out: its prebuild, its plan line and its ``isoenv`` fixture ask for the same one.
ITEM_SPEC = pytest.StashKey["EnvSpec"]()


def marker_spec(envs: SessionEnvs, item: pytest.Item) -> EnvSpec:
    """The spec a test's closest ``isoenv`` marker asks for (no marker: an env with no extra packages).

    On the interpreter the Python matrix gave the test, if it gave one, and
    with the alternatives of its cell of the dependency matrix. Worked out
    once per test and session; a spec that cannot be made is refused each time.
    """
    spec = item.stash.get(ITEM_SPEC, None)
    if spec is None:
        spec = item.stash[ITEM_SPEC] = _marker_spec(envs, item)
    return spec


def _marker_spec(envs: SessionEnvs, item: pytest.Item) -> EnvSpec:
    from pytest_isoenv.plugin import matrix

    marker = item.get_closest_marker("isoenv")
    params = getattr(getattr(item, "callspec", None), "params", {})
    args, kwargs = matrix.choose(
        marker.args if marker else (), marker.kwargs if marker else {}, params.get("isoenv_alternatives"), item.nodeid
    )
    if "isoenv_python" in params:
        kwargs["python"] = params["isoenv_python"]
    # Bound to the keywords get() takes: a misspelled one is refused as get() refuses it.
    return envs.spec(args, where=item.nodeid, **bind_options(kwargs, item.nodeid))


@pytest.fixture(scope="session")
@_with_signature
def isoenv_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> IsoEnvFactory:
    """Session-scoped factory of isolated envs, for fixtures of your own:
    ``isoenv_factory.get({signature})``.

    ``get()`` takes the marker's arguments and returns an
    :class:`~pytest_isoenv.IsolatedEnv`, built once per distinct set of
    arguments and cached across tests, sessions and xdist workers.
    """

    request.config.stash[TMP_PATH_FACTORY] = tmp_path_factory
    return access.get_factory(request.config)


@pytest.fixture
def isoenv_python(request: pytest.FixtureRequest) -> str | None:
    """The ``python=`` spec the test's ``isoenv`` env is built on, when the Python matrix chose it.

    Set when the run lists Pythons (``--isoenv-pythons``) or the test's marker
    lists several (``python=["3.12", "3.13"]``); the test then runs once per
    interpreter, with ids such as ``test_x[py3.12]``. ``None`` otherwise.
    """
    spec: str | None = getattr(request, "param", None)
    return spec


@pytest.fixture
def isoenv_alternatives(request: pytest.FixtureRequest) -> tuple[object, ...] | None:
    """The alternatives the dependency matrix chose for this test, one per list in its marker, else ``None``.

    ``@pytest.mark.isoenv(["attrs==22.*", "attrs==23.*"], "requests")`` runs the
    test twice, with ids ``test_x[attrs==22.*]`` and ``test_x[attrs==23.*]``;
    this fixture is then ``("attrs==22.*",)`` and ``("attrs==23.*",)``.
    """
    chosen: tuple[object, ...] | None = getattr(request, "param", None)
    return chosen


@pytest.fixture
@_with_signature
def isoenv(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    isoenv_python: str | None,
    isoenv_alternatives: tuple[object, ...] | None,
) -> IsolatedEnv:
    """The isolated env the test's closest ``isoenv`` marker asks for:
    ``@pytest.mark.isoenv({signature})``.

    Without a marker: an env with pip and no other packages. Shared envs are
    reused across tests and must not be changed (a test that installs into or
    removes from one gets an error at teardown, and the env is rebuilt); mark
    the test with ``private=True`` to get an env of its own that it may change.
    A test whose interpreter is not installed is skipped (an error with
    ``--isoenv-strict-python``).
    """
    # tmp_path_factory is requested for the folder of private envs (not isoenv_factory: a test that requests
    # that, itself or through a fixture, makes envs that --isoenv-plan cannot list); isoenv_python and
    # isoenv_alternatives so that the matrices can parametrise them (marker_spec reads their values).
    request.config.stash[TMP_PATH_FACTORY] = tmp_path_factory
    envs = session_envs(request.config)
    skip = None
    try:
        return envs.env(marker_spec(envs, request.node))
    except InterpreterNotFound as exc:
        if not options.get(request.config, "strict_python"):
            # Said once in the summary, with where it was looked for; each test gets a short reason.
            skip = request.config.stash[REPORTER].missing_python(exc)
        problem = f"{exc} (--isoenv-strict-python)"
    except IsoEnvError as exc:
        problem = str(exc)
    # Outside the except blocks, so the report is the message alone, not a chain of exceptions.
    if skip is not None:
        request.node.stash[SKIPPED_BY_FIXTURE] = True  # reported at the test's location: see pytest_runtest_makereport
        pytest.skip(skip)
    pytest.fail(problem, pytrace=False)
