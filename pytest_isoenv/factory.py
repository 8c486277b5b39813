"""IsoEnvFactory: the public way to ask for an env (``isoenv_factory.get()``).

Each call is handed to the session's :class:`~pytest_isoenv.session.envs.SessionEnvs`,
which the plugin owns and which runs the chain behind it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_isoenv.errors import SpecError
from pytest_isoenv.run.env import IsolatedEnv
from pytest_isoenv.session.envs import SessionEnvs, TestContext
from pytest_isoenv.spec.arguments import PathArg


class IsoEnvFactory:
    """Hands out isolated envs; one per session (the ``isoenv_factory`` fixture).

    Shared envs come from the cache: built once per distinct spec, then reused
    by every test, session and xdist worker that asks for the same one.
    """

    def __init__(self, envs: SessionEnvs) -> None:
        self._envs = envs

    def get(
        self,
        *requirements: PathArg,
        editable: PathArg | Sequence[PathArg] = (),
        constraints: PathArg | None = None,
        requirements_files: PathArg | Sequence[PathArg] = (),
        groups: str | Sequence[str] = (),
        python: PathArg | None = None,
        private: bool = False,
        installer: str | None = None,
        find_links: PathArg | Sequence[PathArg] = (),
        index_url: str | None = None,
        warm: bool = False,
        preload: str | Sequence[str] = (),
    ) -> IsolatedEnv:
        """An env with *requirements* (PEP 508 strings or paths to local projects, wheels, sdists).

        *editable* projects are installed in editable mode; relative paths
        resolve against pytest's rootdir. *python* picks the interpreter
        (default: the one running pytest, or in a test that the Python matrix
        runs on several interpreters, that test's; see :doc:`how-to/dependency-matrix`).
        A shared env (the default) must not be changed; ``private=True`` gives
        a fresh env of the caller's own. Every other keyword argument is as in
        the marker; ``warm=True`` runs the env's Python programs in forks of an
        interpreter that started once, with the *preload* modules imported (see
        :mod:`pytest_isoenv.run.warm`).
        """
        context = self._envs.context()
        if python is None and context.matrix_python is not None:
            python = self._follow_matrix(context)
        spec = self._envs.spec(
            requirements,
            editable=editable,
            constraints=constraints,
            requirements_files=requirements_files,
            groups=groups,
            python=python,
            private=private,
            installer=installer,
            find_links=find_links,
            index_url=index_url,
            warm=warm,
            preload=preload,
        )
        return self._envs.env(spec)

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
