"""Helpers the test modules share: the types of the conftest fixtures, tiny projects and test modules, wheels of
the host's own packages, waits with a time limit, a lock holder.

Importable as ``helpers`` from every test module: the ``pythonpath`` setting in
pyproject.toml puts ``tests/`` on ``sys.path`` (and mypy's ``mypy_path`` does the same).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import isoenv_testbackend as backend
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pytest_isoenv.run.coverage import repack_installed

if TYPE_CHECKING:
    from pytest_isoenv.factory import IsoEnvFactory
    from pytest_isoenv.run.env import IsolatedEnv
    from pytest_isoenv.session.envs import SessionEnvs
    from pytest_isoenv.text import LineSink

#: The installer the suite builds envs with unless a test pins one: CI runs the suite once per installer.
INSTALLER = os.environ.get("ISOENV_TEST_INSTALLER", "auto")

RESOURCES = Path(__file__).parent / "resources"

#: How long a test waits for another process to reach a point (start, take a lock, end) before it fails with
#: what that process printed. Generous: CI runs the suite on a loaded 2-core machine. A test's own limit is
#: pytest-timeout's (``timeout`` in pyproject.toml), which is longer, so these waits fail first and say more.
WAIT = 120.0

LOCK_HOLDER = Path(__file__).with_name("lock_holder.py")


def write_pyproject(root: Path, project: str) -> Path:
    """Make *root* a project built by the in-tree test backend; *project* is the TOML after ``[build-system]`` (dedented).

    The backend is copied into *root* (``backend-path``), so the project builds offline with nothing installed.
    """
    root.mkdir(parents=True, exist_ok=True)
    build_system = '[build-system]\nrequires = []\nbuild-backend = "isoenv_testbackend"\nbackend-path = ["."]\n\n'
    (root / "pyproject.toml").write_text(build_system + textwrap.dedent(project))
    shutil.copy(RESOURCES / "isoenv_testbackend.py", root)
    return root


def write_project(
    parent: Path,
    name: str,
    version: str = "0.1",
    *,
    dependencies: Iterable[str] = (),
    scripts: dict[str, str] | None = None,
    body: str = "",
) -> Path:
    """Write a tiny project built by the in-tree test backend: ``<name>/<package>/__init__.py``."""
    root = parent / name
    package = root / backend.normalize(name)
    package.mkdir(parents=True)
    deps = ", ".join(f'"{d}"' for d in dependencies)
    toml = f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{deps}]\n'
    if scripts:
        toml += "\n[project.scripts]\n" + "".join(f'{k} = "{v}"\n' for k, v in scripts.items())
    write_pyproject(root, toml)
    (package / "__init__.py").write_text(body or f"NAME = {name!r}\n")
    return root


def write_versions(folder: Path, name: str, *versions: str, requires: Iterable[str] = ()) -> Path:
    """Write a wheel of *name* at each of *versions* into *folder* (made if missing): ``import name`` then gives a
    module whose ``VERSION`` says which one is installed. Returns *folder*, a wheelhouse for ``find_links``."""
    folder.mkdir(parents=True, exist_ok=True)
    for version in versions:
        files = {f"{name}/__init__.py": f"VERSION = {version!r}\n"}
        backend.write_wheel(folder, name, version, requires=list(requires), files=files)
    return folder


def runtime_closure(name: str) -> list[metadata.Distribution]:
    """The installed distributions *name* runs with: its requirements and theirs, recursively, as installed here.

    Markers are evaluated for this interpreter, and a requirement's extras
    (``name[extra]``) bring the requirements they add.
    """
    found: dict[str, tuple[metadata.Distribution, set[str]]] = {}
    pending: list[tuple[str, set[str]]] = [(name, set())]
    while pending:
        wanted, extras = pending.pop()
        for line in metadata.distribution(wanted).requires or ():
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is not None and not any(marker.evaluate({"extra": e}) for e in ("", *sorted(extras))):
                continue
            key = canonicalize_name(requirement.name)
            known = found.get(key)
            if known is not None and requirement.extras <= known[1]:
                continue
            try:
                dist = metadata.distribution(requirement.name)
            except metadata.PackageNotFoundError:
                pytest.fail(f"{name} needs {line!r}, which is not installed here: reinstall {name}")
            found[key] = (dist, (known[1] if known else set()) | requirement.extras)
            pending.append((requirement.name, found[key][1]))
    return [dist for dist, _ in found.values()]


def write_host_wheels(folder: Path, name: str) -> list[Path]:
    """Wheels of *name*'s run-time dependencies (:func:`runtime_closure`), repacked from their installed files.

    For an env on this interpreter that installs *name* without an index.
    """
    wheels = []
    for dist in runtime_closure(name):
        wheel = repack_installed(dist, folder)
        if wheel is None:
            pytest.fail(
                f"could not repack {dist.name} {dist.version} from its installed files (its RECORD or WHEEL file "
                "is missing, or files it lists are): reinstall it"
            )
        wheels.append(wheel)
    return wheels


def marked_tests(**markers: str) -> str:
    """The source of a test module of tests that only ask for an env: one per keyword, named by it.

    Each value is the source of the test's marker arguments: ``marked_tests(test_alpha='"alpha==1.0"')``
    gives ``@pytest.mark.isoenv("alpha==1.0")`` on ``def test_alpha(isoenv): pass``.
    """
    tests = (
        f"@pytest.mark.isoenv({arguments})\ndef {name}(isoenv):\n    pass\n" for name, arguments in markers.items()
    )
    return "import pytest\n\n\n" + "\n\n".join(tests)


#: A module (``pytester.makepyfile(left_running=LEFT_RUNNING)``) of two programs for ``python -c`` that a test
#: leaves running, for the teardown that stops them: ``PARENT`` starts a child, prints the child's pid and sleeps;
#: ``STUBBORN`` ignores SIGTERM, prints ``ready`` and sleeps.
LEFT_RUNNING = textwrap.dedent(
    """
    SLEEP = "import time; time.sleep(120)"
    PARENT = (
        "import subprocess, sys, time; "
        f"child = subprocess.Popen([sys.executable, '-c', {SLEEP!r}]); "
        "print(child.pid, flush=True); time.sleep(120)"
    )
    STUBBORN = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(120)"
    )
    """
)


class MakeProject(Protocol):
    """The ``make_project`` fixture: writes a tiny project built by the in-tree test backend."""

    def __call__(
        self,
        name: str,
        version: str = "0.1",
        *,
        parent: Path | None = None,
        dependencies: Iterable[str] = (),
        scripts: dict[str, str] | None = None,
        body: str = "",
    ) -> Path: ...


class MakeEnvs(Protocol):
    """The ``make_envs`` fixture: a new session's :class:`SessionEnvs`, offline on the test wheelhouse."""

    def __call__(
        self, cache_dir: Path | None = None, *, warn: LineSink | None = None, **settings: Any
    ) -> SessionEnvs: ...


