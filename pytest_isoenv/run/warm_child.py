"""What a forked child of the warm interpreter does: become a fresh ``python``, run the program, end as one.

Loaded by ``warm_server.py`` from beside it, with the standard library only, on any Python >= 3.9.
A child sets up what a fresh ``python`` would have (argv, ``sys.executable``, ``sys.path[0]``,
``__main__``, cwd, ``os.environ``, stdio over the call's file descriptors, signal handlers) and runs
the program (:meth:`Call.run`). Its exit code then leaves the server's stack as ``SystemExit`` at
module level, so that the interpreter's own finalisation ends the call: it joins the non-daemon
threads and runs the ``atexit`` handlers. The server registered one handler before any other, which
runs last and calls :meth:`Call.end`: what finalisation does after the handlers, for the program's
own modules only, then ``os._exit``. Tearing down every preloaded module too would copy most of the
heap, ten times the cost of the call.
"""

import builtins
import gc
import io
import os
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is for the type checker only: importing it would cost every call
    from collections.abc import Callable
    from typing import Any

    Request = dict[str, Any]


class Origin:
    """The warm interpreter as it forks: what a child compares itself with and copies."""

    def __init__(self, keep: "frozenset[str]", server_file: str, clean_modules: "Callable[[], None]") -> None:
        #: ``sys.modules`` after the preloads: what the program finds at its start.
        self.keep = keep
        self.server_file = server_file
        #: Forgets the modules the server imported and the import caches.
        self.clean_modules = clean_modules
        #: ``os.environ`` as the children inherit it (see :meth:`Call.set_environ`).
        self.environ = dict(os.environ)
        #: How this interpreter made its standard streams: a child makes its own the same way.
        self.stdio = [(s.encoding, s.errors) for s in (sys.stdin, sys.stdout, sys.stderr)]
        self.buffered = not getattr(sys.stdout, "write_through", False)
        #: The loader a fresh start gives a script's ``__main__``: the server script's own.
        self.source_loader: Any = type(sys.modules["__main__"].__loader__)


def _close(fds: "list[int]") -> None:
    for fd in fds:
        os.close(fd)


