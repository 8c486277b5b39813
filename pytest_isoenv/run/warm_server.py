"""The warm interpreter of one env: imports the preload modules once, then forks a child per call.

Run by the env's own interpreter, by path, as ``python warm_server.py CONTROL_FD [MODULE...]``. It
must work on any Python >= 3.9 and uses only modules that are either loaded at every interpreter
start (``sys``, ``os``, ``marshal``, ``_signal``) or small (``_socket``, ``select``), so that what it
loads itself is little, and it drops them from ``sys.modules`` before its first fork, so that no
child has them (see :func:`_clean_modules`).

Protocol (all frames are a 4-byte big-endian length and a ``marshal`` payload):

* control socket, plugin -> here: a request dict; its first frame carries four file descriptors
  (stdin, stdout, stderr of the call, and the reply socket) as ``SCM_RIGHTS``. EOF on the control
  socket means the plugin's process is gone: the warm interpreter exits.
* here -> plugin on the control socket: ``("ready", pid)`` once, or ``("error", text)`` when a
  preload module fails to import.
* reply socket, here -> plugin: ``("pid", pid)`` when the child is forked, then ``("exit", code)``
  (``-N`` for death by signal N). The child stays a zombie (so its pid cannot be reused) until the
  plugin closes the reply socket, which it does once it has read the exit code.

A child sets up what a fresh ``python`` would have (argv, ``sys.executable``, ``sys.path[0]``,
``__main__``, cwd, ``os.environ``, stdio over the call's own file descriptors, signal handlers) and
runs the program; errors and exit codes then go through the interpreter's own handling of an
uncaught exception at the top of a script, and the interpreter's own finalization (threads joined,
``atexit`` handlers, flushing) ends it.
"""

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is for the type checker only: importing it would cost every call
    from typing import Any

    Request = dict[str, Any]

_HERE = __file__


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
# Preload before the server imports anything of its own: a module both need then stays the one
# the preload imported (and is kept in the children).
_PRELOAD_ERROR = _preload(sys.argv[2:])
_KEEP = frozenset(sys.modules)
#: What a child had in sys.modules when its program started: the rest the program imported.
_STARTED_WITH = _KEEP

import _signal  # type: ignore[import-not-found]
import _socket
import gc
import marshal
import os
import select

# How this interpreter made its standard streams: a child makes its own the same way.
_STDIO = [(s.encoding, s.errors) for s in (sys.stdin, sys.stdout, sys.stderr)]
_BUFFERED = not getattr(sys.stdout, "write_through", False)
_INT_SIZE = 4
#: ``os.environ`` as the children inherit it (see :func:`_set_environ`).
_ENVIRON: "dict[str, str]" = {}
#: The server's own standard streams, which the children replace but must not free (see :func:`_main`).
_SERVER_STDIO: "tuple[Any, ...]" = ()


def _send(sock: "_socket.socket", message: "Any") -> None:
    payload = marshal.dumps(message, 2)
    # One write: the plugin polls replies without blocking and must never see half a frame for long.
    sock.sendall(len(payload).to_bytes(4, "big") + payload)


def _recv_exactly(sock: "_socket.socket", size: int) -> "bytes | None":
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _recv_request(sock: "_socket.socket") -> "tuple[Request, list[int]] | None":
    """The next request and its file descriptors; None at EOF."""
    header, fds = b"", []
    space = _socket.CMSG_SPACE(8 * _INT_SIZE)
    while len(header) < 4:
        data, ancillary, _flags, _addr = sock.recvmsg(4 - len(header), space)
        for level, kind, blob in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                usable = len(blob) - len(blob) % _INT_SIZE
                fds += [int.from_bytes(blob[i : i + _INT_SIZE], sys.byteorder) for i in range(0, usable, _INT_SIZE)]
        if not data:
            for fd in fds:
                os.close(fd)
            return None
        header += data
    payload = _recv_exactly(sock, int.from_bytes(header, "big"))
    if payload is None:
        for fd in fds:
            os.close(fd)
        return None
    request: Request = marshal.loads(payload)
    return request, fds