class MakeFactory(Protocol):
    """The ``make_factory`` fixture: a new session's :class:`IsoEnvFactory`, offline on the test wheelhouse."""

    def __call__(
        self, cache_dir: Path | None = None, *, warn: LineSink | None = None, **settings: Any
    ) -> IsoEnvFactory: ...


class EnvsFor(Protocol):
    """The ``envs_for`` fixture: a new session's envs on a cache, and the list its warnings go to."""

    def __call__(self, cache: Path, **settings: Any) -> tuple[SessionEnvs, list[str]]: ...


def kill(proc: subprocess.Popen[str]) -> None:
    """Kill *proc*, and its whole process group if it leads one (``start_new_session=True``)."""
    if proc.poll() is not None:
        return
    if sys.platform != "win32" and os.getpgid(proc.pid) == proc.pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()


def finish(
    proc: subprocess.Popen[str], *, timeout: float = WAIT, what: str = "the process", input: str | None = None
) -> str:
    """Wait for *proc* to end (after writing *input* to it) and return its output.

    After *timeout* seconds it is killed and the test fails with what it printed.
    """
    try:
        return proc.communicate(input, timeout=timeout)[0] or ""
    except subprocess.TimeoutExpired:
        kill(proc)
        output = proc.communicate(timeout=WAIT)[0] or ""
        pytest.fail(f"{what} (pid {proc.pid}) did not end within {timeout:.0f}s; its output:\n{output}")


def wait_until(
    condition: Callable[[], bool],
    proc: subprocess.Popen[str] | None = None,
    *,
    what: str,
    timeout: float = WAIT,
) -> None:
    """Poll *condition* until it holds (or *proc*, if given, has ended).

    After *timeout* seconds the test fails, naming *what* it waited for; a
    *proc* still running is killed and its output so far is in the failure.
    """
    deadline = time.monotonic() + timeout
    while not condition() and (proc is None or proc.poll() is None):
        if time.monotonic() > deadline:
            if proc is None:
                pytest.fail(f"waited {timeout:.0f}s for {what}")
            kill(proc)
            output = proc.communicate(timeout=WAIT)[0] or ""
            pytest.fail(f"waited {timeout:.0f}s for {what}; pid {proc.pid} never got there. Its output:\n{output}")
        time.sleep(0.005)


