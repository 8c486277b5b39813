"""What a call to a warm interpreter gives back: :class:`WarmPopen`, a Popen-like process, and ``run()``.

A call the warm interpreter can serve (see :mod:`pytest_isoenv.run.warm`) runs in a child it forks;
any other runs as a plain :class:`subprocess.Popen` behind the same object. Either way the caller
gets what tests use of a Popen: ``args``, ``pid``, ``returncode``, the three streams, ``poll``,
``wait``, ``communicate``, the signals and a ``with`` block.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import io
import marshal
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

from pytest_isoenv.run.warm import WarmError, WarmServer

# The keywords of subprocess.Popen on this Python: any other is Popen's to refuse.
_POPEN_KEYWORDS = frozenset(inspect.signature(subprocess.Popen).parameters) - {"args"}
_STREAMS = ("stdin", "stdout", "stderr")
# What one write to a pipe takes without blocking: communicate() feeds stdin in such pieces, as Popen does.
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)


def _fork_can_start(argv: Sequence[str], kwargs: Mapping[str, Any]) -> bool:
    """Whether a fork of the warm interpreter starts what ``subprocess.Popen(argv, **kwargs)`` would.

    A fork runs no exec, no shell and nothing between fork and exec; and what Popen refuses (a
    keyword it does not know, ``text`` against ``universal_newlines``) is left to it to refuse.
    """
    get = kwargs.get
    text, newlines = get("text"), get("universal_newlines")
    return not (
        kwargs.keys() - _POPEN_KEYWORDS
        or isinstance(argv, (str, bytes))
        or get("env") is None
        or get("shell")
        or any(get(name) is not None for name in ("executable", "preexec_fn", "user", "group", "extra_groups"))
        or not get("close_fds", True)
        or get("pass_fds")
        or not get("restore_signals", True)
        or get("umask", -1) != -1
        or get("startupinfo") is not None
        or get("creationflags", 0)
        or (text is not None and newlines is not None and bool(text) != bool(newlines))
    )


def _child_fds(streams: Sequence[Any], pipesize: int) -> tuple[list[int], list[int], list[int]]:
    """A child's stdin, stdout and stderr as :class:`subprocess.Popen` makes them on POSIX.

    Returns the child's three file descriptors (0, 1, 2 when inherited), ours (the other end of
    each pipe; -1 for none) and those opened for the child alone, to close once it has its copies.
    """
    child, ours, opened = [0, 1, 2], [-1, -1, -1], []
    try:
        for number, how in enumerate(streams):
            if how is None:
                continue
            if how == subprocess.PIPE:
                read, write = os.pipe()
                child[number], ours[number] = (read, write) if number == 0 else (write, read)
                opened.append(child[number])
                if pipesize > 0 and hasattr(fcntl, "F_SETPIPE_SZ"):
                    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, pipesize)
            elif how == subprocess.DEVNULL:
                child[number] = os.open(os.devnull, os.O_RDWR)
                opened.append(child[number])
            elif how == subprocess.STDOUT and number == 2:
                stdout = sys.__stdout__
                child[2] = child[1] if streams[1] is not None or stdout is None else stdout.fileno()
            else:
                child[number] = how if isinstance(how, int) else how.fileno()
    except BaseException:
        _close([*opened, *ours])
        raise
    return child, ours, opened


def _close(fds: Iterable[int]) -> None:
    for fd in fds:
        if fd != -1:
            os.close(fd)


def _left(deadline: float | None) -> float | None:
    """Seconds until *deadline* (negative once past it; None: no deadline)."""
    return None if deadline is None else deadline - time.monotonic()


class WarmPopen:
    """A program started in an env, with what tests use of :class:`subprocess.Popen`: the warm interpreter's child when it can be.

    ``WarmPopen(args, server=server, **popen_kwargs)`` takes Popen's arguments. A call the warm
    interpreter can serve (see :doc:`/how-to/warm`) runs in a child it forks; any other starts a
    plain :class:`subprocess.Popen`, which this object then stands for, and :attr:`warm` is False.

    Both ways it has Popen's :attr:`args`, :attr:`pid`, :attr:`returncode`, the pipes
    :attr:`stdin`, :attr:`stdout` and :attr:`stderr` (bytes, or text with ``text``, ``encoding``
    or ``errors``), :meth:`poll`, :meth:`wait`, :meth:`communicate`, :meth:`send_signal`,
    :meth:`terminate` and :meth:`kill`, with Popen's semantics, and closes its pipes and waits at
    the end of a ``with`` block. The warm interpreter keeps its child's pid reserved until this
    object has read the exit code, so that no signal can reach another process.
    """

    def __init__(self, args: Sequence[str], *, server: WarmServer | None, **kwargs: Any) -> None:
        #: The command, as given.
        self.args = args
        #: The process's stdin to write to, with ``stdin=PIPE`` (else None).
        self.stdin: IO[Any] | None = None
        #: The process's stdout to read from, with ``stdout=PIPE`` (else None).
        self.stdout: IO[Any] | None = None
        #: The process's stderr to read from, with ``stderr=PIPE`` (else None).
        self.stderr: IO[Any] | None = None
        self._plain: subprocess.Popen[Any] | None = None
        self._returncode: int | None = None
        self._reply: socket.socket | None = None
        self._received = b""
        self._lost: str | None = None
        self._reply_lock = threading.Lock()
        self._text = any(kwargs.get(name) for name in ("text", "universal_newlines", "encoding", "errors"))
        self._communicating = False
        self._input: memoryview | None = None
        self._output: dict[IO[Any], list[bytes]] = {}
        pid = self._start_warm(server, kwargs) if server is not None and _fork_can_start(args, kwargs) else None
        if pid is None:
            self._plain = subprocess.Popen(args, **kwargs)
            pid = self._plain.pid
            self.stdin, self.stdout, self.stderr = self._plain.stdin, self._plain.stdout, self._plain.stderr
        #: The process id.
        self.pid: int = pid
        #: Whether the process is a child of the warm interpreter (False: a plain subprocess).
        self.warm = self._plain is None

    def _start_warm(self, server: WarmServer, kwargs: dict[str, Any]) -> int | None:
        """Have the warm interpreter fork a child for this call, with pipes as Popen makes them; its pid.

        None when the call must run plain: the warm interpreter cannot serve it, or cannot fork at all.
        """
        stdin, cwd = kwargs.get("stdin"), kwargs.get("cwd")
        argv = [os.fsdecode(a) for a in self.args]
        environ = {os.fsdecode(k): os.fsdecode(v) for k, v in kwargs["env"].items()}
        stdin_fd = 0 if stdin is None else stdin if isinstance(stdin, int) else stdin.fileno()
        request = server.plan(argv, environ, None if cwd is None else os.fsdecode(cwd), stdin_fd)
        if request is None:
            return None
        request.update(new_session=bool(kwargs.get("start_new_session")), process_group=kwargs.get("process_group"))
        streams = (stdin, kwargs.get("stdout"), kwargs.get("stderr"))
        child, ours, opened = _child_fds(streams, kwargs.get("pipesize") or -1)
        submitted = None
        try:
            # Our streams are made before the child starts, as Popen makes them: a bad encoding starts nothing.
            self._open_streams(ours, kwargs)
            submitted = server.submit(request, child)
        finally:
            _close(opened)  # the child has its own copies, or there is no child
            if submitted is None:
                self._close_streams(ours)
        if submitted is None:
            return None
        self._reply = submitted[0]
        return submitted[1]

    def _open_streams(self, fds: list[int], kwargs: dict[str, Any]) -> None:
        """Our ends of the pipes as Popen makes them: binary streams, under text ones in text mode."""
        bufsize, encoding, errors = kwargs.get("bufsize", -1), kwargs.get("encoding"), kwargs.get("errors")
        line_buffering = self._text and bufsize == 1
        if line_buffering:
            bufsize = -1  # the text stream buffers lines: the binary one under it keeps its default buffer
        for name, fd in zip(_STREAMS, fds, strict=True):
            if fd == -1:
                continue
            stream: Any = open(fd, "wb" if name == "stdin" else "rb", bufsize)  # noqa: SIM115 - the caller's to close
            setattr(self, name, stream)
            if self._text and name == "stdin":
                setattr(self, name, io.TextIOWrapper(stream, encoding, errors, None, line_buffering, True))
            elif self._text:
                setattr(self, name, io.TextIOWrapper(stream, encoding, errors))

    def _close_streams(self, fds: list[int]) -> None:
        """Close our streams, or the pipe ends *fds* that have none yet."""
        for name, fd in zip(_STREAMS, fds, strict=True):
            stream = getattr(self, name)
            if stream is not None:
                stream.close()
                setattr(self, name, None)
            elif fd != -1:
                os.close(fd)

    @property
    def returncode(self) -> int | None:
        """The exit code (-N: ended by signal N), once :meth:`poll`, :meth:`wait` or :meth:`communicate` saw the end."""
        return self._plain.returncode if self._plain is not None else self._returncode

    def __repr__(self) -> str:
        return f"<WarmPopen: returncode: {self.returncode} args: {self.args!r}>"

    def poll(self) -> int | None:
        """The exit code if the process has ended, else None (also when its exit code is lost: see :meth:`wait`)."""
        if self._plain is not None:
            return self._plain.poll()
        try:
            return self._read_exit(0)
        except WarmError:
            return None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end; its exit code.

        Raises :exc:`subprocess.TimeoutExpired` after *timeout* seconds, and :class:`WarmError` when
        the warm interpreter died before the process ended, which loses its exit code.
        """
        if self._plain is not None:
            return self._plain.wait(timeout)
        code = self._read_exit(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def _read_exit(self, timeout: float | None) -> int | None:
        """The child's exit code if the warm interpreter has sent it within *timeout* seconds (None: wait)."""
        with self._reply_lock:
            reply, deadline = self._reply, None if timeout is None else time.monotonic() + timeout
            if self._lost is not None:
                raise WarmError(self._lost)
            if reply is None:
                return self._returncode
            while True:
                while len(self._received) >= 4:
                    size = int.from_bytes(self._received[:4], "big")
                    if len(self._received) < 4 + size:
                        break
                    message = marshal.loads(self._received[4 : 4 + size])
                    self._received = self._received[4 + size :]
                    if message[0] == "exit":
                        self._returncode = int(message[1])
                        reply.close()  # lets the warm interpreter reap the child: its pid may be reused now
                        self._reply = None
                        return self._returncode
                left = _left(deadline)
                if not select.select([reply], [], [], None if left is None else max(0.0, left))[0]:
                    return None
                chunk = reply.recv(4096)
                if not chunk:
                    reply.close()
                    self._reply = None
                    self._lost = (
                        f"the warm interpreter running {self.args!r} (pid {self.pid}) died before the program "
                        "ended; its exit code is lost"
                    )
                    raise WarmError(self._lost)
                self._received += chunk

    def communicate(self, input: str | bytes | None = None, timeout: float | None = None) -> tuple[Any, Any]:
        """Send *input* to stdin and close it, read stdout and stderr to their end, and wait for the process.

        As Popen's: returns ``(stdout, stderr)``, None for a stream that is not a pipe, text in text
        mode. After *timeout* seconds it raises :exc:`subprocess.TimeoutExpired` with the output so far
        (bytes); a later call goes on from there.
        """
        if self._plain is not None:
            return self._plain.communicate(input, timeout)
        if self._communicating and input:
            raise ValueError("Cannot send input after starting communication")
        if timeout is None and not self._communicating and [self.stdin, self.stdout, self.stderr].count(None) >= 2:
            return self._communicate_one(input)  # one pipe at most: nothing to watch
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._exchange(input, deadline, timeout)
        finally:
            self._communicating = True
        self.wait(_left(deadline))
        return self._collected(self.stdout), self._collected(self.stderr)

    def _communicate_one(self, input: str | bytes | None) -> tuple[Any, Any]:
        stdout = stderr = None
        if self.stdin is not None:
            if input:
                with contextlib.suppress(BrokenPipeError):  # a program need not read its input
                    self.stdin.write(input)
            with contextlib.suppress(BrokenPipeError):
                self.stdin.close()
        elif self.stdout is not None:
            stdout = self.stdout.read()
            self.stdout.close()
        elif self.stderr is not None:
            stderr = self.stderr.read()
            self.stderr.close()
        self.wait()
        return stdout, stderr

    def _exchange(self, input: str | bytes | None, deadline: float | None, timeout: float | None) -> None:
        """Feed *input* to stdin and read the output pipes to their end, as Popen does on POSIX.

        Past *deadline*, raises :exc:`subprocess.TimeoutExpired`; what was read is kept for the next call.
        """
        stdin = self.stdin
        if not self._communicating:
            self._output = {stream: [] for stream in (self.stdout, self.stderr) if stream is not None}
            if stdin is not None:
                with contextlib.suppress(BrokenPipeError):  # what the caller wrote to it goes first
                    stdin.flush()
                if input:
                    text: Any = stdin  # a TextIOWrapper in text mode, whose input is str
                    data: Any = input.encode(text.encoding, text.errors) if self._text else input  # type: ignore[union-attr]
                    self._input = memoryview(data)
                else:
                    with contextlib.suppress(BrokenPipeError):
                        stdin.close()
        with selectors.PollSelector() if hasattr(selectors, "PollSelector") else selectors.SelectSelector() as selector:
            if stdin is not None and input:
                selector.register(stdin, selectors.EVENT_WRITE, stdin)
            for stream in self._output:
                if not stream.closed:
                    selector.register(stream, selectors.EVENT_READ, stream)
            while selector.get_map():
                left = _left(deadline)
                ready = [] if left is not None and left < 0 else selector.select(left)
                if deadline is not None and time.monotonic() > deadline:
                    read = [self._output.get(stream) if stream else None for stream in (self.stdout, self.stderr)]
                    out, err = (b"".join(chunks) if chunks else None for chunks in read)
                    raise subprocess.TimeoutExpired(self.args, timeout or 0, out, err)
                for key, _events in ready:
                    stream = key.data
                    if stream is stdin:
                        self._feed(stdin, selector)
                        continue
                    data = os.read(key.fd, 32768)
                    if not data:
                        selector.unregister(stream)
                        stream.close()
                    self._output[stream].append(data)

    def _feed(self, stdin: IO[Any], selector: selectors.BaseSelector) -> None:
        """Write the next piece of the input; close stdin after the last one, or once the program closed its end."""
        assert self._input is not None
        try:
            written = os.write(stdin.fileno(), self._input[:_PIPE_BUF])
        except BrokenPipeError:
            written = len(self._input)
        self._input = self._input[written:]
        if not self._input:
            selector.unregister(stdin)
            stdin.close()

    def _collected(self, stream: IO[Any] | None) -> Any:
        """All that was read from *stream*: bytes, or text with universal newlines in text mode (None: no pipe)."""
        if stream is None:
            return None
        data = b"".join(self._output[stream])
        if not self._text:
            return data
        text: Any = stream  # a TextIOWrapper
        return data.decode(text.encoding, text.errors).replace("\r\n", "\n").replace("\r", "\n")

    def send_signal(self, sig: int) -> None:
        """Send signal *sig* to the process, unless it has ended."""
        if self._plain is not None:
            self._plain.send_signal(sig)
            return
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        """Ask the process to end: ``SIGTERM``."""
        if self._plain is not None:
            self._plain.terminate()
        else:
            self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """End the process: ``SIGKILL``."""
        if self._plain is not None:
            self._plain.kill()
        else:
            self.send_signal(signal.SIGKILL)

    def __enter__(self) -> WarmPopen:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the pipes and wait for the process, as Popen does at the end of a ``with`` block."""
        if self._plain is not None:
            self._plain.__exit__(exc_type, exc, tb)
            return
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        try:
            if self.stdin is not None:
                self.stdin.close()  # flushes, which may fail
        finally:
            if exc_type is KeyboardInterrupt:
                # As Popen: Ctrl-C may have reached the process too; give it a moment, never block on it.
                with contextlib.suppress(subprocess.TimeoutExpired, WarmError):
                    self.wait(0.25)
            else:
                self.wait()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # As Popen: dropping a process whose exit code nobody read is worth a warning. Closing the reply
        # socket lets the warm interpreter reap the child once it ends.
        if self._reply is not None:
            _warn(f"subprocess {self.pid} is still running", ResourceWarning, source=self)
            self._reply.close()


def run(
    argv: Sequence[str],
    *,
    server: WarmServer | None,
    input: str | bytes | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """:func:`subprocess.run` (without ``check``) on a :class:`WarmPopen`: the same pipes, timeout and kill."""
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    with WarmPopen(argv, server=server, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()  # as subprocess.run on POSIX: the exception holds the output read so far
            raise
        except BaseException:
            process.kill()
            raise
        returncode = process.poll()
    assert returncode is not None
    return subprocess.CompletedProcess(process.args, returncode, stdout, stderr)
