"""After each test: a shared env the test changed is thrown away and rebuilt, and the test fails for it."""

from __future__ import annotations

from pytest_isoenv.errors import IsoEnvError, SharedEnvError
from pytest_isoenv.run import warm
from pytest_isoenv.session.shared import SharedEnvs


class SharedEnvGuard:
    """Keeps the shared envs of a session as built: the tests that reuse one must not see what another changed.

    Cheap enough for every test: a few ``stat`` calls and one directory
    listing per env handed out, through the record of each.
    """

    def __init__(self, shared: SharedEnvs) -> None:
        self._shared = shared

    def check(self, where: str) -> None:
        """After a test: if a shared env handed out this session was changed, throw it away and rebuild it.

        Raises :class:`SharedEnvError` naming *where* (the test that just ran)
        and each changed env. The rebuilt env is a new generation (other
        processes may still run in the changed one); env objects handed out
        before it point at the changed env, so get the env again after it.
        """
        errors = []
        for spec, env in self._shared.handed_out():
            record = self._shared.record(env.key)
            problem = None if record is None else record.problem()
            if problem is None:
                continue
            self._shared.take_back(spec)
            warm.stop(env.python)  # it may have imported what the test changed
            error = f"the shared env ({spec.describe()}) [{env.key[:12]}] was changed by {where}: {problem}"
            try:
                # The changed generation is no longer usable (its record says so), so this builds the next
                # one, unless another process did already.
                self._shared.get(spec, warn=lambda message: None)  # the error says it
                error += ". It was thrown away and rebuilt, as other tests reuse it"
            except IsoEnvError as exc:
                error += f". It was thrown away; rebuilding it failed: {exc}"
            errors.append(error)
        if errors:
            raise SharedEnvError(
                "\n".join(errors) + ". Give the test an env of its own with private=True "
                "(@pytest.mark.isoenv(..., private=True) or isoenv_factory.get(..., private=True))"
            )
