"""Warm interpreters: every program runs both ways, plain and warm, and what a test sees must be the same.

The parity tests compare exit code, stdout and stderr byte for byte, and check that the warm run
really was served by the warm interpreter (a silent fall-back to a plain subprocess would pass
any comparison).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import LEFT_RUNNING

from pytest_isoenv import IsolatedEnv, SpecError, WarmError
from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.run import warm, warmpopen
from pytest_isoenv.run.warm import WarmServer
from pytest_isoenv.session.envs import SessionEnvs
from pytest_isoenv.session.settings import Settings
from pytest_isoenv.spec.index import IndexOptions

pytestmark = pytest.mark.skipif(warm.unavailable() is not None, reason=str(warm.unavailable()))

PROBE = {
    "__init__.py": """\
        import sys

        def main():
            print("probe says", sys.argv[1:])
            return 3

        def fail():
            raise RuntimeError("the probe failed")
        """,
    "__main__.py": """\
        import sys
        print("probe as a module", sys.argv, __name__)
        """,
    "exits.py": """\
        import sys
        print("leaving", file=sys.stderr)
        sys.exit(5)
        """,
    "atexits.py": """\
        import atexit, sys
        VALUE = "kept"
        atexit.register(lambda: print("at exit", sys.argv[0], getattr(sys.modules["__main__"], "VALUE", None)))
        """,
    "raises.py": """\
        def f():
            raise ValueError("from a module run with -m")
        f()
        """,
    "noisy.py": """\
        import os
        with open(os.environ["PROBE_IMPORTS"], "a") as log:
            log.write("imported\\n")
        """,
}


@dataclass
class Pair:
    """The same env handed out plain and warm."""

    plain: IsolatedEnv
    warm: IsolatedEnv

    @property
    def server(self) -> WarmServer:
        server = warm.server_for(self.warm.python, self.warm.bin_dir, self.warm.environ, self.warm.spec.preload)
        assert server is not None
        return server

    def both(self, *args: str | os.PathLike[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run *args* both ways; assert the warm run was served warm and matches the plain one exactly."""
        plain = self.plain.run(*args, check=False, **kwargs)
        served = self.server.served
        warm_run = self.warm.run(*args, check=False, **kwargs)
        assert self.server.served == served + 1, "the warm run was not served by the warm interpreter"
        assert (warm_run.returncode, warm_run.stdout, warm_run.stderr) == (
            plain.returncode,
            plain.stdout,
            plain.stderr,
        )
        return plain


@pytest.fixture(scope="module")
def factory(
    tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, shared_cache: Path, installer_name: str
) -> IsoEnvFactory:
    root = tmp_path_factory.mktemp("warm-root")
    settings = Settings(
        cache_dir=shared_cache,
        rootdir=root,
        run_id=uuid.uuid4().hex,
        index=IndexOptions(find_links=(str(wheelhouse),), offline=True),
        installer=installer_name,
    )
    return IsoEnvFactory(
        SessionEnvs(settings, private_root=lambda: Path(tempfile.mkdtemp(dir=root, prefix="private-")))
    )


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, project_writer: Callable[..., Path]) -> Path:
    root = project_writer(
        tmp_path_factory.mktemp("probe"),
        "warmprobe",
        scripts={"warmprobe": "warmprobe:main", "warmprobe-fail": "warmprobe:fail"},
    )
    for name, text in PROBE.items():
        (root / "warmprobe" / name).write_text(textwrap.dedent(text))
    return root


@pytest.fixture(scope="module")
def pair(factory: IsoEnvFactory, probe: Path) -> Iterator[Pair]:
    # Buffered standard streams are the harder case; this machine's PYTHONUNBUFFERED would hide them.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PYTHONUNBUFFERED", raising=False)
        result = Pair(factory.get(str(probe), "clitool"), factory.get(str(probe), "clitool", warm=True))
    yield result
    warm.stop(result.warm.python)


def test_the_env_is_the_same_and_only_the_warm_one_is_warm(pair: Pair) -> None:
    assert pair.warm.path == pair.plain.path
    assert pair.warm.key == pair.plain.key
    assert pair.warm.warm
    assert not pair.plain.warm


# -- the parity suite: at least 25 programs, each run both ways -------------------------------------------

