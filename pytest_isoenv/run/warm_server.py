"""The warm interpreter of one env: imports the preload modules once, then forks a child per call.

Run by the env's own interpreter, on any Python >= 3.9: ``python warm_server.py CONTROL_FD [MODULE...]``.
Of its own it loads only modules every interpreter loads at start and ``_socket``, ``select`` and
``gc``, which it drops from ``sys.modules`` before its first fork, so that no child has them.

Protocol (a frame is a 4-byte big-endian length and a ``marshal`` payload): on the control socket
the plugin sends requests (dicts), the first frame of each carrying the call's stdin, stdout, stderr
and reply socket (``SCM_RIGHTS``); the server sends ``("ready", pid)`` once, or ``("error", text)``
when a preload module fails to import, and exits at EOF. On a reply socket the server sends
``("pid", pid)``, then ``("exit", code)`` (``-N``: death by signal N); the child stays a zombie, so
that its pid cannot be reused, until the plugin closes the reply socket once it has the exit code.

A child sets up what a fresh ``python`` would have (argv, ``sys.executable``, ``sys.path[0]``,
``__main__``, cwd, ``os.environ``, stdio over the call's file descriptors, signal handlers), runs the
program and ends as the interpreter ends a program (see :class:`_Call`).
"""

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is for the type checker only: importing it would cost every call
    from typing import Any

    Request = dict[str, Any]
    Job = tuple[Request, list[int]]  # what a forked child runs: its request, its stdin, stdout and stderr


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
# Preloaded before the server's own imports: a module both use stays the preload's, kept in the children.
_PRELOAD_ERROR = _preload(sys.argv[2:])
_KEEP = frozenset(sys.modules)

import _signal  # type: ignore[import-not-found]
import _socket
import builtins
import gc
import io
import marshal
import os
import select

# How this interpreter made its standard streams: a child makes its own the same way.
_STDIO = [(s.encoding, s.errors) for s in (sys.stdin, sys.stdout, sys.stderr)]
_BUFFERED = not getattr(sys.stdout, "write_through", False)
_INT_SIZE = 4
#: ``os.environ`` as the children inherit it (see :meth:`_Call.set_environ`).
_ENVIRON: "dict[str, str]" = {}
#: The server's own standard streams, which the children replace but must not free (see :func:`_main`).
_SERVER_STDIO: "tuple[Any, ...]" = ()