def read_line(proc: subprocess.Popen[str], *, timeout: float = WAIT, what: str = "the process") -> str:
    """The next line *proc* prints; after *timeout* seconds (or at its end) kill it and fail with its output."""
    assert proc.stdout is not None
    stream = proc.stdout
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if lines and lines[0]:
        return lines[0]
    why = "ended" if lines else f"printed nothing within {timeout:.0f}s"
    kill(proc)
    rest = finish(proc, what=what)
    pytest.fail(f"{what} (pid {proc.pid}) {why}; exit code {proc.returncode}, output:\n{rest}")


class LockHolder:
    """Another process that holds a build lock of an isoenv cache (see :func:`hold_lock`)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.released = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        """Let go of the lock (the holder ends); fails the test if the holder does not end or ends badly."""
        if self.released:
            return
        self.released = True
        output = finish(self.proc, what="the lock holder")  # closing its stdin is the signal to let go
        assert self.proc.returncode == 0, f"the lock holder failed (exit code {self.proc.returncode}):\n{output}"


@contextlib.contextmanager
def hold_lock(cache_root: Path, key: str, *, what: str = "env (alpha)", owner: bool = True) -> Iterator[LockHolder]:
    """Another process holds the build lock of *key* in the cache at *cache_root* for the block.

    It takes the lock the way a build does (``Cache.lock``, which names its
    holder); with ``owner=False`` it takes the lock file alone, as a holder
    that has just finished looks to a waiter. Released at the end of the block
    (or earlier with :meth:`LockHolder.release`), killed if the test fails first.
    """
    command = [sys.executable, str(LOCK_HOLDER), str(cache_root), key, what, str(WAIT * 2)]
    if not owner:
        command.append("--no-owner")
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = read_line(proc, what="the lock holder")
        assert line == "locked\n", f"the lock holder said {line!r}, not that it holds the lock"
        holder = LockHolder(proc)
        yield holder
        holder.release()
    finally:
        kill(proc)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        proc.wait()


def aged(path: Path, text: str) -> Path:
    """Write *path* and date it back, so the stat cache trusts it (fresh files may still change in their tick)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


def imported(env: IsolatedEnv, module: str, name: str = "VALUE") -> str:
    """``module.name`` as the env's interpreter sees it, or ``missing`` when the module is not installed."""
    code = f"try:\n import {module}\nexcept ImportError:\n print('missing')\nelse:\n print({module}.{name})"
    return env.run("python", "-c", code).stdout.strip()


def new_session(
    cache: Path,
    *find_links: Path,
    rootdir: Path | None = None,
    installer: str = INSTALLER,
    offline: bool = True,
    notify: LineSink | None = None,
) -> IsoEnvFactory:
    """A new session's factory on *cache*, installing offline from *find_links* only (with the index: not *offline*).

    *notify* is told what the session says while it goes (what it waits for, why it rebuilds). A test
    that asks for uv where it is not installed is skipped.
    """
    from pytest_isoenv.factory import IsoEnvFactory
    from pytest_isoenv.installers.uv import UvInstaller
    from pytest_isoenv.session.envs import SessionEnvs
    from pytest_isoenv.session.settings import Settings
    from pytest_isoenv.spec.index import IndexOptions

    if installer == "uv" and UvInstaller.unavailable():
        pytest.skip("uv is not installed")
    settings = Settings(
        cache_dir=cache,
        rootdir=rootdir or cache.parent,
        run_id=uuid.uuid4().hex,
        index=IndexOptions(find_links=tuple(map(str, find_links)), offline=offline),
        installer=installer,
    )
    return IsoEnvFactory(SessionEnvs(settings, notify=notify))


