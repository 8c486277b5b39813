"""The warm interpreter of one env: imports the preload modules once, then forks a child per call.

Run by the env's own interpreter, on any Python >= 3.9: ``python warm_server.py CONTROL_FD [MODULE...]``.
Of its own it loads only modules every interpreter loads at start, ``socket``, ``signal``, ``select``,
``gc`` and ``warm_child.py`` from beside it, which it drops from ``sys.modules`` before its first fork,
so that no child has them.

Protocol (a frame is a 4-byte big-endian length and a ``marshal`` payload): on the control socket
the plugin sends requests (dicts), the first frame of each carrying the call's stdin, stdout, stderr
and reply socket (``SCM_RIGHTS``); the server sends ``("ready", pid)`` once, or ``("error", text)``
when a preload module fails to import, and exits at EOF. On a reply socket the server sends
``("pid", pid)``, then ``("exit", code)`` (``-N``: death by signal N); the child stays a zombie, so
that its pid cannot be reused, until the plugin closes the reply socket once it has the exit code.

The server keeps a spare child forked ahead of the next call, which takes it (see ``_Spare``).
A forked child runs the call and ends as a fresh ``python`` ends (see ``warm_child.py``): through
the interpreter's own finalisation, up to the ``atexit`` handler registered here before any other.
"""

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is for the type checker only: importing it would cost every call
    from typing import Any

    Request = dict[str, Any]
    Job = tuple[Request, list[int]]  # what a forked child runs: its request, its stdin, stdout and stderr


def _end_of_call() -> None:
    """The last ``atexit`` handler: in a call's child, end it (see ``Call.end``); in the server, nothing."""
    if _CALL is not None:
        _CALL.end()


def _register_end_of_call() -> "object":
    """Register :func:`_end_of_call` before any other ``atexit`` handler, so that it runs after all of them.

    ``atexit`` leaves ``sys.modules`` again unless it was there at start: a program imports it anew, and
    shares its handlers (on Python 3.9 a new import has handlers of its own, and then the child ends
    through the whole of finalisation instead: slower, and the same to the program but for a Ctrl-C)."""
    loaded = "atexit" in sys.modules
    import atexit

    atexit.register(_end_of_call)
    if not loaded:
        del sys.modules["atexit"]
    return atexit  # kept: on 3.9 the handlers live in the module object


def _preload(names: "list[str]") -> "str | None":
    """Import *names*; the traceback of the first that fails, or None."""
    for name in names:
        try:
            __import__(name)
        except BaseException as exc:  # anything a module's import raises is the user's to see
            import traceback

            tb = exc.__traceback__
            shown = traceback.format_exception(type(exc), exc, tb.tb_next if tb else None)  # from the import on
            return f"importing preload module {name!r} failed:\n{''.join(shown)}"
    return None


if not getattr(sys.flags, "safe_path", False):
    del sys.path[0]  # this file's folder: a child puts its own first entry there, and preloads must not see it
#: The call this process runs, in a forked child (None in the server).
_CALL: "Any" = None
_ATEXIT = _register_end_of_call()  # before the preloads, whose handlers must run before it
# Preloaded before the server's own imports: a module both use stays the preload's, kept in the children.
_PRELOAD_ERROR = _preload(sys.argv[2:])
_KEEP = frozenset(sys.modules)

import gc
import marshal
import os
import select
import signal
import socket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import warm_child  # type: ignore[import-not-found]  # a script's sibling, not the package's module
finally:
    del sys.path[0]

_INT_SIZE = 4
#: The server's own standard streams, which the children replace but must not free (see :func:`_main`).
_SERVER_STDIO: "tuple[Any, ...]" = ()
#: What the children start from, once the server is ready (see :func:`_main`).
_ORIGIN: "Any" = None


def _send(sock: "socket.socket", message: "Any") -> bool:
    """Send *message* in one write (the plugin reads replies without blocking); False if it closed its end."""
    payload = marshal.dumps(message, 2)
    try:
        sock.sendall(len(payload).to_bytes(4, "big") + payload)
    except OSError:
        return False
    return True


def _close(fds: "list[int]") -> None:
    for fd in fds:
        os.close(fd)


def _receive(sock: "socket.socket") -> "tuple[bytes, list[int]] | None":
    """The next frame on *sock* (its header included) and the file descriptors that came with it; None at EOF."""
    data, fds, size = b"", [], 4
    while len(data) < size:
        chunk, ancillary, _flags, _addr = sock.recvmsg(size - len(data), socket.CMSG_SPACE(8 * _INT_SIZE))
        for level, kind, blob in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(blob) - len(blob) % _INT_SIZE
                fds += [int.from_bytes(blob[i : i + _INT_SIZE], sys.byteorder) for i in range(0, usable, _INT_SIZE)]
        if not chunk:
            _close(fds)
            return None
        data += chunk
        if len(data) == size == 4:  # the header is in: it gives the payload's length
            size += int.from_bytes(data, "big")
    return data, fds