def _send(sock: "_socket.socket", message: "Any") -> bool:
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

    def __init__(self, pid: int, reply: "_socket.socket") -> None:
        self.pid = pid
        self.reply: _socket.socket | None = reply
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

    def __init__(self, control: "_socket.socket") -> None:
        self.control = control
        self.children: dict[int, _Child] = {}
        self.wake = os.pipe()  # readable when a child has ended: SIGCHLD's wake-up fd
        for fd in self.wake:
            os.set_blocking(fd, False)
        _signal.set_wakeup_fd(self.wake[1])
        _signal.signal(_signal.SIGCHLD, lambda signum, frame: None)  # the wake-up fd is what tells the loop
        # Ctrl-C in a terminal reaches the whole foreground group; pytest ends the session and stops us.
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)

    def serve(self) -> "Job | None":
        """Serve requests until the plugin goes away (None); in a forked child, its job."""
        while True:
            readable = self.wait_for_events()
            for pid, child in list(self.children.items()):
                if child.update(readable):
                    del self.children[pid]
            if self.control in readable:
                received = self.receive()
                if received is None:
                    return None
                job = self.fork(*received)
                if job is not None:
                    return job

    def wait_for_events(self) -> "list[Any]":
        """Wait until the control socket, a reply socket or the wake-up pipe is readable; those that are."""
        replies: list[Any] = [child.reply for child in self.children.values() if child.reply is not None]
        readable: list[Any] = select.select([self.control, self.wake[0], *replies], [], [])[0]  # PEP 475 retries
        if self.wake[0] in readable:
            os.read(self.wake[0], 4096)  # its bytes only say that signals came; any left wake the next round
        return readable

    def receive(self) -> "Job | None":
        """The next request and the file descriptors that came with it; None at EOF."""
        data, fds, size = b"", [], 4
        while len(data) < size:
            chunk, ancillary, _flags, _addr = self.control.recvmsg(size - len(data), _socket.CMSG_SPACE(8 * _INT_SIZE))
            for level, kind, blob in ancillary:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    usable = len(blob) - len(blob) % _INT_SIZE
                    fds += [int.from_bytes(blob[i : i + _INT_SIZE], sys.byteorder) for i in range(0, usable, _INT_SIZE)]
            if not chunk:
                _close(fds)
                return None
            data += chunk
            if len(data) == size == 4:  # the header is in: it gives the payload's length
                size += int.from_bytes(data, "big")
        return marshal.loads(data[4:]), fds

    def fork(self, request: "Request", fds: "list[int]") -> "Job | None":
        """Fork a child for *request* (*fds*: its stdin, stdout, stderr, reply socket); in the child, its job."""
        if len(fds) != 4:  # not a request of the plugin's: nothing to serve
            _close(fds)
            return None
        reply = _socket.socket(fileno=fds[3])
        try:
            pid = os.fork()
        except OSError as exc:
            _close(fds[:3])
            _send(reply, ("error", f"fork failed: {exc}"))
            reply.close()
            return None
        if pid == 0:
            self.leave(reply)
            return request, fds[:3]
        _close(fds[:3])
        child = self.children[pid] = _Child(pid, reply)
        if not _send(reply, ("pid", pid)):
            child.forget()
        return None

    def leave(self, reply: "_socket.socket") -> None:
        """In a new child: signal handling as at an interpreter's start, and nothing of the server open or armed."""
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        for other in self.children.values():
            if other.reply is not None:
                other.reply.close()
        self.control.close()
        reply.close()
        _close(list(self.wake))