#: The comment that says how a documentation page's code block is tested: ``<!-- docs-test: KIND [ARGUMENT] -->``
#: on the line before the block's fence (invisible on GitHub and in the built docs).
DOCS_TEST = re.compile(r"<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*(?P<argument>.*?)\s*-->")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[^\s`]*)")


@dataclass(frozen=True)
class DocBlock:
    """A fenced code block of a Markdown page, with the ``docs-test`` comment before it (if any)."""

    page: Path
    line: int
    lang: str
    text: str
    kind: str | None
    argument: str

    def __str__(self) -> str:
        return f"{self.page.name}:{self.line} ({self.lang or 'no language'})"


def doc_blocks(page: Path) -> list[DocBlock]:
    """The fenced code blocks of the Markdown file *page*, in order (MyST directives such as ``{toctree}`` left out)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[DocBlock] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, lang, start = opening["fence"], opening["lang"], index
        index += 1
        body: list[str] = []
        while index < len(lines) and not lines[index].startswith(fence):
            body.append(lines[index])
            index += 1
        index += 1
        if lang.startswith("{"):
            continue
        comment = DOCS_TEST.search(lines[start - 1]) if start else None
        blocks.append(
            DocBlock(
                page=page,
                line=start + 1,
                lang=lang,
                text="\n".join(body) + "\n",
                kind=comment["kind"] if comment else None,
                argument=comment["argument"] if comment else "",
            )
        )
    return blocks


def cached_download(
    config: pytest.Config, tmp_path_factory: pytest.TempPathFactory, requirements: Sequence[str]
) -> Path:
    """A folder of wheels of *requirements* and all they need, for this interpreter, from the configured package index.

    Kept in pytest's cache under a name made of *requirements*, so the index is asked once; without the cache,
    once a session. Tests then install from the folder offline.
    """
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest"]
    name = hashlib.sha256(repr([sys.version_info[:2], *requirements]).encode()).hexdigest()[:16]
    cache: pytest.Cache | None = getattr(config, "cache", None)
    if cache is None:
        folder = tmp_path_factory.mktemp("downloaded")
        partial = folder
    else:
        folder = cache.mkdir("isoenv-downloads") / name
        if folder.is_dir():
            return folder
        partial = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f"{name}-"))
    proc = subprocess.run([*command, str(partial), *requirements], capture_output=True, text=True, check=False)
    if proc.returncode:
        pytest.fail(f"could not download {list(requirements)} from the package index:\n{proc.stdout}{proc.stderr}")
    if partial != folder:
        try:
            partial.rename(folder)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            if not folder.is_dir():  # not a lost race: another session renamed its own first
                raise
    return folder


def write_pylock(folder: Path, *wheels: Path, wrong_hash: str | None = None, name: str = "pylock.toml") -> Path:
    """A PEP 751 lock file in *folder* pinning *wheels* (paths relative to it) with their real sha256.

    The wheel whose package is *wrong_hash* gets a hash that is not its file's.
    """
    import hashlib

    from packaging.utils import parse_wheel_filename

    lines = ['lock-version = "1.0"', 'created-by = "tests"', ""]
    for wheel in wheels:
        package, version = parse_wheel_filename(wheel.name)[:2]
        digest = "0" * 64 if package == wrong_hash else hashlib.sha256(wheel.read_bytes()).hexdigest()
        path = Path(os.path.relpath(wheel, folder)).as_posix()
        lines += [
            "[[packages]]",
            f'name = "{package}"',
            f'version = "{version}"',
            f'wheels = [{{ path = "{path}", hashes = {{ sha256 = "{digest}" }} }}]',
            "",
        ]
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / name
    lock.write_text("\n".join(lines))
    return lock


def uv_lock(project: Path, wheelhouse: Path) -> Path:
    """Lock *project* with a real ``uv lock``, offline, against the local *wheelhouse* only: its ``uv.lock``."""
    from pytest_isoenv.installers.uv import find_uv

    uv = find_uv()
    if uv is None:
        pytest.skip("uv is not installed")
    command = [str(uv), "lock", "--offline", "--no-index", "--find-links", str(wheelhouse)]
    proc = subprocess.run(command, cwd=project, capture_output=True, text=True, env={**os.environ, "UV_NO_CONFIG": "1"})
    assert proc.returncode == 0, proc.stderr
    return project / "uv.lock"


def lock_uv_missing() -> str | None:
    """Why this machine's uv cannot install lock files (missing, or older than the first that can), or ``None``."""
    from pytest_isoenv.installers.uv import find_uv
    from pytest_isoenv.spec.lockfiles import UV_FOR_LOCKS

    uv = find_uv()
    if uv is None:
        return "uv is not installed"
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    found = tuple(int(part) for part in version.split()[1].split(".")[:3])
    return f"{version} installs no lock files" if found < UV_FOR_LOCKS else None


def needs_lock_uv() -> None:
    """Skip the test when this machine's uv cannot install lock files (the lowest CI run's is too old)."""
    reason = lock_uv_missing()
    if reason is not None:
        pytest.skip(reason)


def reports_of(result: pytest.RunResult) -> str:
    """A pytester run's output up to pytest's short test summary, which repeats each error whole where ``CI`` is set."""
    return result.stdout.str().split(" short test summary info ")[0]


def setuptools_project(parent: Path, name: str, *, src: bool = False, value: int = 1) -> Path:
    """A project built by real setuptools, which writes ``build/`` and ``*.egg-info`` where it builds."""
    root = parent / name
    package = root / "src" / name if src else root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"VALUE = {value}\n")
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=77"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "1.0"
            """
        )
    )
    return root


def listing(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every file and folder under *root*, with its mode, size, modification time and a file's content digest."""
    result = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        result[path.relative_to(root).as_posix()] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return result