class Call:
    """One call, in a forked child: made to look like a fresh ``python``, run, and ended as one ends."""

    def __init__(self, origin: "Origin", request: "Request", fds: "list[int]") -> None:
        self.origin, self.request, self.fds = origin, request, fds
        self.started_with = origin.keep  # what sys.modules held when the program started: the rest it imported
        self.code = 0
        self.interrupted = False  # by an uncaught KeyboardInterrupt, which ends the process by SIGINT
        self.runpy_file = ""  # with -m: runpy's file, whose frames a traceback shows only as python -m's

    def run(self) -> int:
        """Set up and run the program; its exit code, with what ended it reported as at the top of a script."""
        try:
            self.setup()
            self.execute()
        except BaseException as exc:  # anything: a fresh start handles it at the top of the script too
            self.interrupted = isinstance(exc, KeyboardInterrupt)
            self.code = self.exit_code(exc)
        return self.code

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
        if len(sys.modules) != len(self.started_with):  # the server imported more since it forgot its own
            self.origin.clean_modules()
        self.make_stdio()
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
        for name in self.origin.environ.keys() - environ.keys():
            del os.environ[name]
        for name, value in environ.items():
            if self.origin.environ.get(name) != value:
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
        for fd, (encoding, errors), name in zip(range(3), self.origin.stdio, ("<stdin>", "<stdout>", "<stderr>")):
            write = fd != 0
            buffered = self.origin.buffered
            buffering = 0 if write and not buffered else -1
            buffer: Any = open(fd, "wb" if write else "rb", buffering, closefd=False)  # noqa: SIM115 - they live on as sys.std*
            raw = buffer.raw if buffering else buffer
            raw.name = name
            line_buffering = buffered and (raw.isatty() or fd == 2)
            stream: Any = io.TextIOWrapper(buffer, encoding, errors, "\n", line_buffering, not buffered)
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
            self.run_module(target)
            return
        if mode == "command":
            source: str | bytes = target
            filename, namespace = "<string>", self.new_main()
        elif mode == "stdin":
            source = b"".join(iter(lambda: os.read(0, 1 << 16), b""))
            filename, namespace = "<stdin>", self.new_main(__file__="<stdin>", __cached__=None)
        else:
            with open(target, "rb") as stream:
                source = stream.read()
            loader = self.origin.source_loader("__main__", target)
            filename, namespace = target, self.new_main(__file__=target, __cached__=None, __loader__=loader)
        code = compile(source, filename, "exec", dont_inherit=True)
        if mode == "command" and sys.version_info >= (3, 13):
            # Python 3.13 keeps the -c source in linecache, so that tracebacks and warnings show its lines.
            import linecache

            linecache.cache[filename] = (len(target), None, [line + "\n" for line in target.splitlines()], filename)
        exec(code, namespace)

    def run_module(self, name: str) -> None:
        """Run module *name* as ``python -m`` does, with :func:`runpy.run_module`.

        What runpy reports of a module it cannot find or run is reported as the interpreter does
        (``python: No module named ...``, exit code 1). Once the module has ended, ``sys.argv[0]``
        and ``__main__`` are again what they were while it ran, as after ``python -m``, for the
        threads and ``atexit`` handlers that run after it."""
        import runpy

        self.new_main()
        self.runpy_file = runpy.run_module.__code__.co_filename
        try:
            namespace = runpy.run_module(name, run_name="__main__", alter_sys=True)
        except ImportError as exc:
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None and tb.tb_frame.f_code.co_filename == self.runpy_file:
                raise SystemExit(f"{sys.executable}: {exc}") from None  # runpy's own "No module named ..."
            self.adopt_main(exc)
            raise
        except BaseException as exc:
            self.adopt_main(exc)
            raise
        self.adopt_main(None, namespace)

    def adopt_main(self, error: "BaseException | None", namespace: "dict[str, Any] | None" = None) -> None:
        """Make ``__main__`` and ``sys.argv[0]`` the ``-m`` module's again (its namespace, or found in *error*)."""
        tb = error.__traceback__ if error is not None else None
        while namespace is None and tb is not None:
            if tb.tb_frame.f_globals.get("__name__") == "__main__" and tb.tb_frame.f_code.co_name == "<module>":
                namespace = tb.tb_frame.f_globals
            tb = tb.tb_next
        spec = namespace.get("__spec__") if namespace is not None else None
        if namespace is None or spec is None:
            return
        sys.modules["__main__"].__dict__.update(namespace)
        sys.argv[0] = spec.origin

    def exit_code(self, error: BaseException) -> int:
        """Report *error* as the interpreter does for an exception that ends a program; the exit code."""
        if isinstance(error, SystemExit):
            if error.code is None or isinstance(error.code, int):
                return error.code or 0
            try:
                sys.stderr.write(f"{error.code}\n")
            except Exception:  # the interpreter, too, cannot report it then
                pass
            return 1
        tb = error.__traceback__
        while tb is not None and _filename(tb) in (__file__, self.origin.server_file):  # a fresh start has none
            tb = error.__traceback__ = tb.tb_next
        while tb is not None and tb.tb_next is not None and self.runpy_file == _filename(tb) == _filename(tb.tb_next):
            tb = error.__traceback__ = tb.tb_next  # python -m shows the frame that runs the module, and one more
        sys.last_type, sys.last_value, sys.last_traceback = type(error), error, tb
        if sys.version_info >= (3, 12):
            sys.last_exc = error
        try:
            sys.excepthook(type(error), error, tb)
        except BaseException as hook_error:  # as the interpreter: an excepthook that fails is reported, not fatal
            sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
        return 1

    def imported(self) -> "list[str]":
        """The modules the program imported, newest first: those after the last it started with.

        Read from the end of ``sys.modules``, where imports add them: reading every name would write to
        (and so copy) the memory pages of all of them, since taking a reference counts in the object.
        So a preloaded module the program removed and imported again ends the list there."""
        names = []
        for name in reversed(sys.modules):
            if name in self.started_with:
                break
            names.append(name)
        return names

    def end(self) -> None:
        """End the child as ``Py_FinalizeEx`` goes on after the ``atexit`` handlers, then ``os._exit``.

        ``sys.stdout`` and ``sys.stderr`` are flushed as the interpreter flushes them (exit code 120
        if that fails), put back, and the modules the program imported and ``__main__`` are torn
        down, so ``__del__`` methods run and open files are flushed. What the teardown printed is
        flushed as the streams' own close flushes it: an error then changes nothing."""
        code = self.code if _flush_std() else 120
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
        own: list[Any] = [sys.modules.get("__main__"), *(sys.modules.pop(name) for name in self.imported())]
        gc.collect()
        for module in own:
            namespace = getattr(module, "__dict__", None)
            if isinstance(namespace, dict):
                _clear_namespace(namespace)
        del own
        gc.collect()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()  # type: ignore[union-attr]  # None raises, as the interpreter's own check would skip it
            except Exception:
                pass
        if self.interrupted:  # a program ended by Ctrl-C ends by SIGINT, so that its parent sees it
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code & 0xFF)


def _filename(tb: "Any") -> str:
    return str(tb.tb_frame.f_code.co_filename)


def _flush_std() -> bool:
    """Flush ``sys.stdout`` and ``sys.stderr`` as the interpreter does at exit; whether both could be.

    A stream that is missing, None or closed is left alone (a program may close them); a failure
    of stdout's is reported as an unraisable exception, one of stderr's has nowhere to go."""
    flushed = True
    for name in ("stdout", "stderr"):
        stream: Any = getattr(sys, name, None)
        try:
            closed = stream is None or bool(stream.closed)
        except Exception:  # a stream without a usable ``closed`` counts as open, as the interpreter counts it
            closed = False
        if closed:
            continue
        try:
            stream.flush()
        except Exception as exc:
            flushed = False
            if name == "stdout":
                _report_unraisable(exc, stream)
    return flushed


def _report_unraisable(error: BaseException, culprit: object) -> None:
    """Hand *error* to ``sys.unraisablehook`` as the interpreter does ("Exception ignored in: ...")."""
    tb = error.__traceback__.tb_next if error.__traceback__ is not None else None  # without our frame
    seen: list[Any] = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append

    class _Probe:  # its failing __del__ makes the interpreter build the hook's argument, whose type is not public
        def __del__(self) -> None:
            raise RuntimeError

    _Probe()
    sys.unraisablehook = hook
    if seen:
        # Python 3.13 names what failed in words instead of showing the stream's repr.
        message, culprit = (
            ("Exception ignored on flushing sys.stdout", None) if sys.version_info >= (3, 13) else (None, culprit)
        )
        sys.unraisablehook(type(seen[0])((type(error), error, tb, message, culprit)))


def _clear_namespace(namespace: "dict[str, object]") -> None:
    """What the interpreter does to a module's namespace at exit: underscore names first, then the rest."""
    for name in list(namespace):
        if name.startswith("_") and not name.startswith("__") and name != "__builtins__":
            namespace[name] = None
    for name in list(namespace):
        if name != "__builtins__":
            namespace[name] = None