class _Call:
    """One call, in a forked child: made to look like a fresh ``python``, run, and ended as one ends."""

    def __init__(self, request: "Request", fds: "list[int]") -> None:
        self.request, self.fds = request, fds
        self.started_with = _KEEP  # what sys.modules held when the program started: the rest it imported

    def run(self) -> "BaseException | None":
        """Set up and run the program; what ended it, handled by :meth:`finish` as at the top of a script."""
        try:
            self.setup()
            self.execute()
        except BaseException as exc:  # anything: a fresh start handles it at the top of the script too
            return exc
        return None

    def setup(self) -> None:
        """Make this forked child look like a fresh ``python`` started for the request."""
        request, fds = self.request, self.fds
        for number, fd in enumerate(fds):
            os.dup2(fd, number)
        _close(fds)
        if request.get("new_session"):
            os.setsid()
        elif request.get("process_group") is not None:
            os.setpgid(0, int(request["process_group"]))
        os.chdir(str(request["cwd"]))
        self.set_environ(request["env"])
        _clean_modules()
        self.make_stdio()
        self.started_with = frozenset(sys.modules)
        sys.executable = str(request["executable"])
        sys.argv = list(request["argv"])
        if hasattr(sys, "orig_argv"):
            sys.orig_argv = list(request["orig_argv"])
        if request["mode"] == "file":
            # As a fresh start does: __file__ made absolute (not normalised), sys.path[0] its real folder.
            request["target"] = os.path.join(os.getcwd(), str(request["target"]))  # an absolute one stays
        path0 = request.get("path0")
        if path0 == "<cwd>":
            path0 = os.getcwd()
        elif path0 == "<script>":
            path0 = os.path.dirname(os.path.realpath(str(request["target"])))
        if path0 is not None and not getattr(sys.flags, "safe_path", False):
            sys.path.insert(0, str(path0))

    def set_environ(self, environ: "dict[str, str]") -> None:
        """Make ``os.environ`` (and the C environment) exactly *environ*, and what a fresh start reads from it.

        Only what differs changes: a call's environment is mostly the warm interpreter's own, and a variable
        set again would copy memory pages the child shares with it."""
        old_home = (os.environ.get("HOME"), os.environ.get("PYTHONUSERBASE"))
        for name in _ENVIRON.keys() - environ.keys():
            del os.environ[name]
        for name, value in environ.items():
            if _ENVIRON.get(name) != value:
                os.environ[name] = value
        if hasattr(sys.modules.get("time"), "tzset"):
            sys.modules["time"].tzset()  # a fresh start reads TZ from the call's environment
        site: Any = sys.modules.get("site")
        home = (environ.get("HOME"), environ.get("PYTHONUSERBASE"))
        if site is not None and old_home != home and getattr(site, "USER_BASE", None) is not None:
            site.USER_BASE = site.USER_SITE = None  # a fresh start works them out from HOME and PYTHONUSERBASE
            site.getusersitepackages()

    def make_stdio(self) -> None:
        """New ``sys.stdin``/``stdout``/``stderr`` over fds 0-2, made as the interpreter makes them at start."""
        streams = []
        for fd, (encoding, errors), name in zip(range(3), _STDIO, ("<stdin>", "<stdout>", "<stderr>")):
            write = fd != 0
            buffering = 0 if write and not _BUFFERED else -1
            buffer: Any = open(fd, "wb" if write else "rb", buffering, closefd=False)  # noqa: SIM115 - they live on as sys.std*
            raw = buffer.raw if buffering else buffer
            raw.name = name
            line_buffering = _BUFFERED and (raw.isatty() or fd == 2)
            stream: Any = io.TextIOWrapper(buffer, encoding, errors, "\n", line_buffering, not _BUFFERED)
            stream.mode = "w" if write else "r"
            streams.append(stream)
        sys.stdin, sys.stdout, sys.stderr = streams
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]

    def new_main(self, **extra: "Any") -> "dict[str, Any]":
        """A fresh ``__main__`` module (its ``__loader__`` BuiltinImporter, unless *extra* says), registered."""
        main = type(sys)("__main__")
        main.__dict__.update({"__loader__": sys.__loader__, "__annotations__": {}, "__builtins__": builtins}, **extra)
        sys.modules["__main__"] = main
        return main.__dict__

    def execute(self) -> None:
        """Run the program: a module as ``python -m`` does, or the code of ``-c``, of stdin or of a file."""
        mode, target = self.request["mode"], str(self.request.get("target", ""))
        if mode == "module":
            self.new_main()
            import runpy

            runpy._run_module_as_main(target)  # type: ignore[attr-defined]  # what python -m calls
            return
        if mode == "command":
            source: str | bytes = target
            filename, namespace = "<string>", self.new_main()
        elif mode == "stdin":
            source = b"".join(iter(lambda: os.read(0, 1 << 16), b""))
            filename, namespace = "<stdin>", self.new_main(__file__="<stdin>", __cached__=None)
        else:
            # From the always-loaded bootstrap module: importing importlib.machinery would show in sys.modules.
            SourceFileLoader = sys.modules["_frozen_importlib_external"].SourceFileLoader
            with open(target, "rb") as stream:
                source = stream.read()
            loader = SourceFileLoader("__main__", target)
            filename, namespace = target, self.new_main(__file__=target, __cached__=None, __loader__=loader)
        code = compile(source, filename, "exec", dont_inherit=True)
        if mode == "command" and sys.version_info >= (3, 13):
            # Python 3.13 keeps the -c source in linecache, so that tracebacks and warnings show its lines.
            import linecache

            linecache.cache[filename] = (len(target), None, [line + "\n" for line in target.splitlines()], filename)
        exec(code, namespace)

    def exit_code(self, error: "BaseException | None") -> int:
        """Report *error* as the interpreter does for an exception that ends a program; the exit code."""
        if error is None:
            return 0
        if isinstance(error, SystemExit):
            if error.code is None or isinstance(error.code, int):
                return error.code or 0
            try:
                sys.stderr.write(f"{error.code}\n")
            except Exception:  # the interpreter, too, cannot report it then
                pass
            return 1
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:  # a fresh start has no such frames
            tb = error.__traceback__ = tb.tb_next
        sys.last_type, sys.last_value, sys.last_traceback = type(error), error, tb
        if sys.version_info >= (3, 12):
            sys.last_exc = error
        try:
            sys.excepthook(type(error), error, tb)
        except BaseException as hook_error:  # as the interpreter: an excepthook that fails is reported, not fatal
            sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
        return 1

    def finish(self, error: "BaseException | None") -> None:
        """End this child as the interpreter ends: threads joined, atexit handlers, flushing, modules torn down.

        Only the modules the call imported and ``__main__`` are torn down (``__del__`` methods run, open files
        are flushed): the preloaded ones too would cost ten times the whole call."""
        code = self.exit_code(error)
        interrupted = isinstance(error, KeyboardInterrupt)
        error = None
        try:
            sys.modules["threading"]._shutdown()  # what the interpreter calls at exit, if threading was imported
        except BaseException:
            pass
        if "atexit" in sys.modules:  # the program's own atexit module: on 3.9 each import has its own handlers
            sys.modules["atexit"]._run_exitfuncs()
        if not self.flush(sys.stdout, sys.stderr):
            code = 120
        own: list[Any] = [sys.modules.pop(name) for name in list(sys.modules) if name not in self.started_with]
        own.append(sys.modules.get("__main__"))
        gc.collect()
        for module in reversed(own):
            namespace = getattr(module, "__dict__", None)
            if isinstance(namespace, dict):
                self.clear_namespace(namespace)
        del own
        gc.collect()
        self.flush(sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        if interrupted:  # a program ended by Ctrl-C ends by SIGINT, so that its parent sees it
            _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
            os.kill(os.getpid(), _signal.SIGINT)
        os._exit(code & 0xFF)

    def flush(self, *streams: "Any") -> bool:
        """Flush *streams* (None: no stream); whether all of them could be."""
        ok = True
        for stream in streams:
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                ok = False
        return ok

    def clear_namespace(self, namespace: "dict[str, object]") -> None:
        """What the interpreter does to a module's namespace at exit: underscore names first, then the rest."""
        for name in list(namespace):
            if name.startswith("_") and not name.startswith("__") and name != "__builtins__":
                namespace[name] = None
        for name in list(namespace):
            if name != "__builtins__":
                namespace[name] = None


def _main() -> "Job | None":
    control = _socket.socket(fileno=int(sys.argv[1]))
    if not hasattr(os, "fork") or not hasattr(_socket, "CMSG_SPACE"):
        _send(control, ("unsupported", f"{sys.executable} has no os.fork or no file descriptor passing"))
        return None
    if _PRELOAD_ERROR is not None:
        _send(control, ("error", _PRELOAD_ERROR))
        return None
    # A forked child shares this interpreter's memory pages until it writes to one, and freeing an object
    # writes to its page. So what each child would free is freed here, once: the server's own modules and
    # the import caches go (it keeps its modules as globals), and the streams the children replace stay
    # referenced. The objects made so far are never collected in a child, so its collections do not touch them.
    global _ENVIRON, _SERVER_STDIO
    _clean_modules()
    _SERVER_STDIO = (sys.stdin, sys.stdout, sys.stderr)
    _ENVIRON = dict(os.environ)  # after the preloads, which may have set variables
    gc.freeze()
    _send(control, ("ready", os.getpid()))
    # Nobody reads this server's stderr after start-up; its children get the call's own streams.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    return _Server(control).serve()


_job = _main()
if _job is not None:
    _call = _Call(*_job)
    _call.finish(_call.run())
