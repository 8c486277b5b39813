"""The plugin's terminal output: progress while envs build, repairs, and the lines of the run's summary.

Lines go through pytest's terminal reporter, each on a line of its own, so
they never land in the middle of the progress dots. An xdist worker sends
them to the controller, which writes them (see :mod:`pytest_isoenv.plugin.xdist`).
What the summary needs from a worker reaches the controller with its
``workeroutput`` at the end.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import pytest

from pytest_isoenv.errors import InterpreterNotFound
from pytest_isoenv.plugin import xdist as workers
from pytest_isoenv.text import fit, table

if TYPE_CHECKING:
    from pytest_isoenv.session.stats import Stats

#: Where in ``workeroutput`` a worker's summary material travels.
WORKEROUTPUT_KEY = "isoenv_report"


def plural(count: int, noun: str) -> str:
    """``1 env``, ``2 envs``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def terminal_width(config: pytest.Config) -> int:
    """The terminal's width as pytest's terminal writer knows it (80 columns when it cannot tell).

    Before pytest is configured (the commands that run no tests), its rule: the
    width the OS or ``COLUMNS`` gives, 80 when that is under 40.
    """
    if config.pluginmanager.getplugin("terminalreporter") is not None:
        return int(config.get_terminal_writer().fullwidth)
    width = shutil.get_terminal_size(fallback=(80, 24)).columns
    return width if width >= 40 else 80


def line_width(config: pytest.Config) -> int | None:
    """How long the plugin's lines may be: the terminal's width, or ``None`` (whole) under ``-v``."""
    return None if int(config.getoption("verbose", 0)) > 0 else terminal_width(config)


def fit_lines(lines: list[str], width: int | None) -> list[str]:
    """*lines* cut to *width*, and a last line that says how to see them whole if one was cut."""
    cut = [fit(line, width) for line in lines]
    return [*cut, "(lines cut to the terminal's width: -v shows them whole)"] if cut != lines else cut


def installer_note(setting: str | None, name: str) -> str:
    """What the header adds after the installer's *name*: how to build faster, when ``auto`` fell back to pip."""
    if setting in (None, "auto") and name == "pip":
        return " (install pytest-isoenv[uv] to build with uv, several times faster)"
    return ""


class XdistHooks:
    """Hooks that only matter under pytest-xdist: workers' progress and summaries reach the controller.

    *stats* gives the session's counts: ``stats(False)`` is ``None`` while the
    core has not started (a worker that used no env has nothing to send),
    ``stats(True)`` makes them if need be (the controller merges into them).
    """

    def __init__(self, config: pytest.Config, reporter: Reporter, stats: Callable[[bool], Stats | None]) -> None:
        self.config = config
        self.reporter = reporter
        self.stats = stats

    def pytest_configure_node(self, node: Any) -> None:
        """In the controller, before a worker starts: the channel its progress lines come back on."""
        workers.open_progress_channel(node, self.reporter.receive)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput: dict[str, Any] | None = getattr(self.config, "workeroutput", None)
        stats = self.stats(False)
        if workeroutput is not None and stats is not None:
            workeroutput[WORKEROUTPUT_KEY] = self.reporter.to_workeroutput(stats)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        if data:
            stats = self.stats(True)
            if stats is not None:
                self.reporter.merge(data, stats)


