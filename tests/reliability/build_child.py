"""Build one env in a process of its own, for tests that kill a build part-way (run as a script).

Usage: ``python build_child.py CACHE_DIR WHEELHOUSE KILL_AT REQUIREMENT...``. With
KILL_AT ``record`` the process SIGKILLs itself at the moment the completion record
would be written; with ``none`` it builds normally (the test kills it from outside).
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.session.envs import SessionEnvs
from pytest_isoenv.session.settings import Settings
from pytest_isoenv.spec.index import IndexOptions
from pytest_isoenv.store.record import Record


def main() -> None:
    cache_dir, wheelhouse, kill_at, *requirements = sys.argv[1:]
    if kill_at == "record":

        def dump(self: Record) -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        Record.dump = dump  # type: ignore[method-assign]
    settings = Settings(
        cache_dir=Path(cache_dir),
        rootdir=Path.cwd(),
        run_id=uuid.uuid4().hex,
        index=IndexOptions(find_links=(wheelhouse,), offline=True),
        installer=os.environ.get("ISOENV_TEST_INSTALLER", "auto"),
    )
    factory = IsoEnvFactory(SessionEnvs(settings))
    print(factory.get(*requirements).path, flush=True)


if __name__ == "__main__":
    main()