PROGRAMS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "print": (["python", "-c", "print('hello')"], {}),
    "exit-code": (["python", "-c", "import sys; sys.exit(3)"], {}),
    "exit-message": (["python", "-c", "raise SystemExit('a message for stderr')"], {}),
    "exit-none": (["python", "-c", "import sys; print('x'); sys.exit()"], {}),
    "exit-big": (["python", "-c", "import sys; sys.exit(257)"], {}),
    "uncaught-exception": (["python", "-c", "def f():\n    raise ValueError('boom')\nf()"], {}),
    "chained-exception": (
        ["python", "-c", "try:\n    1/0\nexcept Exception as e:\n    raise KeyError('k') from e"],
        {},
    ),
    "syntax-error": (["python", "-c", "1 +"], {}),
    "keyboard-interrupt": (["python", "-c", "raise KeyboardInterrupt"], {}),
    "sigterm": (["python", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"], {}),
    "abort": (["python", "-c", "import os; print('before', flush=True); os.abort()"], {}),
    "stdin": (["python", "-c", "import sys; print(sys.stdin.read()[::-1])"], {"input": "dlrow olleh"}),
    "stdin-lines": (["python", "-c", "import sys\nfor line in sys.stdin: print(len(line))"], {"input": "a\nbb\nccc"}),
    "program-on-stdin": (["python", "-", "x", "y"], {"input": "import sys\nprint(sys.argv, __file__, sys.path[0])\n"}),
    "argv": (["python", "-c", "import sys; print(sys.argv)", "a", "b c", ""], {}),
    "combined-c": (["python", "-cimport sys; print(sys.argv)", "z"], {}),
    "interpreter-state": (
        [
            "python",
            "-c",
            "import json, sys; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix, sys.path, "
            "list(sys.flags), getattr(sys, 'orig_argv', None), sys.stdout.encoding, sys.stdin.encoding, "
            "sys.stderr.errors, sys.stdout.line_buffering, sys.stderr.line_buffering, sys.stdout.write_through, "
            "sys.stdin.isatty(), sys.stdout.name, sys.stdout.mode]))",
        ],
        {},
    ),
    "main-globals": (
        ["python", "-c", "print(sorted(globals()), __name__, __spec__, __loader__, __builtins__.__name__)"],
        {},
    ),
    "modules-at-start": (["python", "-c", "import sys; print(sorted(sys.modules))"], {}),
    "environment": (
        ["python", "-c", "import json, os; print(json.dumps(sorted(os.environ.items())))"],
        {"env": {"PROBE_EXTRA": "yes", "VIRTUAL_ENV": None, "HOME": "/nonexistent-home"}},
    ),
    "environ-in-os-module": (
        ["python", "-c", "import os; print(os.getenv('PROBE_EXTRA'), os.environb.get(b'PROBE_EXTRA'))"],
        {"env": {"PROBE_EXTRA": "b"}},
    ),
    "timezone": (["python", "-c", "import time; print(time.tzname, time.timezone)"], {"env": {"TZ": "Asia/Tokyo"}}),
    "user-site": (["python", "-c", "import site; print(site.USER_BASE, site.USER_SITE)"], {"env": {"HOME": "/x"}}),
    "module": (["python", "-m", "warmprobe", "arg"], {}),
    "module-exit": (["python", "-m", "warmprobe.exits"], {}),
    "module-missing": (["python", "-m", "no_such_module_here"], {}),
    "module-sys-path": (["python", "-m", "json.tool", "--help"], {}),
    "atexit": (
        ["python", "-c", "import atexit; atexit.register(print, 'first'); atexit.register(print, 'second')"],
        {},
    ),
    "atexit-after-error": (
        ["python", "-c", "import atexit, sys; atexit.register(lambda: print('cleanup', sys.last_value))\n1/0"],
        {},
    ),
    "unflushed": (["python", "-c", "import sys; sys.stdout.write('no newline'); sys.stderr.write('nor here')"], {}),
    "os-exit-drops-buffer": (["python", "-c", "import os; print('lost'); os._exit(7)"], {}),
    "del-at-exit": (
        ["python", "-c", "class A:\n    def __del__(self):\n        print('collected')\na = A()\nprint('end')"],
        {},
    ),
    "threads-joined": (
        [
            "python",
            "-c",
            "import threading, time\n"
            "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()\nprint('main done')",
        ],
        {},
    ),
    "fork-again": (
        [
            "python",
            "-c",
            "import os, sys\npid = os.fork()\nif pid == 0:\n    print('grandchild', flush=True)\n    sys.exit(4)\n"
            "_, status = os.waitpid(pid, 0)\nprint('parent saw', os.waitstatus_to_exitcode(status))",
        ],
        {},
    ),
    "warning": (["python", "-c", "import warnings; warnings.warn('careful')"], {}),
    "unicode": (["python", "-c", "import sys; print('h\\u00e9llo \\u2713', sys.stdin.read())"], {"input": "\u00fc"}),
    "excepthook": (
        ["python", "-c", "import sys\nsys.excepthook = lambda *a: print('hooked', a[0].__name__)\nraise OSError"],
        {},
    ),
    # How the interpreter ends (Py_FinalizeEx): streams a program closed, replaced or broke, atexit, threads.
    "closed-stdout": (["python", "-c", "import sys; print('x'); sys.stdout.close()"], {}),
    "closed-stderr": (["python", "-c", "import sys; sys.stderr.write('x'); sys.stderr.close()"], {}),
    "closed-both": (["python", "-c", "import sys; sys.stdout.close(); sys.stderr.close(); sys.exit(3)"], {}),
    "replaced-stdout": (["python", "-c", "import io, sys; sys.stdout = io.StringIO(); print('kept in memory')"], {}),
    "stdout-none": (["python", "-c", "import sys; sys.stdout = None"], {}),
    "stdout-deleted": (["python", "-c", "import sys; print('x', end=''); del sys.stdout"], {}),
    "stdout-flush-fails": (
        [
            "python",
            "-c",
            "import sys\nclass Out:\n    def write(self, text): return len(text)\n"
            "    def flush(self): raise ValueError('cannot flush')\n    def __repr__(self): return '<Out>'\n"
            "sys.stdout = Out()",
        ],
        {},
    ),
    "stderr-flush-fails": (
        [
            "python",
            "-c",
            "import sys\nclass Err:\n    def write(self, text): return len(text)\n"
            "    def flush(self): raise ValueError('cannot flush')\nsys.stderr = Err()",
        ],
        {},
    ),
    "stdout-fd-closed": (["python", "-c", "import os; print('buffered'); os.close(1)"], {}),
    "exit-in-atexit": (["python", "-c", "import atexit, sys; atexit.register(sys.exit, 5); print('ran')"], {}),
    "error-in-atexit": (
        [
            "python",
            "-c",
            "import atexit\nclass Handler:\n    def __call__(self): 1/0\n    def __repr__(self): return 'Handler()'\n"
            "atexit.register(Handler()); atexit.register(print, 'runs first'); raise SystemExit(2)",
        ],
        {},
    ),
    "print-in-atexit-after-close": (
        ["python", "-c", "import atexit, sys; atexit.register(print, 'late'); sys.stdout.close()"],
        {},
    ),
    "daemon-thread-left-running": (
        [
            "python",
            "-c",
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\nprint('main done')",
        ],
        {},
    ),
    "thread-then-atexit": (
        [
            "python",
            "-c",
            "import atexit, threading, time\natexit.register(print, 'atexit after the thread')\n"
            "threading.Thread(target=lambda: (time.sleep(0.1), print('thread done', flush=True))).start()",
        ],
        {},
    ),
    "keyboard-interrupt-with-atexit": (
        ["python", "-c", "import atexit; atexit.register(print, 'still run'); raise KeyboardInterrupt"],
        {},
    ),
    "module-atexit": (["python", "-m", "warmprobe.atexits"], {}),
    "console-script": (["warmprobe", "a", "b"], {}),
    "console-script-raises": (["warmprobe-fail"], {}),
    "console-script-from-wheel": (["clitool"], {}),
}


@pytest.mark.parametrize("name", PROGRAMS)
def test_parity(pair: Pair, name: str) -> None:
    args, kwargs = PROGRAMS[name]
    pair.both(*args, **kwargs)


PY39 = "import sys; print(sys.version_info[:2] == (3, 9))"
#: What differs on Python 3.9 only, where each import of ``atexit`` has handlers of its own: a program
#: that imports it ends through the interpreter's whole finalisation, which knows of no Ctrl-C.
PYTHON_39_DIFFERS = {
    "keyboard-interrupt-with-atexit": "on 3.9 a KeyboardInterrupt after importing atexit exits 1, not by SIGINT",
}


@pytest.fixture(scope="module", params=["oldest", "newest"])
def other_pair(
    request: pytest.FixtureRequest, factory: IsoEnvFactory, probe: Path, real_pythons: dict[tuple[int, int], Path]
) -> Iterator[Pair]:
    """The probe env on the oldest and the newest other CPython (3.9+) of this machine."""
    versions = sorted(v for v in real_pythons if v >= (3, 9) and v != sys.version_info[:2])
    if not versions:
        pytest.skip("no other CPython 3.9+ on this machine")
    python = str(real_pythons[versions[0] if request.param == "oldest" else versions[-1]])
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PYTHONUNBUFFERED", raising=False)
        result = Pair(
            factory.get(str(probe), "clitool", python=python),
            factory.get(str(probe), "clitool", python=python, warm=True),
        )
    yield result
    warm.stop(result.warm.python)


@pytest.mark.slow
@pytest.mark.parametrize("name", PROGRAMS)
def test_parity_on_other_pythons(other_pair: Pair, name: str) -> None:
    """The warm interpreter's server runs on every Python an env can have: the same programs there."""
    args, kwargs = PROGRAMS[name]
    if name in PYTHON_39_DIFFERS and other_pair.warm.run("python", "-c", PY39).stdout == "True\n":
        pytest.xfail(PYTHON_39_DIFFERS[name])
    other_pair.both(*args, **kwargs)


def test_parity_of_a_script_file(pair: Pair, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "script.py").write_text(
        "import sys\nprint(sys.argv, __file__, sys.path[0], __name__, __cached__, type(__loader__).__name__)\n"
        "if __name__ == '__main__':\n    print('guarded')\n"
        "def f():\n    raise LookupError('from a file')\nf()\n"
    )
    (tmp_path / "link.py").symlink_to(tmp_path / "sub" / "script.py")
    pair.both("python", "sub/script.py", "arg", cwd=tmp_path)
    pair.both("python", "./sub/../sub/script.py", cwd=tmp_path)
    pair.both("python", "link.py", cwd=tmp_path)
    pair.both("python", str(tmp_path / "sub" / "script.py"))


def test_parity_of_cwd_and_a_file_left_open(pair: Pair, tmp_path: Path) -> None:
    code = "import os; print(os.getcwd()); f = open('left-open.txt', 'w'); f.write('written at exit')"
    for kind in ("plain", "warm"):
        (tmp_path / kind).mkdir()
    assert pair.plain.run("python", "-c", code, cwd=tmp_path / "plain").stdout == f"{tmp_path / 'plain'}\n"
    assert pair.warm.run("python", "-c", code, cwd=tmp_path / "warm").stdout == f"{tmp_path / 'warm'}\n"
    assert (tmp_path / "warm" / "left-open.txt").read_text() == "written at exit"
    assert (tmp_path / "plain" / "left-open.txt").read_text() == "written at exit"


def test_parity_of_the_child_pid(pair: Pair) -> None:
    with warmpopen.WarmPopen(
        [str(pair.warm.python), "-c", "import os; print(os.getpid())"],
        server=pair.server,
        env=pair.warm.environ,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.warm
        out, _ = proc.communicate()
    assert int(out) == proc.pid
    assert proc.pid not in (os.getpid(), pair.server.pid)


def test_timeout_kills_the_child(pair: Pair, tmp_path: Path) -> None:
    code = "import os, sys, time; print(os.getpid(), flush=True); time.sleep(60)"
    outcomes = []
    for env in (pair.plain, pair.warm):
        with pytest.raises(subprocess.TimeoutExpired) as info:
            env.run("python", "-c", code, timeout=1)
        output = info.value.stdout
        text = output.decode() if isinstance(output, bytes) else output or ""
        pid = int(text)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        outcomes.append(_alive(pid))
    assert outcomes == [False, False]


def _alive(pid: int) -> bool:
    """Whether *pid* is a process that still runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


# -- popen: a real Popen whose process is the warm interpreter's child --------------------------------


def test_popen_pipes_poll_and_signal(pair: Pair) -> None:
    argv = [
        str(pair.warm.python),
        "-c",
        "import sys\nfor line in sys.stdin:\n    print(line.upper(), end='', flush=True)",
    ]
    proc = warmpopen.WarmPopen(
        argv, server=pair.server, env=pair.warm.environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.warm
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write("ping\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "PING\n"
    assert proc.poll() is None
    proc.terminate()
    assert proc.wait(timeout=10) == -signal.SIGTERM
    proc.stdin.close()
    proc.stdout.close()


def test_popen_stderr_to_stdout_and_wait_timeout(pair: Pair) -> None:
    code = "import sys, time; print('out', flush=True); print('err', file=sys.stderr, flush=True); time.sleep(0.5)"
    proc = warmpopen.WarmPopen(
        [str(pair.warm.python), "-c", code],
        server=pair.server,
        env=pair.warm.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.01)
    out, err = proc.communicate(timeout=10)
    assert (proc.returncode, out, err) == (0, b"out\nerr\n", None)


# -- what runs plain, and why ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (["python", "-u", "-c", "print(1)"], {}),  # interpreter options shape the start
        (["python", "-c", "print(1)"], {"env": {"PYTHONHASHSEED": "7"}}),  # so do start-up variables
        (["python", "-c", "print(1)"], {"env": {"LC_ALL": "C"}}),
        (["python", "no-such-file.py"], {}),  # the interpreter's own error message
        (["python", "-c"], {}),
        (["sh", "-c", "echo plain"], {"external": True}),  # not the env's Python: a host program
    ],
)
def test_what_cannot_be_served_warm_runs_plain(pair: Pair, args: list[str], kwargs: dict[str, Any]) -> None:
    served = pair.server.served
    pair.warm.run("python", "-c", "pass")  # the warm interpreter is up
    warm_run = pair.warm.run(*args, check=False, **kwargs)
    plain = pair.plain.run(*args, check=False, **kwargs)
    assert pair.server.served == served + 1
    assert (warm_run.returncode, warm_run.stdout, warm_run.stderr) == (plain.returncode, plain.stdout, plain.stderr)


# -- preload -----------------------------------------------------------------------------------------


def test_preloaded_modules_are_imported_once_before_the_calls(
    factory: IsoEnvFactory, probe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "imports.log"
    monkeypatch.setenv("PROBE_IMPORTS", str(log))
    env = factory.get(str(probe), warm=True, preload=("warmprobe.noisy", "json"))
    try:
        code = "import sys, warmprobe.noisy; print(sorted({'warmprobe.noisy', 'json'} & set(sys.modules)))"
        for _ in range(3):
            assert env.run("python", "-c", code).stdout == "['json', 'warmprobe.noisy']\n"
        assert log.read_text() == "imported\n"
        # Imported once, before any call's environment: a call's own value does not reach it.
        env.run("python", "-c", "import warmprobe.noisy", env={"PROBE_IMPORTS": str(tmp_path / "other.log")})
        assert not (tmp_path / "other.log").exists()
    finally:
        warm.stop(env.python)


def test_a_preload_that_fails_is_a_clear_error(factory: IsoEnvFactory, probe: Path) -> None:
    env = factory.get(str(probe), warm=True, preload="no_such_preload_module")
    try:
        with pytest.raises(
            WarmError, match=r"(?s)preload module 'no_such_preload_module'.*ModuleNotFoundError.*Fix the module"
        ):
            env.run("python", "-c", "pass")
    finally:
        warm.stop(env.python)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warm": "yes"}, "warm='yes' is not True or False"),
        ({"preload": "json"}, "preload=('json',) needs a warm interpreter"),
        ({"warm": True, "preload": ["json", "not a module"]}, "preload entry 'not a module' is not a module name"),
        ({"warm": True, "preload": 3}, "preload=3 is not a module name"),
    ],
)
def test_bad_warm_arguments_are_refused(factory: IsoEnvFactory, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        factory.get(**kwargs)


# -- lifecycle ---------------------------------------------------------------------------------------


def test_a_warm_interpreter_that_dies_is_restarted(pair: Pair) -> None:
    pair.warm.run("python", "-c", "pass")
    server = pair.server
    first, starts = server.pid, server.starts
    assert first is not None
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.pid is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    pair.both("python", "-c", "print('after a restart')")
    assert server.starts == starts + 1
    assert server.pid not in (None, first)


def _children(pid: int) -> set[int]:
    """The running children of *pid* (Linux ``/proc``); the test is skipped where it cannot tell."""
    listing = Path(f"/proc/{pid}/task/{pid}/children")
    if not listing.exists():
        pytest.skip("needs /proc/PID/task/PID/children to see a process's children")
    return {child for child in map(int, listing.read_text().split()) if _alive(child)}


def _spare(server: WarmServer) -> int:
    """The pid of the spare child the idle warm interpreter has forked for the next call."""
    assert server.pid is not None
    deadline = time.monotonic() + 10
    while not (spares := _children(server.pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(spares) == 1, spares
    return spares.pop()


def _ended(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


def test_a_call_runs_in_the_spare_child_forked_before_it(pair: Pair) -> None:
    pair.warm.run("python", "-c", "pass")
    spare = _spare(pair.server)
    assert int(pair.warm.run("python", "-c", "import os; print(os.getpid())").stdout) == spare
    assert _spare(pair.server) != spare  # the next call's


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_spare_that_dies_is_replaced(pair: Pair, signum: int) -> None:
    pair.warm.run("python", "-c", "pass")
    spare = _spare(pair.server)
    os.kill(spare, signum)
    assert _ended(spare)
    pair.both("python", "-c", "print('after the spare died')")
    assert _spare(pair.server) != spare


def test_ctrl_c_in_the_terminal_leaves_a_waiting_spare_alone(pair: Pair) -> None:
    pair.warm.run("python", "-c", "pass")
    spare = _spare(pair.server)
    os.kill(spare, signal.SIGINT)  # what a Ctrl-C sends the whole foreground group, the spare too
    time.sleep(0.2)
    assert _alive(spare)
    assert int(pair.warm.run("python", "-c", "import os; print(os.getpid())").stdout) == spare


def test_a_stopped_warm_interpreter_leaves_no_spare(factory: IsoEnvFactory, probe: Path) -> None:
    env = factory.get(str(probe), warm=True, preload=("json",))
    env.run("python", "-c", "pass")
    server = warm.server_for(env.python, env.bin_dir, env.environ, env.spec.preload)
    assert server is not None
    spare = _spare(server)
    warm.stop(env.python)
    assert _ended(spare)


def test_a_private_env_restarts_its_warm_interpreter_after_install(factory: IsoEnvFactory, probe: Path) -> None:
    env = factory.get(str(probe), warm=True, private=True, preload=("warmprobe",))
    try:
        code = "import alpha; print(alpha.VERSION)"
        assert env.run("python", "-c", code, check=False).returncode == 1
        env.install("alpha==1.0")
        assert env.run("python", "-c", code).stdout == "1.0\n"
    finally:
        warm.stop(env.python)


def test_one_warm_interpreter_per_env_and_preload(pair: Pair) -> None:
    pair.warm.run("python", "-c", "pass")
    pair.warm.run("warmprobe", check=False)
    mine = [s for s in warm.servers() if s.python == pair.warm.python and s.preload == () and s.pid is not None]
    assert len(mine) == 1


def test_no_warm_interpreter_outlives_a_killed_pytest(pytester: pytest.Pytester, probe: Path) -> None:
    record = pytester.path / "server.pid"
    pytester.makepyfile(
        f"""
        import time
        import pytest
        from pytest_isoenv.run import warm

        @pytest.mark.isoenv({str(probe)!r}, warm=True)
        def test_hold(isoenv):
            isoenv.run("python", "-c", "pass")
            (server,) = [s for s in warm.servers() if s.pid is not None]
            with open({str(record)!r} + ".tmp", "w") as f:
                f.write(str(server.pid))
            import os
            os.replace({str(record)!r} + ".tmp", {str(record)!r})
            time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not record.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert record.exists(), "the inner test did not start its warm interpreter"
        server = int(record.read_text())
        assert _alive(server)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(server), f"the warm interpreter {server} outlived the pytest process that started it"


@pytest.mark.slow
def test_each_xdist_worker_has_its_own_warm_interpreter(pytester: pytest.Pytester, probe: Path) -> None:
    out = pytester.path / "seen"
    out.mkdir()
    pytester.makepyfile(
        f"""
        import os
        import pytest
        from pytest_isoenv.run import warm

        @pytest.mark.isoenv({str(probe)!r}, warm=True)
        @pytest.mark.parametrize("i", range(8))
        def test_call(isoenv, i):
            assert isoenv.run("python", "-c", "print('hi')").stdout == "hi\\n"
            (server,) = [s for s in warm.servers() if s.pid is not None]
            worker = os.environ["PYTEST_XDIST_WORKER"]
            with open(os.path.join({str(out)!r}, f"{{worker}}-{{i}}"), "w") as f:
                f.write(str(server.pid))
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    pids: dict[str, set[str]] = {}
    for path in out.iterdir():
        pids.setdefault(path.name.split("-")[0], set()).add(path.read_text())
    assert len(pids) == 2, pids
    assert all(len(seen) == 1 for seen in pids.values()), pids
    assert len(set.union(*pids.values())) == 2, pids


def test_the_marker_hands_out_a_warm_env(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_isoenv.run import warm

        @pytest.mark.isoenv("alpha", warm=True, preload=["alpha"])
        def test_warm(isoenv):
            assert isoenv.warm
            assert isoenv.run("python", "-c", "import sys; print('alpha' in sys.modules)").stdout == "True\\n"
            assert sum(s.served for s in warm.servers()) == 1

        @pytest.mark.isoenv("alpha")
        def test_plain(isoenv):
            assert not isoenv.warm
            assert isoenv.run("python", "-c", "import sys; print('alpha' in sys.modules)").stdout == "False\\n"
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_the_header_says_once_when_warm_cannot_work(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_isoenv.run import warm
        warm.unavailable = lambda: "warm interpreters need os.fork, which testos does not have"
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv("alpha", warm=True)
        def test_plain_after_all(isoenv):
            assert not isoenv.warm
            assert isoenv.run("python", "-c", "print(1)").stdout == "1\\n"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if "testos" in line]
    assert lines == [
        "isoenv: warm interpreters need os.fork, which testos does not have: "
        "warm=True envs run every call as a plain subprocess"
    ]


# -- popen() of a warm env -------------------------------------------------------------------------


def test_popen_of_a_warm_env_is_the_warm_interpreters_child(pair: Pair) -> None:
    served = pair.server.served
    code = "import os, sys; print(os.getpid(), os.getpgid(0) == os.getpid(), flush=True); sys.stdin.read()"
    proc = pair.warm.popen("python", "-c", code, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert isinstance(proc, warmpopen.WarmPopen)
    assert proc.warm
    assert proc.stdout is not None
    assert proc.stdin is not None
    pid, own_group = proc.stdout.readline().split()
    assert (int(pid), own_group) == (proc.pid, "True")  # its own process group, as popen() gives every process
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    proc.stdout.close()
    assert pair.server.served == served + 1


def test_warm_processes_a_test_leaves_running_are_stopped(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_isoenv.run import background

    monkeypatch.setattr(background, "GRACE_SECONDS", 1)  # pytester runs in this process
    pytester.makepyfile(
        """
        import subprocess
        from pytest_isoenv.run import warm

        from left_running import PARENT, STUBBORN

        def test_leaves_processes_running(isoenv):
            proc = isoenv.popen("python", "-c", PARENT, stdout=subprocess.PIPE, text=True)
            child = int(proc.stdout.readline())
            stubborn = isoenv.popen("python", "-c", STUBBORN, stdout=subprocess.PIPE, text=True)
            assert stubborn.stdout.readline() == "ready\\n"
            assert proc.warm and stubborn.warm
            with open("pids", "w") as f:
                f.write(f"{proc.pid} {child} {stubborn.pid}")
        """,
        left_running=LEFT_RUNNING,
    )
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.isoenv(warm=True))
        """
    )
    result = pytester.runpytest("-rA", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    parent, child, stubborn = map(int, (pytester.path / "pids").read_text().split())
    deadline = time.monotonic() + 10
    while any(map(_alive, (parent, child, stubborn))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, (parent, child, stubborn)))
    result.stdout.fnmatch_lines([f"pid {parent} still running at the end, terminated: */python -c *"])
    result.stdout.fnmatch_lines([f"pid {stubborn} still running at the end, killed after it ignored termination*"])


# -- what tests use of Popen, the same from popen() of a plain env, a warm one, and a call it runs plain ----

#: Waits until the file named by its first argument exists: a program that ends when the test says so.
UNTIL_GATE = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.01)\n"


@dataclass
class Way:
    """One way ``popen()`` starts a process: plain, warm, or plain behind a :class:`warmpopen.WarmPopen`."""

    env: IsolatedEnv
    served_warm: bool
    extra: dict[str, Any]

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[Any] | warmpopen.WarmPopen:
        """``env.popen(...)``, checked to have started the process this way."""
        proc = self.env.popen(*args, **kwargs, **self.extra)
        assert isinstance(proc, warmpopen.WarmPopen) == self.env.warm
        assert (isinstance(proc, warmpopen.WarmPopen) and proc.warm) == self.served_warm
        return proc


@pytest.fixture(params=["plain", "warm", "warm-env-plain-call"])
def way(request: pytest.FixtureRequest, pair: Pair) -> Way:
    if request.param == "plain":
        return Way(pair.plain, False, {})
    if request.param == "warm":
        return Way(pair.warm, True, {})
    # A fork cannot honour close_fds=False: the WarmPopen stands for a plain Popen.
    return Way(pair.warm, False, {"close_fds": False})


def test_communicate_after_a_timeout_goes_on_where_it_stopped(way: Way, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    code = "import sys\nprint(sys.stdin.read()[::-1], flush=True)\n" + UNTIL_GATE + "print('late')"
    proc = way.popen("python", "-c", code, str(gate), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    with pytest.raises(subprocess.TimeoutExpired) as info:
        proc.communicate("olleh", timeout=0.5)
    assert info.value.output in (None, b"hello\n")  # bytes, as Popen's, and only if the program got that far
    with pytest.raises(ValueError, match="Cannot send input after starting communication"):
        proc.communicate("more")
    assert proc.poll() is None
    gate.touch()
    assert proc.communicate(timeout=60) == ("hello\nlate\n", None)
    assert proc.returncode == 0


def test_communicate_feeds_and_reads_more_than_a_pipe_holds(way: Way) -> None:
    data = bytes(range(256)) * 4096
    code = "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer); print('done', file=sys.stderr)"
    proc = way.popen("python", "-c", code, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.communicate(data, timeout=60) == (data, b"done\n")
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, (b"caf\xc3\xa9 \xff\r\nend", b"err\n")),
        ({"errors": "replace"}, ("caf\u00e9 \ufffd\nend", "err\n")),
        ({"encoding": "latin-1"}, ("caf\u00c3\u00a9 \u00ff\nend", "err\n")),
        ({"text": True}, UnicodeDecodeError),
    ],
)
def test_communicate_gives_bytes_or_text_as_asked(way: Way, options: dict[str, Any], expected: Any) -> None:
    code = r"import sys; sys.stdout.buffer.write(b'caf\xc3\xa9 \xff\r\nend'); sys.stderr.write('err\n')"
    proc = way.popen("python", "-c", code, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)
    if isinstance(expected, tuple):
        assert proc.communicate(timeout=60) == expected
    else:
        with pytest.raises(expected):
            proc.communicate(timeout=60)
    assert proc.wait(timeout=60) == 0


def test_the_with_block_closes_the_pipes_and_waits(way: Way) -> None:
    code = "import sys; print(sys.stdin.readline().upper(), end='', flush=True); sys.exit(4)"
    pipes = dict.fromkeys(("stdin", "stdout", "stderr"), subprocess.PIPE)
    with way.popen("python", "-c", code, **pipes) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdin.write(b"ping\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"PING\n"
    assert proc.returncode == 4
    assert proc.stdin.closed
    assert proc.stdout.closed
    assert proc.stderr.closed


def test_communicate_with_only_stdin_piped(way: Way) -> None:
    proc = way.popen("python", "-c", "import sys; sys.exit(len(sys.stdin.read()))", stdin=subprocess.PIPE)
    assert proc.communicate(b"four") == (None, None)
    assert proc.returncode == 4


def test_streams_are_none_unless_piped(way: Way) -> None:
    proc = way.popen("python", "-c", "pass", stdout=subprocess.DEVNULL)
    assert (proc.stdin, proc.stdout, proc.stderr) == (None, None, None)
    assert proc.communicate(timeout=60) == (None, None)
    assert proc.returncode == 0


def test_poll_and_wait_before_and_after_the_end(way: Way, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    proc = way.popen("python", "-c", UNTIL_GATE + "raise SystemExit(3)", str(gate))
    assert (proc.poll(), proc.returncode) == (None, None)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.2)
    gate.touch()
    assert proc.wait(timeout=60) == 3
    assert (proc.poll(), proc.wait(), proc.wait(timeout=0), proc.returncode) == (3, 3, 3, 3)


@pytest.mark.parametrize(
    ("how", "signum"),
    [("terminate", signal.SIGTERM), ("kill", signal.SIGKILL), ("send_signal", signal.SIGUSR1)],
)
def test_signals_end_the_process_and_are_ignored_after_its_end(way: Way, how: str, signum: int) -> None:
    code = "import time; print('ready', flush=True); time.sleep(120)"
    proc = way.popen("python", "-c", code, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    assert proc.poll() is None
    if how == "send_signal":
        proc.send_signal(signum)
    else:
        getattr(proc, how)()
    assert proc.wait(timeout=60) == -signum
    proc.send_signal(signal.SIGKILL)
    proc.terminate()
    proc.kill()
    assert proc.returncode == -signum
    proc.stdout.close()


def test_a_bad_encoding_starts_nothing(pair: Pair) -> None:
    served = pair.server.served
    for env in (pair.plain, pair.warm):
        with pytest.raises(LookupError):
            env.popen("python", "-c", "pass", stdout=subprocess.PIPE, encoding="no-such-encoding")
    assert pair.server.served == served


@pytest.mark.parametrize("target", ["/dev/full", "a pipe closed at the other end"])
def test_parity_of_output_that_cannot_be_written_at_exit(
    pair: Pair, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The buffered output fails to flush at exit: exit code 120, and the error reported on stderr."""
    if target == "/dev/full" and not Path(target).exists():
        pytest.skip("no /dev/full on this system")
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # print() buffers, and so fails only at exit
    outcomes = []
    for env in (pair.plain, pair.warm):
        served = pair.server.served
        if target == "/dev/full":
            fd = os.open(target, os.O_WRONLY)
        else:
            read, fd = os.pipe()
            os.close(read)
        try:
            proc = env.popen("python", "-c", "print('x' * 100)", stdout=fd, stderr=subprocess.PIPE)
            _, err = proc.communicate(timeout=60)
        finally:
            os.close(fd)
        assert (pair.server.served == served + 1) == env.warm
        outcomes.append((proc.returncode, err))
    assert outcomes[0][0] == 120
    assert outcomes[1] == outcomes[0]


def test_parity_of_a_module_that_raises(pair: Pair) -> None:
    """As python -m, but for the frame of runpy's private function that the interpreter calls, which no warm call can show."""
    plain = pair.plain.run("python", "-m", "warmprobe.raises", check=False)
    served = pair.server.served
    warm_run = pair.warm.run("python", "-m", "warmprobe.raises", check=False)
    assert pair.server.served == served + 1
    expected = [line for line in plain.stderr.splitlines(keepends=True) if "in _run_module_as_main" not in line]
    assert (warm_run.returncode, warm_run.stdout, warm_run.stderr) == (1, "", "".join(expected))
    assert len(expected) == len(plain.stderr.splitlines()) - 1