def _exit_code(pid: int, reap: bool) -> "int | None":
    """The exit code of child *pid* if it has ended (-N: killed by signal N); reaps it only if *reap*."""
    waitid = getattr(os, "waitid", None)
    if waitid is not None and not reap:
        # WNOWAIT leaves a zombie: the pid cannot be reused before the plugin has the exit code,
        # so the plugin can never signal a stranger (subprocess.Popen gives the same guarantee).
        result = waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if result is None or result.si_pid == 0:
            return None
        status: int = result.si_status
        return status if result.si_code == os.CLD_EXITED else -status
    done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)


class _Child:
    def __init__(self, pid: int, reply: "_socket.socket") -> None:
        self.pid = pid
        self.reply: _socket.socket | None = reply
        self.code: int | None = None
        self.reaped = False


def _on_sigchld(signum: int, frame: object) -> None:
    """Nothing: the wake-up pipe tells the loop a child has ended."""


def _serve(control: "_socket.socket") -> "tuple[Request, list[int]] | None":
    """Serve requests until the plugin goes away (None); in a forked child, its request and fds."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(_signal.SIGCHLD, _on_sigchld)
    # Ctrl-C in a terminal reaches the whole foreground group; pytest ends the session and stops us.
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    children: dict[int, _Child] = {}

    def forget(child: _Child) -> None:
        if child.reply is not None:
            child.reply.close()
            child.reply = None
        if child.code is not None:
            if not child.reaped:
                os.waitpid(child.pid, 0)
            children.pop(child.pid, None)

    while True:
        watched: list[Any] = [control, wake_r]
        watched += [c.reply for c in children.values() if c.reply is not None]
        try:
            readable = select.select(watched, [], [])[0]
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for old kernels
            continue
        if wake_r in readable:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        for child in list(children.values()):
            if child.code is None:
                child.reaped = child.reply is None or not hasattr(os, "waitid")
                child.code = _exit_code(child.pid, reap=child.reaped)
                if child.code is None:
                    child.reaped = False
                    continue
                if child.reply is not None:
                    try:
                        _send(child.reply, ("exit", child.code))
                    except OSError:
                        forget(child)
                        continue
                if child.reply is None:
                    forget(child)
        for child in list(children.values()):
            if child.reply is not None and child.reply in readable:
                try:
                    data = child.reply.recv(64)
                except OSError:
                    data = b""
                if not data:  # the plugin has what it needs, or dropped the process: reap when it ends
                    forget(child)
        if control in readable:
            received = _recv_request(control)
            if received is None:
                return None
            request, fds = received
            if len(fds) != 4:
                for fd in fds:
                    os.close(fd)
                continue
            reply = _socket.socket(fileno=fds[3])
            try:
                pid = os.fork()
            except OSError as exc:
                for fd in fds[:3]:
                    os.close(fd)
                try:
                    _send(reply, ("error", f"fork failed: {exc}"))
                finally:
                    reply.close()
                continue
            if pid == 0:
                # The child: nothing of the server may stay open or armed.
                _signal.set_wakeup_fd(-1)
                _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
                _signal.signal(_signal.SIGINT, _signal.default_int_handler)
                for other in children.values():
                    if other.reply is not None:
                        other.reply.close()
                control.close()
                reply.close()
                os.close(wake_r)
                os.close(wake_w)
                return request, fds[:3]
            for fd in fds[:3]:
                os.close(fd)
            child = children[pid] = _Child(pid, reply)
            try:
                _send(reply, ("pid", pid))
            except OSError:
                forget(child)


def _clean_modules() -> None:
    """Forget the modules the server imported for itself, and what imports cached about the file system.

    A fresh interpreter has none of them: the program imports them again if it wants them.
    """
    for name in list(sys.modules):
        if name not in _KEEP:
            del sys.modules[name]
    sys.path_importer_cache.clear()
    linecache = sys.modules.get("linecache")
    if linecache is not None:
        linecache.clearcache()


def _make_stdio() -> None:
    """New ``sys.stdin``/``stdout``/``stderr`` over fds 0-2, made as the interpreter makes them at start."""
    import io

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


def _new_main(**extra: "Any") -> "dict[str, Any]":
    """A fresh ``__main__`` module, registered in ``sys.modules``; its namespace."""
    import builtins

    main = type(sys)("__main__")
    namespace = main.__dict__
    namespace["__loader__"] = sys.__loader__  # BuiltinImporter, as a fresh __main__ has
    namespace["__annotations__"] = {}
    namespace["__builtins__"] = builtins
    namespace.update(extra)
    sys.modules["__main__"] = main
    return namespace


def _set_environ(environ: "dict[str, str]") -> None:
    """Make ``os.environ`` (and the C environment) exactly *environ*, changing only what differs.

    A call's environment is mostly the warm interpreter's own, and every variable deleted and set
    again would write to (and so copy) memory pages the child shares with the warm interpreter.
    """
    for name in _ENVIRON.keys() - environ.keys():
        del os.environ[name]
    for name, value in environ.items():
        if _ENVIRON.get(name) != value:
            os.environ[name] = value


def _setup(request: "Request", fds: "list[int]") -> None:
    """Make this forked child look like a fresh ``python`` started for *request*."""
    for number, fd in enumerate(fds):
        os.dup2(fd, number)
    for fd in fds:
        os.close(fd)
    if request.get("new_session"):
        os.setsid()
    elif request.get("process_group") is not None:
        os.setpgid(0, int(request["process_group"]))
    os.chdir(str(request["cwd"]))
    environ: dict[str, str] = request["env"]
    old_home = (os.environ.get("HOME"), os.environ.get("PYTHONUSERBASE"))
    _set_environ(environ)
    time = sys.modules.get("time")
    if time is not None and hasattr(time, "tzset"):
        time.tzset()  # a fresh start reads TZ from the call's environment
    site: Any = sys.modules.get("site")
    home = (environ.get("HOME"), environ.get("PYTHONUSERBASE"))
    if site is not None and old_home != home and getattr(site, "USER_BASE", None) is not None:
        # A fresh start works these out from HOME and PYTHONUSERBASE.
        site.USER_BASE = None
        site.USER_SITE = None
        site.getusersitepackages()
    _clean_modules()
    _make_stdio()
    global _STARTED_WITH
    _STARTED_WITH = frozenset(sys.modules)
    sys.executable = str(request["executable"])
    sys.argv = list(request["argv"])
    if hasattr(sys, "orig_argv"):
        sys.orig_argv = list(request["orig_argv"])
    if request["mode"] == "file":
        # As a fresh start does: __file__ made absolute (not normalised), sys.path[0] its real folder.
        target = str(request["target"])
        request["target"] = target if os.path.isabs(target) else os.path.join(os.getcwd(), target)
    path0 = request.get("path0")
    if path0 == "<cwd>":
        path0 = os.getcwd()
    elif path0 == "<script>":
        path0 = os.path.dirname(os.path.realpath(str(request["target"])))
    if path0 is not None and not getattr(sys.flags, "safe_path", False):
        sys.path.insert(0, str(path0))


def _execute(request: "Request") -> None:
    mode = request["mode"]
    if mode == "module":
        _new_main()
        import runpy

        runpy._run_module_as_main(str(request["target"]))  # type: ignore[attr-defined]  # what python -m calls
        return
    if mode == "command":
        source: str | bytes = str(request["target"])
        filename = "<string>"
        namespace = _new_main()
    elif mode == "stdin":
        chunks = []
        while True:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        source = b"".join(chunks)
        filename = "<stdin>"
        namespace = _new_main(__file__="<stdin>", __cached__=None)
    else:
        # From the always-loaded bootstrap module: importing importlib.machinery would show in sys.modules.
        SourceFileLoader = sys.modules["_frozen_importlib_external"].SourceFileLoader

        filename = str(request["target"])
        with open(filename, "rb") as stream:
            source = stream.read()
        namespace = _new_main(__file__=filename, __cached__=None)
        namespace["__loader__"] = SourceFileLoader("__main__", filename)
    code = compile(source, filename, "exec", dont_inherit=True)
    if mode == "command" and sys.version_info >= (3, 13):
        # Python 3.13 keeps the -c source in linecache, so that tracebacks and warnings show its lines.
        import linecache

        text = str(source)
        linecache.cache[filename] = (len(text), None, [line + "\n" for line in text.splitlines()], filename)
    exec(code, namespace)


def _strip(tb: "Any") -> "Any":
    """*tb* without its leading frames of this file: a fresh interpreter has none of them."""
    while tb is not None and tb.tb_frame.f_code.co_filename == _HERE:
        tb = tb.tb_next
    return tb


def _program_exit_code(error: "BaseException | None") -> int:
    """Report *error* as the interpreter does for an exception that ends a program; the exit code."""
    if error is None:
        return 0
    if isinstance(error, SystemExit):
        code = error.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        try:
            sys.stderr.write(f"{code}\n")
        except Exception:  # the interpreter, too, cannot report it then
            pass
        return 1
    tb = _strip(error.__traceback__)
    error.__traceback__ = tb
    sys.last_type, sys.last_value, sys.last_traceback = type(error), error, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = error
    try:
        sys.excepthook(type(error), error, tb)
    except BaseException as hook_error:  # as the interpreter: an excepthook that fails is reported, not fatal
        sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
    return 1


def _flush() -> bool:
    ok = True
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            ok = False
    return ok


def _clear_namespace(namespace: "dict[str, object]") -> None:
    """What the interpreter does to a module's namespace at exit: underscore names first, then the rest."""
    for name in list(namespace):
        if name.startswith("_") and not name.startswith("__") and name != "__builtins__":
            namespace[name] = None
    for name in list(namespace):
        if name != "__builtins__":
            namespace[name] = None


