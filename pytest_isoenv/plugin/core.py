"""Starting the plugin's core for one session: its envs, and what it says once it knows its installer.

The entry point (:mod:`pytest_isoenv.plugin.hooks`) imports this module only
when a test first asks for an env or a command needs one, so a run that uses
no env never loads the core (the session, the cache, the installers, finding
interpreters) nor what they import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_isoenv.installers.choice import installer_notes
from pytest_isoenv.plugin import options
from pytest_isoenv.plugin.reporting import Reporter, installer_note
from pytest_isoenv.run import warm
from pytest_isoenv.session.envs import SessionEnvs, TestContext

if TYPE_CHECKING:
    from pytest_isoenv.run.coverage import Measurement

#: The warm interpreters this process ran before the session's core started.
WARM_BEFORE = pytest.StashKey[list[warm.WarmServer]]()


def start(
    config: pytest.Config,
    reporter: Reporter,
    *,
    private_root: Callable[[], Path],
    context: Callable[[], TestContext],
    measurement: Measurement | None,
) -> SessionEnvs:
    """The session's envs, as the options say: cheap, as nothing is read from disk until an env is asked for."""
    # A session run in-process by another (pytester) stops only the warm interpreters it started.
    config.stash[WARM_BEFORE] = warm.servers()
    return SessionEnvs(
        options.settings_from_config(config),
        private_root=private_root,
        context=context,
        notify=reporter.progress,
        # A repair is not the fault of the test that meets it: it is said in the output, not warned about.
        warn=reporter.repaired,
        # -v streams installer output; otherwise it only goes to the build's log.
        echo=reporter.echo if reporter.verbosity > 0 else None,
        coverage=measurement,
    )


def installer_lines(config: pytest.Config, envs: SessionEnvs) -> list[str]:
    """What the header says once the core has started: the installer chosen, with why, its warnings, and warm.

    The header before that names the installer as set (``auto`` unless set):
    choosing one reads the user's pip and uv configuration and looks for uv.
    """
    installer = envs.settings.installer
    label, warnings = installer_notes(installer)
    # A plain "pip" from auto means uv is not installed (else the label says why auto passed it over).
    lines = [f"isoenv: cache {options.cache_dir(config)}, installer {label}{installer_note(installer, label)}"]
    lines += [f"isoenv: warning: {warning}" for warning in warnings]
    unavailable = warm.unavailable()
    if unavailable is not None:
        lines.append(f"isoenv: {unavailable}: warm=True envs run every call as a plain subprocess")
    return lines


def stop(config: pytest.Config, envs: SessionEnvs) -> None:
    """At the session's end: stop the warm interpreters it started, and release its lease."""
    # They would go with this process anyway; stopping them here is tidy.
    before: list[warm.WarmServer] = config.stash.get(WARM_BEFORE, [])
    warm.stop(keep=before)
    envs.close()


def warm_summary() -> list[str]:
    """Summary lines: the envs whose warm calls ran as plain subprocesses, and why."""
    return [f"isoenv: warm=True ran plain subprocesses for {line}" for line in warm.unsupported()]
