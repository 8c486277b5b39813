"""IsoEnvFactory: the public way to ask for an env (``isoenv_factory.get()``).

Each call is handed to the session's :class:`~pytest_isoenv.session.envs.SessionEnvs`,
which the plugin owns and which runs the chain behind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_isoenv.errors import SpecError
from pytest_isoenv.run.env import IsolatedEnv
from pytest_isoenv.session.envs import SessionEnvs, TestContext
from pytest_isoenv.spec.arguments import EnvOptions, PathArg, bind_options

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11


class IsoEnvFactory:
    """Hands out isolated envs; one per session (the ``isoenv_factory`` fixture).

    Shared envs come from the cache: built once per distinct spec, then reused
    by every test, session and xdist worker that asks for the same one.
    """

    def __init__(self, envs: SessionEnvs) -> None:
        self._envs = envs

    def get(self, *requirements: PathArg, **options: Unpack[EnvOptions]) -> IsolatedEnv:
        """An env with *requirements* (PEP 508 strings or paths to local projects, wheels, sdists).

        The keyword arguments are the marker's (:class:`~pytest_isoenv.spec.arguments.EnvOptions`),
        with the same defaults: *editable* projects are installed in editable
        mode; relative paths resolve against pytest's rootdir. *python* picks the
        interpreter (default: the one running pytest, or in a test that the Python
        matrix runs on several interpreters, that test's; see
        :doc:`how-to/dependency-matrix`). A shared env (the default) must not be
        changed; ``private=True`` gives a fresh env of the caller's own.
        ``warm=True`` runs the env's Python programs in forks of an interpreter
        that started once, with the *preload* modules imported (see
        :mod:`pytest_isoenv.run.warm`). A keyword the marker does not take is
        refused as the marker refuses it, with a :class:`~pytest_isoenv.SpecError`.
        """
        context = self._envs.context()
        bound = bind_options(options, context.nodeid)
        if bound.get("python") is None and context.matrix_python is not None:
            bound["python"] = self._follow_matrix(context)
        return self._envs.env(self._envs.spec(requirements, **bound))

    def _follow_matrix(self, context: TestContext) -> str:
        """The Python matrix's interpreter for a ``get()`` without ``python=``, or a loud error where it cannot be.

        A fixture broader than a test is made once, for the tests on every
        interpreter: following the test that happens to make it would hand its
        env to tests on other Pythons.
        """
        assert context.matrix_python is not None
        if context.broad_fixture is None:
            return context.matrix_python
        name, scope = context.broad_fixture
        raise SpecError(
            f"isoenv_factory.get() without python= in the {scope}-scoped fixture {name!r}, for a test the "
            f"Python matrix runs on {context.matrix_python}: the fixture is made once for the tests on every Python, "
            "so its env cannot follow the matrix",
            where=context.nodeid,
            fix=f"Make {name!r} function-scoped so that each test gets an env on its own Python, or pass python= "
            "to get() (python=sys.executable for the Python running pytest)",
        )