class Reporter:
    """Writes the plugin's lines for one pytest process and keeps what its summary says.

    Verbosity: ``-v`` adds installer output, labelled with the env it builds,
    and lines as long as they need; otherwise a line is cut to the terminal's
    width. ``-q`` silences progress and everything optional in the summary,
    which says one line; ``-qq`` says something only when a build failed.
    Repairs are always said.

    Under xdist the controller alone writes: workers send their lines to it,
    and it says once how many envs the run builds, and each build once, with
    the time the summary gives it.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        # Not get_verbosity(): without the terminal plugin (-p no:terminal) pytest 8.0 has no "verbose" option.
        self.verbosity = int(config.getoption("verbose", 0))
        self.worker = workers.worker_id(config)
        self._send = workers.progress_sender(config)
        # Lines come from the main thread, build threads and (in the xdist controller) one thread per worker.
        self._lock = threading.Lock()
        #: What the plugin repaired on its own (a broken env rebuilt): not the fault of any test.
        self.repairs: list[str] = []
        #: ``python=`` specs that found no interpreter: the full explanation, and how many tests it skipped.
        self.missing: dict[str, tuple[str, int]] = {}
        #: The pre-build's progress: how many envs it builds, and how many it has said are done.
        self._planned = 0
        self._done = 0

    @property
    def width(self) -> int | None:
        """How long a line may be: the terminal's width (pytest's), or ``None`` (any length) under ``-v``."""
        return line_width(self.config)

    # -- lines while the run goes on ---------------------------------------------------------------

    def progress(self, message: str) -> None:
        """A line about envs being built or waited for: silenced by ``-q``, but a wait only by ``-qq``.

        A run blocked on another process's build or prune would look hung without it.
        """
        if self.verbosity >= 0 or (self.verbosity == -1 and message.startswith("waiting for ")):
            self._emit(f"isoenv: {message}")

    def starting(self, count: int, at_once: int) -> None:
        """The pre-build is about to build *count* envs, *at_once* at a time (see :mod:`pytest_isoenv.session.prebuild`)."""
        if self.verbosity < 0:
            return
        if self._send is not None:
            self._send(("starting", count, at_once))
        else:
            self._starting(count, f", {at_once} at a time")

    def finished(self, outcome: str, what: str, seconds: float | None) -> None:
        """The pre-build is done with one env: *outcome* is ``built``, ``reused``, ``failed``, ``waited``, ``elsewhere`` or ``failed earlier``.

        *seconds* is the build's time as the summary gives it.
        """
        if self.verbosity < 0:
            return
        if self._send is not None:
            self._send(("finished", outcome, what, seconds))
        else:
            self._finished(outcome, what, seconds)

    def receive(self, message: Any) -> None:
        """In the xdist controller: what a worker sent, a line to write or the pre-build's progress."""
        if isinstance(message, (tuple, list)) and message and message[0] == "starting":
            # Every worker collects every test, so each one plans the same builds: the run's plan is said once.
            if not self._planned:
                self._starting(int(message[1]), "")
        elif isinstance(message, (tuple, list)) and message and message[0] == "finished":
            # Another worker's build, or a build another process was already doing, is said by whoever builds it.
            if message[1] in ("built", "failed", "reused"):
                self._finished(str(message[1]), str(message[2]), message[3])
        else:
            self.write_line(str(message))

    def _starting(self, count: int, how: str) -> None:
        with self._lock:
            self._planned, self._done = count, 0
        self.write_line(f"isoenv: building {plural(count, 'env')} before the tests{how}")

    def _finished(self, outcome: str, what: str, seconds: float | None) -> None:
        with self._lock:
            self._done += 1
            done = self._done
        took = f" in {seconds:.1f}s" if seconds is not None else ""
        # What is done first, the env last: a narrow terminal cuts the env's description.
        said = {
            "built": f"built{took}: {what}",
            "reused": f"reused: {what}",
            "failed": f"failed to build{took}: {what}",
            "waited": f"left to the process building it: {what}",
            "elsewhere": f"built by another worker of this run: {what}",
            "failed earlier": f"failed earlier in this run, not built again: {what}",
        }[outcome]
        self.write_line(fit(f"isoenv: [{done}/{max(done, self._planned)}] {said}", self.width))

    def repaired(self, message: str) -> None:
        """Say at once what the plugin repaired, and list it again in the summary."""
        self.repairs.append(message)
        self._emit(f"isoenv: {message}")

    def echo(self, line: str) -> None:
        """A line of an installer's output (shown with ``-v``; it always goes to the build's log)."""
        self._emit(f"isoenv| {line}")

    def missing_python(self, exc: InterpreterNotFound) -> str:
        """Remember that *exc*'s spec found nothing; the short reason for the test that is skipped."""
        message = str(InterpreterNotFound(exc.spec, exc.looked_in))  # the tests are counted, not named
        _, count = self.missing.get(exc.spec, (message, 0))
        self.missing[exc.spec] = (message, count + 1)
        return f"python={exc.spec!r} is not installed (the isoenv summary says where it was looked for)"

    def _emit(self, line: str) -> None:
        if self._send is not None:
            self._send(line.replace(": ", f": [{self.worker}] ", 1) if line.startswith("isoenv:") else line)
        else:
            self.write_line(line)

    def summary(self, reporter: pytest.TerminalReporter, lines: list[str]) -> None:
        """Write the plugin's part of the run's summary, *lines*, under a section line of its own."""
        if lines:
            reporter.write_sep("=", "isoenv")
            for line in lines:
                reporter.write_line(line)

    def optional(self, lines: list[str]) -> list[str]:
        """*lines* if the verbosity shows what is optional (not under ``-q``), else none."""
        return lines if self.verbosity >= 0 else []

    def write_line(self, line: str) -> None:
        """Write *line* on a line of its own, from any thread, outside pytest's output capturing."""
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        if reporter is None:
            return
        with self._lock, self._uncaptured():
            reporter.ensure_newline()
            # Progress letters leave the cursor mid-line without the reporter knowing it has a path there.
            writer = self.config.get_terminal_writer()
            if writer.width_of_current_line:
                writer.line()
            reporter.write_line(line)

    def _uncaptured(self) -> AbstractContextManager[Any]:
        capman = self.config.pluginmanager.getplugin("capturemanager")
        # In the xdist controller, lines arrive in execnet's threads while capturing is off anyway.
        if capman is None or threading.current_thread() is not threading.main_thread():
            return nullcontext()
        context: AbstractContextManager[Any] = capman.global_and_fixture_disabled()
        return context

    # -- the summary -------------------------------------------------------------------------------

    def summary_lines(self, stats: Stats) -> list[str]:
        """The summary: a total line, then one line per env built or failed, repairs and missing Pythons."""
        lines: list[str] = []
        built, reused, failed = len(stats.built), len(stats.reused), len(stats.failed)
        if built or failed:
            parts = [f"{plural(built, 'env')} built"] if built else []
            parts += [f"{reused} reused from earlier runs"] if reused else []
            parts += [f"{failed if parts else plural(failed, 'env')} failed to build"] if failed else []
            lines.append(f"isoenv: {', '.join(parts)}")
        elif reused:
            lines.append(f"isoenv: {plural(reused, 'env')} reused from earlier runs, none built")
        if self.verbosity > -1:
            # The description last: it is what a narrow terminal cuts.
            rows = [("built", o.python, o.installer, f"{o.seconds:.1f}s", o.description) for o in stats.built.values()]
            rows += [
                ("failed", o.python, o.installer, f"{o.seconds:.1f}s", o.description) for o in stats.failed.values()
            ]
            # A row is cut to the terminal's width; a message (a repair, a missing Python) is said whole.
            lines += [
                f"isoenv:   {row}" for row in fit_lines(table(rows), None if self.width is None else self.width - 10)
            ]
            lines += [f"isoenv: repaired: {message}" for message in self.repairs]
            for message, count in self.missing.values():
                lines.append(f"isoenv: {plural(count, 'test')} skipped: {message}")
        if self.verbosity <= -2 and not stats.failed:
            return []  # a repair was said when it happened
        return lines

    def to_workeroutput(self, stats: Stats) -> dict[str, Any]:
        """What an xdist worker sends the controller for its summary."""
        return {"stats": stats.to_json(), "repairs": self.repairs, "missing": self.missing}

    def merge(self, data: dict[str, Any], stats: Stats) -> None:
        """Add a worker's :meth:`to_workeroutput` to this (the controller's) summary."""
        stats.merge(data["stats"])
        self.repairs += [message for message in data["repairs"] if message not in self.repairs]
        for spec, (message, count) in data["missing"].items():
            self.missing[spec] = (message, self.missing.get(spec, (message, 0))[1] + count)
