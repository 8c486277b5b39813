"""Warm interpreters: an env's Python programs run in a fork of an interpreter of the env that started once.

``warm=True`` on the marker or ``isoenv_factory.get()`` makes :meth:`IsolatedEnv.run` and
:meth:`IsolatedEnv.popen` serve calls whose program is the env's Python (``python -c``,
``python -m``, ``python file.py``, ``python -`` with a program on stdin) or one of the env's
console scripts from a warm interpreter: one process per env (and *preload* tuple) in each pytest
process, started on first use with the *preload* modules imported, that forks a child per call.
The child gets what a fresh interpreter would have (see ``warm_server.py``); the caller gets a
:class:`~pytest_isoenv.run.warmpopen.WarmPopen`, which has what tests use of a :class:`subprocess.Popen`, whose process is that child.

Anything else runs as a plain subprocess: another program, interpreter options (``python -u``),
Popen arguments the fork cannot honour (``preexec_fn``, ``pass_fds``, ``user``...), and an
environment whose start-up variables (``PYTHON*``, ``LC_*``, ``LANG``) differ from the ones the
warm interpreter started with, since those shape the interpreter before any code runs.
"""

from __future__ import annotations

import marshal
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_isoenv.errors import IsoEnvError

#: The script the env's interpreter runs to become a warm interpreter (standard library only).
SERVER = Path(__file__).with_name("warm_server.py")

# Variables an interpreter reads while it starts, before any program code: they decide sys.flags,
# sys.path, the hash seed, the locale and the streams' encoding, which a forked child inherits.
_STARTUP_PREFIXES = ("PYTHON", "LC_")
_STARTUP_NAMES = ("LANG", "__PYVENV_LAUNCHER__")


class WarmError(IsoEnvError):
    """A warm interpreter could not start (a preload module failed to import) or died during a call."""


def unavailable() -> str | None:
    """Why warm interpreters cannot work in this process (None when they can)."""
    if os.name != "posix" or not hasattr(os, "fork"):
        return f"warm interpreters need os.fork, which {sys.platform} does not have"
    if not hasattr(socket, "send_fds"):  # pragma: no cover - Python < 3.9
        return "warm interpreters need socket.send_fds (Python 3.9+)"
    return None