def _finish(error: "BaseException | None") -> None:
    """End this child as the interpreter ends: threads joined, atexit handlers, flushing, modules torn down.

    The modules the call imported and ``__main__`` are torn down (their objects' ``__del__`` run and
    open files are flushed); the preloaded ones are not, which a full shutdown would spend ten times
    the whole call on.
    """
    code = _program_exit_code(error)
    interrupted = isinstance(error, KeyboardInterrupt)
    error = None
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()  # what the interpreter calls at exit
        except BaseException:
            pass
    # The program's own atexit module: on 3.9 each import of it has its own handlers.
    atexit = sys.modules.get("atexit")
    if atexit is not None:
        atexit._run_exitfuncs()
    if not _flush():
        code = 120
    main = sys.modules.get("__main__")
    own = [m for name, m in sys.modules.items() if name not in _STARTED_WITH]
    if main is not None:
        own.append(main)
    for name in [name for name in sys.modules if name not in _STARTED_WITH]:
        del sys.modules[name]
    gc.collect()
    for module in reversed(own):
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict):
            _clear_namespace(namespace)
    del own, main
    gc.collect()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass
    if interrupted:  # a program ended by Ctrl-C ends by SIGINT, so that its parent sees it
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGINT)
    os._exit(code & 0xFF)


def _main() -> "tuple[Request, list[int]] | None":
    control = _socket.socket(fileno=int(sys.argv[1]))
    if not hasattr(os, "fork") or not hasattr(_socket, "CMSG_SPACE"):
        _send(control, ("unsupported", f"{sys.executable} has no os.fork or no file descriptor passing"))
        return None
    if _PRELOAD_ERROR is not None:
        _send(control, ("error", _PRELOAD_ERROR))
        return None
    # A forked child shares this interpreter's memory pages until it writes to one, and freeing an
    # object writes to its page. So what each child would free is freed here, once: the server's own
    # modules and the import caches go (the server keeps its modules as globals), and the streams the
    # children replace stay referenced. The objects made so far are never collected in a child: its
    # collections do not touch their pages either.
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
    return _serve(control)


def _child(request: "Request", fds: "list[int]") -> "BaseException | None":
    try:
        _setup(request, fds)
        _execute(request)
    except BaseException as exc:  # handled below, at the top of the script, as a fresh start does
        return exc
    return None


_job = _main()
if _job is not None:
    _finish(_child(*_job))