class _Spare:
    """A child forked ahead of the next call, waiting for it: the fork is off that call's path.

    Forking copies the server's page tables, and a new child's first steps (the after-fork hooks, leaving
    the server's loop) copy a few hundred memory pages: about a third of a call's cost, paid while the
    previous call runs (on another CPU) or nothing does. The spare waits on a socket of its own for a request and its stdin, stdout and stderr,
    as the server received them, and leaves at EOF.
    """

    def __init__(self, pid: int, sock: "socket.socket") -> None:
        self.pid = pid
        self.sock = sock

    def hand(self, frame: bytes, fds: "list[int]") -> bool:
        """Give the spare a request's *frame* and *fds*; False if it has gone (then it is reaped)."""
        data = b"".join(fd.to_bytes(_INT_SIZE, sys.byteorder) for fd in fds)
        try:
            sent = self.sock.sendmsg([frame[:4]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, data)])
            self.sock.sendall(frame[sent:])
        except OSError:
            self.retire()
            return False
        self.sock.close()
        return True

    def ended(self) -> bool:
        """Whether the spare has died while waiting (then it is reaped)."""
        done, _status = os.waitpid(self.pid, os.WNOHANG)
        if done:
            self.sock.close()
        return bool(done)

    def retire(self) -> None:
        """End the spare (it leaves at EOF) and reap it."""
        self.sock.close()
        os.waitpid(self.pid, 0)

    @staticmethod
    def wait(sock: "socket.socket") -> "Job":
        """In the spare: the request it is to run, with its stdin, stdout and stderr; at EOF the spare ends."""
        received = _receive(sock)
        sock.close()
        if received is None or len(received[1]) != 3:
            os._exit(0)
        # Now a call: Ctrl-C interrupts it as it would a fresh ``python``.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return marshal.loads(received[0][4:]), received[1]


def _clean_modules() -> None:
    """Forget the modules the server imported for itself and the import caches: a fresh interpreter has none."""
    for name in list(sys.modules):
        if name not in _KEEP:
            del sys.modules[name]
    sys.path_importer_cache.clear()
    if "linecache" in sys.modules:
        sys.modules["linecache"].clearcache()


class _Child:
    """A forked child: its reply socket until the plugin closes it, its exit code once it has ended."""

    def __init__(self, pid: int, reply: "socket.socket") -> None:
        self.pid = pid
        self.reply: socket.socket | None = reply
        self.code: int | None = None

    def update(self, readable: "list[Any]") -> bool:
        """Send the exit code once the child has ended; whether the server is done with the child."""
        if self.code is None:
            self.code = self.exit_code()
            if self.code is not None and (self.reply is None or not _send(self.reply, ("exit", self.code))):
                return self.forget()
        try:
            closed = self.reply is not None and self.reply in readable and not self.reply.recv(64)
        except OSError:
            closed = True
        return self.forget() if closed else False  # closed: the plugin has the exit code, or dropped the process

    def exit_code(self) -> "int | None":
        """The exit code if the child has ended (-N: killed by signal N)."""
        if hasattr(os, "waitid"):
            # WNOWAIT keeps the zombie, whose pid no other process gets before the plugin has the exit code.
            result = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if result is None or result.si_pid == 0:
                return None
            return result.si_status if result.si_code == os.CLD_EXITED else -result.si_status
        done, status = os.waitpid(self.pid, os.WNOHANG)  # which reaps it: nothing else tells it has ended
        return None if done == 0 else os.waitstatus_to_exitcode(status)

    def forget(self) -> bool:
        """Close the reply socket and reap the child if it has ended; whether it has (then it can go)."""
        if self.reply is not None:
            self.reply.close()
            self.reply = None
        if self.code is not None and hasattr(os, "waitid"):
            os.waitpid(self.pid, 0)  # the zombie WNOWAIT left
        return self.code is not None