def startup_config(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The part of *environ* an interpreter reads at start: equal for the warm one and a served call."""
    return tuple(sorted((k, v) for k, v in environ.items() if k.startswith(_STARTUP_PREFIXES) or k in _STARTUP_NAMES))


def _frame(message: Any) -> bytes:
    payload = marshal.dumps(message, 2)
    return len(payload).to_bytes(4, "big") + payload


def _read_frame(sock: socket.socket) -> Any:
    """The next frame from *sock*, blocking; None at EOF."""
    data = b""
    while len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            return None
        data += chunk
    size, data = int.from_bytes(data, "big"), b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return marshal.loads(data)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _shebang(path: str) -> str | None:
    """The interpreter a script's ``#!`` line names, when it names only an interpreter (no options)."""
    try:
        with open(path, "rb") as stream:
            line = stream.readline(4096)
    except OSError:
        return None
    if not line.startswith(b"#!"):
        return None
    parts = line[2:].strip().split()
    if len(parts) != 1:
        return None
    return os.fsdecode(parts[0])


class WarmServer:
    """One warm interpreter of an env: started on first use, restarted when it has died.

    Owned by the process that made it (a forked copy of pytest makes its own). Thread-safe.
    """

    def __init__(self, python: Path, bin_dir: Path, environ: Mapping[str, str], preload: Sequence[str]) -> None:
        self.python = python
        self.bin_dir = bin_dir
        self.environ = dict(environ)
        self.preload = tuple(preload)
        self.config = startup_config(environ)
        #: How many times the warm interpreter was started (more than once: it died and was restarted).
        self.starts = 0
        #: How many calls it has served.
        self.served = 0
        #: Why this env's interpreter cannot be warm (it has no ``os.fork``), once it said so.
        self.unsupported: str | None = None
        self._owner = os.getpid()
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The warm interpreter's process id, while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(
                    [str(self.python), str(SERVER), str(theirs.fileno()), *self.preload],
                    env=self.environ,
                    cwd=str(self.bin_dir),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    pass_fds=(theirs.fileno(),),
                )
            finally:
                theirs.close()
            try:
                message = _read_frame(ours)
            except BaseException:
                ours.close()
                proc.kill()
                proc.wait()
                raise
            if message is not None and message[0] == "ready":
                self._proc, self._control = proc, ours
                self.starts += 1
                return
            ours.close()
            code = proc.wait()
            errors.seek(0)
            output = errors.read().decode(errors="replace")
        if message is not None and message[0] == "unsupported":
            self.unsupported = str(message[1])
            return
        if message is not None and message[0] == "error":
            raise WarmError(
                f"the warm interpreter of {self.python} could not start: {message[1].rstrip()}\n"
                f"Fix the module or take it out of preload=(...)"
            )
        raise WarmError(f"the warm interpreter of {self.python} exited with {code} as it started:\n{output.rstrip()}")

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def submit(self, request: dict[str, Any], fds: Sequence[int]) -> tuple[socket.socket, int] | None:
        """Have a child forked for *request* with *fds* as its stdin, stdout and stderr.

        Returns the reply socket and the child's pid, or None when this env's interpreter cannot be
        warm (the caller then starts a plain subprocess).
        """
        for attempt in range(2):
            with self._lock:
                if not self._alive():
                    self._stop_locked()
                    self._start()
                    if self.unsupported is not None:
                        return None
                assert self._control is not None
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    data = _frame(request)
                    socket.send_fds(self._control, [data[:4]], [*fds, theirs.fileno()])
                    self._control.sendall(data[4:])
                except OSError:
                    ours.close()
                    self._stop_locked()
                    if attempt:
                        raise
                    continue
                finally:
                    theirs.close()
            message = _read_frame(ours)
            if message is None:  # it died before forking: nothing ran; start it again
                ours.close()
                continue
            if message[0] == "error":
                ours.close()
                raise OSError(message[1])
            with self._lock:
                self.served += 1
            return ours, int(message[1])
        raise WarmError(f"the warm interpreter of {self.python} died twice while taking a call")

    def stop(self) -> None:
        """Stop the warm interpreter (it exits when its control socket closes); a later call starts it again."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def plan(
        self,
        argv: Sequence[str],
        environ: Mapping[str, str],
        cwd: str | None,
        stdin_fd: int,
    ) -> dict[str, Any] | None:
        """The request that runs *argv* warm, or None when it must run as a plain subprocess."""
        if os.getpid() != self._owner or startup_config(environ) != self.config:
            return None
        workdir = os.path.abspath(cwd) if cwd is not None else os.getcwd()
        program = argv[0]
        if not os.path.isabs(program) or not os.path.isdir(workdir):
            return None
        if os.path.dirname(program) != str(self.bin_dir):
            return None
        base: dict[str, Any] = {"cwd": workdir, "env": dict(environ)}
        if _same_file(program, str(self.python)):
            return self._plan_python(program, list(argv[1:]), workdir, stdin_fd, base)
        interpreter = _shebang(program)
        if interpreter is None or os.path.dirname(interpreter) != str(self.bin_dir):
            return None
        if not _same_file(interpreter, str(self.python)):
            return None
        # What the kernel does with a #! line: the interpreter runs the script by the path it was started by.
        return self._plan_python(interpreter, [program, *argv[1:]], workdir, stdin_fd, base)

    def _plan_python(
        self, executable: str, rest: list[str], workdir: str, stdin_fd: int, base: dict[str, Any]
    ) -> dict[str, Any] | None:
        base.update(executable=executable, orig_argv=[executable, *rest])
        if not rest or rest[0] == "-":
            if os.isatty(stdin_fd):  # an interactive interpreter: nothing to serve
                return None
            return {**base, "mode": "stdin", "argv": ["-", *rest[1:]] if rest else [""], "path0": ""}
        first = rest[0]
        if first.startswith(("-c", "-m")):
            if len(first) > 2:
                target, more = first[2:], rest[1:]
            elif len(rest) > 1:
                target, more = rest[1], rest[2:]
            else:  # "Argument expected for the -c option": the interpreter's own message
                return None
            if first.startswith("-c"):
                return {**base, "mode": "command", "target": target, "argv": ["-c", *more], "path0": ""}
            return {**base, "mode": "module", "target": target, "argv": ["-m", *more], "path0": "<cwd>"}
        if first.startswith("-"):  # interpreter options change how it starts
            return None
        path = os.path.join(workdir, first)
        if not os.path.isfile(path) or path.endswith((".pyc", ".pyo")):  # errors, zips, folders: the real thing
            return None
        return {**base, "mode": "file", "target": first, "argv": [first, *rest[1:]], "path0": "<script>"}


_SERVERS: dict[tuple[int, str, tuple[str, ...], tuple[tuple[str, str], ...]], WarmServer] = {}
_SERVERS_LOCK = threading.Lock()


def server_for(python: Path, bin_dir: Path, environ: Mapping[str, str], preload: Sequence[str]) -> WarmServer | None:
    """The warm interpreter of the env whose interpreter is *python*, in this process (None: unavailable).

    One per env, *preload* and start-up variables of *environ* (the same for every env object of a session).
    """
    if unavailable() is not None:
        return None
    key = (os.getpid(), str(python), tuple(preload), startup_config(environ))
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None:
            server = _SERVERS[key] = WarmServer(python, bin_dir, environ, preload)
    return None if server.unsupported is not None else server


def servers() -> list[WarmServer]:
    """This process's warm interpreters (running or not)."""
    with _SERVERS_LOCK:
        return [s for (pid, *_), s in _SERVERS.items() if pid == os.getpid()]


def stop(python: Path | None = None, *, keep: Iterable[WarmServer] = ()) -> None:
    """Stop this process's warm interpreters (of the env whose interpreter is *python*, or all but *keep*)."""
    kept = set(map(id, keep))
    for server in servers():
        if (python is None or server.python == python) and id(server) not in kept:
            server.stop()


def unsupported() -> list[str]:
    """Why envs asked to be warm ran plain: one line per env interpreter that has no ``os.fork``."""
    return [f"{s.python}: {s.unsupported}" for s in servers() if s.unsupported is not None]