class _Server:
    """The serve loop: requests in on the control socket, a child forked for each, exit codes out."""

    def __init__(self, control: "socket.socket") -> None:
        self.control = control
        self.children: dict[int, _Child] = {}
        self.spare: _Spare | None = None
        self.wake = os.pipe()  # readable when a child has ended: SIGCHLD's wake-up fd
        for fd in self.wake:
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake[1])
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # the wake-up fd is what tells the loop
        # Ctrl-C in a terminal reaches the whole foreground group; pytest ends the session and stops us.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def serve(self) -> "Job | None":
        """Serve requests until the plugin goes away (None); in a forked child, its job."""
        while True:
            if self.spare is None:  # the next call's fork is made now, while this one runs or nothing does
                job = self.fork_spare()
                if job is not None:
                    return job
            readable = self.wait_for_events()
            if self.wake[0] in readable and self.spare is not None and self.spare.ended():
                self.spare = None
            for pid, child in list(self.children.items()):
                if child.update(readable):
                    del self.children[pid]
            if self.control in readable:
                received = _receive(self.control)
                if received is None:
                    if self.spare is not None:
                        self.spare.retire()
                    return None
                job = self.start(*received)
                if job is not None:
                    return job

    def wait_for_events(self) -> "list[Any]":
        """Wait until the control socket, a reply socket or the wake-up pipe is readable; those that are."""
        replies: list[Any] = [child.reply for child in self.children.values() if child.reply is not None]
        readable: list[Any] = select.select([self.control, self.wake[0], *replies], [], [])[0]  # PEP 475 retries
        if self.wake[0] in readable:
            os.read(self.wake[0], 4096)  # its bytes only say that signals came; any left wake the next round
        return readable

    def fork_spare(self) -> "Job | None":
        """Fork a spare child to take the next call (none if the fork fails); in the spare, its job."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except OSError:  # calls fork their own children then
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            ours.close()
            self.leave(interruptible=False)  # a Ctrl-C for the session must not end a waiting spare
            return _Spare.wait(theirs)
        theirs.close()
        self.spare = _Spare(pid, ours)
        return None

    def start(self, frame: bytes, fds: "list[int]") -> "Job | None":
        """Start a child for the request in *frame* (*fds*: its stdin, stdout, stderr, reply socket).

        The spare takes it if there is one, else a child is forked for it; in that child, its job."""
        if len(fds) != 4:  # not a request of the plugin's: nothing to serve
            _close(fds)
            return None
        reply = socket.socket(fileno=fds[3])
        spare, self.spare = self.spare, None
        if spare is not None and spare.hand(frame, fds[:3]):
            _close(fds[:3])
            self.started(spare.pid, reply)
            return None
        return self.fork(marshal.loads(frame[4:]), fds[:3], reply)

    def started(self, pid: int, reply: "socket.socket") -> None:
        """Tell the plugin the pid of the child that runs its call, and watch for its end."""
        child = self.children[pid] = _Child(pid, reply)
        if not _send(reply, ("pid", pid)):
            child.forget()

    def fork(self, request: "Request", fds: "list[int]", reply: "socket.socket") -> "Job | None":
        """Fork a child for *request* (*fds*: its stdin, stdout, stderr); in the child, its job."""
        try:
            pid = os.fork()
        except OSError as exc:
            _close(fds)
            _send(reply, ("error", f"fork failed: {exc}"))
            reply.close()
            return None
        if pid == 0:
            reply.close()
            self.leave(interruptible=True)
            return request, fds
        _close(fds)
        self.started(pid, reply)
        return None

    def leave(self, interruptible: bool) -> None:
        """In a new child: signal handling as at an interpreter's start, and nothing of the server open or armed."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if interruptible:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        for other in self.children.values():
            if other.reply is not None:
                other.reply.close()
        self.control.close()
        _close(list(self.wake))


def _main() -> "Job | None":
    control = socket.socket(fileno=int(sys.argv[1]))
    if not hasattr(os, "fork") or not hasattr(socket, "CMSG_SPACE"):
        _send(control, ("unsupported", f"{sys.executable} has no os.fork or no file descriptor passing"))
        return None
    if _PRELOAD_ERROR is not None:
        _send(control, ("error", _PRELOAD_ERROR))
        return None
    # A forked child shares this interpreter's memory pages until it writes to one, and freeing an object
    # writes to its page. So what each child would free is freed here, once: the server's own modules and
    # the import caches go (it keeps its modules as globals), and the streams the children replace stay
    # referenced. The objects made so far are never collected in a child, so its collections do not touch them;
    # and a full collection empties the interpreter's free lists first, which a child's would otherwise free.
    global _ORIGIN, _SERVER_STDIO
    _clean_modules()
    _SERVER_STDIO = (sys.stdin, sys.stdout, sys.stderr)
    _ORIGIN = warm_child.Origin(_KEEP, __file__, _clean_modules)  # after the preloads, which may set variables
    gc.collect()
    gc.freeze()
    _send(control, ("ready", os.getpid()))
    # Nobody reads this server's stderr after start-up; its children get the call's own streams.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    return _Server(control).serve()


_job = _main()
if _job is not None:  # a forked child: its exit code leaves the stack, and the interpreter ends the call
    _CALL = warm_child.Call(_ORIGIN, *_job)
    del _job
    raise SystemExit(_CALL.run())
