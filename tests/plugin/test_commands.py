"""Cache management: listing, pruning and clearing, leases that protect envs in use, the plan, and build output."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from helpers import MakeEnvs, finish, hold_lock, marked_tests, read_line, reports_of

from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.plugin.commands import list_lines
from pytest_isoenv.run.env import IsolatedEnv
from pytest_isoenv.store.cache import Cache
from pytest_isoenv.store.clearing import clear
from pytest_isoenv.store.fs import tree_size
from pytest_isoenv.store.leases import Lease, Pruned, list_entries, live_leases, prune
from pytest_isoenv.store.pruned import PRUNED_NAME
from pytest_isoenv.store.record import RECORD_NAME

DAY = 86400.0


def set_last_used(env: IsolatedEnv, days_ago: float) -> None:
    stamp = time.time() - days_ago * DAY
    os.utime(env.path / RECORD_NAME, (stamp, stamp))


def removed(pruned: Pruned) -> set[str]:
    return {entry.name for entry, _ in pruned.removed}


def kept(pruned: Pruned) -> dict[str, str]:
    return {entry.name: why for entry, why in pruned.kept}


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def built(make_envs: MakeEnvs, cache_dir: Path, tmp_path: Path) -> dict[str, IsolatedEnv]:
    """Three envs in a private cache, built by a "session" that has ended (its lease is released).

    Each has only a constraints file of its own: a distinct key, and no install to wait for.
    """
    session = make_envs(cache_dir=cache_dir)
    envs = {}
    for number, name in enumerate(("one", "two", "three"), start=1):
        (tmp_path / f"{name}.txt").write_text(f"alpha<{number}\n")
        envs[name] = IsoEnvFactory(session).get(constraints=f"{name}.txt")
    session.close()
    return envs


# A separate process that uses an env, then waits for a line on stdin (or exits at once without
# releasing anything, like a crash, when told "crash").
USER_SCRIPT = textwrap.dedent(
    """
    import os, sys, uuid
    from pathlib import Path
    from pytest_isoenv.factory import IsoEnvFactory
    from pytest_isoenv.session.envs import SessionEnvs
    from pytest_isoenv.session.settings import Settings

    settings = Settings(cache_dir=Path(sys.argv[1]), rootdir=Path.cwd(), run_id=uuid.uuid4().hex)
    factory = IsoEnvFactory(SessionEnvs(settings))
    env = factory.get()
    print(env.key, flush=True)
    if sys.argv[2] == "crash":
        os._exit(0)
    sys.stdin.readline()
    """
)


@pytest.fixture
def other_process(cache_dir: Path) -> Iterator[Callable[[str], tuple[subprocess.Popen[str], str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(mode: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", USER_SCRIPT, str(cache_dir), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc, read_line(proc, what="the other process").strip()

    yield start
    for proc in started:
        if proc.poll() is None:
            finish(proc, what="the other process", input="done\n")
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.slow
def test_entries_describe_each_env(built: dict[str, IsolatedEnv], cache_dir: Path, installer_name: str) -> None:
    set_last_used(built["two"], days_ago=3)
    entries = list_entries(Cache(cache_dir))
    assert entries[0].name == built["two"].key[:20]  # least recently used first
    by_name = {entry.name: entry for entry in entries}
    assert set(by_name) == {env.key[:20] for env in built.values()}
    one = by_name[built["one"].key[:20]]
    assert one.record is not None
    assert one.problem is None
    assert one.description == "-c one.txt"
    assert one.installer == installer_name
    assert one.python == f"CPython {'.'.join(map(str, sys.version_info[:3]))}"
    assert one.size is not None
    # The env's own files: its pip is links to the cache's image of it (counted in the listing's head).
    assert 10_000 < one.size < 1_000_000
    assert one.created is not None
    assert one.created <= one.last_used


@pytest.mark.slow
def test_prune_removes_envs_unused_for_max_age_with_their_logs(built: dict[str, IsolatedEnv], cache_dir: Path) -> None:
    cache = Cache(cache_dir)
    set_last_used(built["one"], days_ago=31)
    set_last_used(built["three"], days_ago=29)
    pruned = prune(cache, max_age=30)
    assert removed(pruned) == {built["one"].key[:20]}
    assert "last used 31 days ago, isoenv_max_age is 30 day(s)" in pruned.removed[0][1]
    assert pruned.freed > 0
    assert not built["one"].path.exists()
    assert not cache.log_path(built["one"].key).exists()
    assert list((cache_dir / "trash").iterdir()) == []
    for name in ("two", "three"):
        assert cache.read_record(built[name].key)[0] is not None


@pytest.mark.slow
def test_prune_over_max_size_removes_the_least_recently_used_first(
    built: dict[str, IsolatedEnv], cache_dir: Path
) -> None:
    cache = Cache(cache_dir)
    for days_ago, name in enumerate(["two", "one", "three"]):
        set_last_used(built[name], days_ago=days_ago)
    sizes = {entry.name: entry.size or 0 for entry in list_entries(cache)}
    # Room for the two most recently used envs, not for the third.
    budget = sizes[built["two"].key[:20]] + sizes[built["one"].key[:20]] + 1000
    pruned = prune(cache, max_size=budget)
    assert removed(pruned) == {built["three"].key[:20]}
    assert "over isoenv_max_size" in pruned.removed[0][1]
    assert sum(entry.size or 0 for entry in list_entries(cache)) <= budget


@pytest.mark.slow
def test_prune_removes_unusable_entries_whatever_their_age(built: dict[str, IsolatedEnv], cache_dir: Path) -> None:
    interrupted = cache_dir / "envs" / ("0" * 20)
    (interrupted / "lib").mkdir(parents=True)
    record = built["one"].path / RECORD_NAME
    record.write_text(json.dumps({**json.loads(record.read_text()), "format": 999}))
    pruned = prune(Cache(cache_dir))
    assert removed(pruned) == {interrupted.name, built["one"].key[:20]}
    reasons = {entry.name: why for entry, why in pruned.removed}
    assert reasons[interrupted.name] == "unusable: it has no completion record (an interrupted build)"
    assert reasons[built["one"].key[:20]].startswith("unusable: its completion record is of another format")


@pytest.mark.slow
def test_clear_spares_envs_another_process_uses_until_it_ends(
    built: dict[str, IsolatedEnv], cache_dir: Path, other_process: Callable[[str], tuple[subprocess.Popen[str], str]]
) -> None:
    cache = Cache(cache_dir)
    proc, key = other_process("wait")
    pruned = clear(cache)
    assert kept(pruned) == {key[:20]: f"in use by pid {proc.pid} on {os.uname().nodename}"}
    assert cache.read_record(key)[0] is not None
    assert removed(pruned) == {env.key[:20] for env in built.values()} - {key[:20]}

    # The installers' folders may be read by the other process's next build: they stay, saying why.
    assert pruned.folders == []
    assert {name for name, _, _ in pruned.kept_folders} >= {"py-info", "hashes"}
    assert {why for _, _, why in pruned.kept_folders} == {f"in use by pid {proc.pid} on {os.uname().nodename}"}

    finish(proc, what="the other process", input="done\n")
    assert live_leases(cache) == []
    again = clear(cache)
    assert removed(again) == {key[:20]}
    assert list_entries(cache) == []
    assert {name for name, _, _ in again.folders} >= {"py-info", "hashes"}
    assert again.kept_folders == []
    assert not (cache_dir / "py-info").exists()


def test_a_crashed_process_leaves_a_lease_that_protects_nothing(
    cache_dir: Path, other_process: Callable[[str], tuple[subprocess.Popen[str], str]]
) -> None:
    proc, key = other_process("crash")
    finish(proc, what="the crashing process")
    cache = Cache(cache_dir)
    assert len(list(cache.folder("sessions").glob("*.json"))) == 1  # it never released its lease
    assert live_leases(cache) == []
    assert list(cache.folder("sessions").iterdir()) == []
    assert removed(clear(cache)) == {key[:20]}


@pytest.mark.slow
def test_clear_spares_an_env_being_built(built: dict[str, IsolatedEnv], cache_dir: Path) -> None:
    cache = Cache(cache_dir)
    key = built["one"].key
    with cache.lock(key, what="a build"):
        assert cache.building(key) == f"pid {os.getpid()} on {os.uname().nodename} for 0s"
        pruned = clear(cache)
    assert kept(pruned) == {key[:20]: f"being built by pid {os.getpid()} on {os.uname().nodename} for 0s"}
    assert pruned.folders == []
    assert [why.rsplit(" for ", 1)[0] for _, _, why in pruned.kept_folders] == [
        f"an env is being built by pid {os.getpid()} on {os.uname().nodename}"
    ] * len(pruned.kept_folders)
    assert pruned.kept_folders
    assert cache.building(key) is None
    assert cache.read_record(key)[0] is not None


@pytest.mark.slow
def test_keep_spares_the_keys_a_session_used(built: dict[str, IsolatedEnv], cache_dir: Path) -> None:
    pruned = prune(Cache(cache_dir), max_age=0, keep={built["three"].key})
    assert kept(pruned) == {built["three"].key[:20]: "used by this session"}
    assert removed(pruned) == {built["one"].key[:20], built["two"].key[:20]}


def test_a_lease_is_registered_before_it_waits_for_a_prune_in_progress(cache_dir: Path) -> None:
    cache = Cache(cache_dir)
    cache.ensure()
    lease = Lease(cache, run_id="run")
    waiting = threading.Event()
    messages: list[str] = []

    def notify(message: str) -> None:
        messages.append(message)
        waiting.set()

    key = "ab" * 32
    with FileLock(cache_dir / "locks" / "maintenance.lock"):
        thread = threading.Thread(target=lease.add, args=(key,), kwargs={"notify": notify})
        thread.start()
        assert waiting.wait(60)
        # A prune holding the lock now would see the key; the user has not looked at the env yet.
        assert [info.keys for info in live_leases(cache)] == [{key: "*"}]
        assert thread.is_alive()
    thread.join(60)
    assert not thread.is_alive()
    assert messages == ["waiting for another process to finish pruning the isoenv cache"]
    lease.close()
    assert live_leases(cache) == []


def run_isolated(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


@pytest.mark.slow
def test_list_shows_a_table_and_runs_no_test(
    pytester: pytest.Pytester,
    built: dict[str, IsolatedEnv],
    cache_dir: Path,
    installer_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile("def test_fails():\n    assert False\n")
    set_last_used(built["one"], days_ago=2)
    result = run_isolated(pytester, "--isoenv-list", f"--isoenv-cache-dir={cache_dir}", "-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            f"isoenv cache {cache_dir}: 3 env(s), * kB, and * MB of pip that they share in seeds/",
            "KEY * PYTHON * INSTALLER * RESOLUTION * SIZE * CREATED * LAST USED * STATE * PACKAGES",
            f"{built['one'].key[:20]}  CPython 3.* {installer_name} * highest * [kM]B * 20* 2 days ago * ready * -c one.txt",
        ]
    )
    # Without -v: the columns that matter, each row cut to the width pytest gives a pipe (80).
    narrow = run_isolated(pytester, "--isoenv-list", f"--isoenv-cache-dir={cache_dir}")
    narrow.stdout.fnmatch_lines(
        [
            "KEY * PYTHON * INSTALLER * SIZE * LAST USED * STATE *",
            f"{built['one'].key[:20]}  CPython 3.* {installer_name} * [kM]B * 2 days ago * ready *",
        ]
    )
    assert all(len(line) <= 80 for line in narrow.stdout.lines[1:]), narrow.stdout.str()
    # The terminal's own width, as pytest reads it.
    monkeypatch.setenv("COLUMNS", "60")
    narrower = run_isolated(pytester, "--isoenv-list", f"--isoenv-cache-dir={cache_dir}")
    assert all(len(line) <= 60 for line in narrower.stdout.lines[1:]), narrower.stdout.str()
    narrower.stdout.fnmatch_lines(["(lines cut to the terminal's width: -v shows them whole)"])
    result.stdout.no_fnmatch_line("*test_fails*")


def test_list_of_an_empty_cache(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = run_isolated(pytester, "--isoenv-list", f"--isoenv-cache-dir={tmp_path / 'none'}")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"isoenv cache {tmp_path / 'none'}: 0 env(s), 0 B"])


@pytest.mark.slow
def test_prune_and_clear_commands(
    pytester: pytest.Pytester, built: dict[str, IsolatedEnv], cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_last_used(built["one"], days_ago=40)
    result = run_isolated(pytester, "--isoenv-prune", f"--isoenv-cache-dir={cache_dir}", "-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "isoenv cache *: removed 1 env(s), freed * kB",
            f"  removed  {built['one'].key[:20]}  * [kM]B  -c one.txt  (last used 40 days ago, isoenv_max_age is 30 day(s))",
        ]
    )
    monkeypatch.delenv("PYTEST_ISOENV_CACHE_DIR")  # it would win over the ini key
    pytester.makeini(f"[pytest]\nisoenv_cache_dir = {cache_dir}\nisoenv_max_age = 0.5\n")
    set_last_used(built["three"], days_ago=1)
    result = run_isolated(pytester, "--isoenv-prune")
    result.stdout.fnmatch_lines(
        ["*removed 1 env(s)*", f"  removed  {built['three'].key[:20]}  * [kM]B  -c three.txt  (*"]
    )
    rows = [line for line in result.stdout.lines if line.startswith("  ")]
    assert rows
    assert all(len(row) <= 80 for row in rows), "cut to the width pytest gives a pipe"
    result = run_isolated(pytester, "--isoenv-clear")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*removed 1 env(s)*", f"  removed  {built['two'].key[:20]}  * [kM]B  -c two.txt  (cleared)"]
    )
    assert list_entries(Cache(cache_dir)) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--isoenv-prune", "--isoenv-max-size=2 parsecs"], "*isoenv_max_size must be a size such as 2GB*'2 parsecs'*"),
        (["--isoenv-prune", "--isoenv-max-age=soon"], "*isoenv_max_age must be a number of days*'soon'*"),
        (["--isoenv-list", "--isoenv-clear"], "*--isoenv-list and --isoenv-clear are separate commands*"),
    ],
)
def test_bad_management_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = run_isolated(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    ("value", "size"),
    [("2GB", 2 * 1000**3), ("500MiB", 500 * 1024**2), ("1.5 kb", 1500), ("10000000", 10_000_000), ("3g", 3 * 1000**3)],
)
def test_max_size_units(pytester: pytest.Pytester, value: str, size: int) -> None:
    from pytest_isoenv.plugin.options import parse_size

    config = pytester.parseconfigure(f"--isoenv-max-size={value}")
    assert parse_size(config) == size


@pytest.mark.slow
def test_session_end_prunes_old_envs_but_never_its_own(
    pytester: pytest.Pytester, built: dict[str, IsolatedEnv], cache_dir: Path, tmp_path: Path
) -> None:
    (pytester.path / "two.txt").write_text((tmp_path / "two.txt").read_text())
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(constraints="two.txt")
        def test_uses(isoenv):
            isoenv.run("python", "-c", "pass")
        """
    )
    # With isoenv_max_age = 0 every env is old the moment the session ends.
    result = run_isolated(pytester, f"--isoenv-cache-dir={cache_dir}", "--isoenv-max-age=0")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["isoenv: pruned 2 env(s) from the cache (* kB freed)*"])
    assert [entry.name for entry in list_entries(Cache(cache_dir))] == [built["two"].key[:20]]
    assert "isoenv: 1 env reused from earlier runs, none built" in result.stdout.str()


@pytest.mark.slow
def test_session_end_does_not_prune_while_another_process_uses_the_cache(
    pytester: pytest.Pytester, built: dict[str, IsolatedEnv], cache_dir: Path, make_envs: MakeEnvs
) -> None:
    other = make_envs(cache_dir=cache_dir)
    IsoEnvFactory(other).get(constraints="one.txt")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = run_isolated(pytester, f"--isoenv-cache-dir={cache_dir}", "--isoenv-max-age=0", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"isoenv: not pruning the cache: pid {os.getpid()} on * is using it"])
    assert len(list_entries(Cache(cache_dir))) == 3

    other.close()
    result = run_isolated(pytester, f"--isoenv-cache-dir={cache_dir}", "--isoenv-max-age=0", "--isoenv-no-auto-prune")
    result.assert_outcomes(passed=1)
    assert len(list_entries(Cache(cache_dir))) == 3
    result = run_isolated(pytester, f"--isoenv-cache-dir={cache_dir}", "--isoenv-max-age=0")
    result.stdout.fnmatch_lines(["isoenv: pruned 3 env(s)*"])
    assert list_entries(Cache(cache_dir)) == []


def test_session_end_leaves_unusable_entries_to_the_prune_command(pytester: pytest.Pytester, cache_dir: Path) -> None:
    Cache(cache_dir).ensure()
    interrupted = cache_dir / "envs" / ("0" * 20)
    interrupted.mkdir()
    pytester.makepyfile("def test_nothing():\n    pass\n")
    run_isolated(pytester, f"--isoenv-cache-dir={cache_dir}").assert_outcomes(passed=1)
    assert interrupted.exists()  # the next session that needs it rebuilds it, or it ages out
    result = run_isolated(pytester, f"--isoenv-cache-dir={cache_dir}", "--isoenv-prune")
    result.stdout.fnmatch_lines([f"  removed  {interrupted.name}  0 B  ?  (unusable: it has no completion record*"])
    assert not interrupted.exists()


def test_a_session_that_uses_no_env_prunes_at_most_once_an_hour(pytester: pytest.Pytester, cache_dir: Path) -> None:
    Cache(cache_dir).ensure()
    (cache_dir / "envs" / ("0" * 20)).mkdir()
    stamp = cache_dir / PRUNED_NAME
    pytester.makepyfile("def test_nothing():\n    pass\n")
    run_isolated(pytester, f"--isoenv-cache-dir={cache_dir}").assert_outcomes(passed=1)
    assert stamp.is_file(), "the first session's end pruned"
    ten_minutes_ago = time.time() - 600
    os.utime(stamp, (ten_minutes_ago, ten_minutes_ago))
    run_isolated(pytester, f"--isoenv-cache-dir={cache_dir}").assert_outcomes(passed=1)
    assert stamp.stat().st_mtime == ten_minutes_ago, "pruned ten minutes ago: left to a later session"
    # With isoenv_max_age under an hour, every session prunes.
    run_isolated(pytester, f"--isoenv-cache-dir={cache_dir}", "--isoenv-max-age=0").assert_outcomes(passed=1)
    assert stamp.stat().st_mtime > ten_minutes_ago
    two_hours_ago = time.time() - 7200
    os.utime(stamp, (two_hours_ago, two_hours_ago))
    run_isolated(pytester, f"--isoenv-cache-dir={cache_dir}").assert_outcomes(passed=1)
    assert stamp.stat().st_mtime > two_hours_ago


PLAN_TESTS = """
    import pytest

    @pytest.mark.isoenv("alpha")
    def test_one(isoenv):
        pass

    @pytest.mark.isoenv("alpha")
    def test_two(isoenv):
        pass

    def test_bare(isoenv):
        pass

    @pytest.mark.isoenv("clitool", private=True)
    def test_private(isoenv):
        pass

    @pytest.mark.isoenv("not a requirement!")
    def test_bad(isoenv):
        pass

    @pytest.mark.isoenv(python="9.99")
    def test_no_such_python(isoenv):
        pass

    def test_no_env():
        pass
"""


@pytest.mark.slow
def test_plan_shows_each_env_its_key_and_whether_it_is_cached(
    pytester: pytest.Pytester, tmp_path: Path, installer_name: str
) -> None:
    cache = f"--isoenv-cache-dir={tmp_path / 'cache'}"
    pytester.makepyfile(PLAN_TESTS)
    before = run_isolated(pytester, cache, "--collect-only", "-q", "--isoenv-plan")
    assert before.ret == 0
    before.stdout.fnmatch_lines(
        [
            "isoenv plan: 3 env(s) for 4 test(s): 0 cached, 3 to build",
            f"  to build  ????????????????????  py3.*  {installer_name}  highest  alpha * (2 tests)",
            f"  to build  ????????????????????  py3.*  {installer_name}  highest  (interpreter only)  (1 test)",
            f"  to build  ????????????????????  py3.*  {installer_name}  highest  clitool * (1 test, private)",
            "  error: invalid requirement * (in test_plan_shows_each_env_its_key_and_whether_it_is_cached.py::test_bad)",
            "  skipped: no Python interpreter matches '9.99'* "
            "(in test_plan_shows_each_env_its_key_and_whether_it_is_cached.py::test_no_such_python)",
            "isoenv plan key: ????????????????????????????????????????????????????????????????",
        ]
    )
    run_isolated(pytester, cache, "-k", "test_one or test_bare").assert_outcomes(passed=2)
    after = run_isolated(pytester, cache, "--collect-only", "-q", "--isoenv-plan")
    after.stdout.fnmatch_lines(
        [
            "isoenv plan: 3 env(s) for 4 test(s): 2 cached, 1 to build",
            "  cached * alpha *",
            "  cached * (interpreter only) *",
            "  to build * clitool * (1 test, private)",
        ]
    )
    plan_key = [line for line in before.outlines if line.startswith("isoenv plan key: ")]
    assert plan_key == [line for line in after.outlines if line.startswith("isoenv plan key: ")]

    narrowed = run_isolated(pytester, cache, "--collect-only", "-q", "--isoenv-plan", "-k", "test_one")
    narrowed.stdout.fnmatch_lines(["isoenv plan: 1 env(s) for 1 test(s): 1 cached, 0 to build"])
    assert plan_key != [line for line in narrowed.outlines if line.startswith("isoenv plan key: ")]


def test_plan_counts_the_tests_that_make_envs_with_the_factory(pytester: pytest.Pytester, tmp_path: Path) -> None:
    # What pytest says a test needs tells them apart: the isoenv fixture does not ask for isoenv_factory.
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def own_env(isoenv_factory):
            return isoenv_factory

        def test_marker_only(isoenv):
            pass

        def test_factory(isoenv_factory):
            pass

        def test_through_a_fixture(own_env):
            pass

        def test_both(isoenv, own_env):
            pass

        def test_neither():
            pass
        """
    )
    plan = run_isolated(pytester, f"--isoenv-cache-dir={tmp_path / 'cache'}", "--collect-only", "-q", "--isoenv-plan")
    plan.stdout.fnmatch_lines(
        [
            "isoenv plan: 1 env(s) for 2 test(s): 0 cached, 1 to build",
            "  not listed: the envs that 3 test(s) make with isoenv_factory.get(), in the test or its fixtures, *",
        ]
    )


@pytest.mark.slow
def test_verbose_streams_installer_output_and_the_log_keeps_it(
    pytester: pytest.Pytester, tmp_path: Path, installer_name: str
) -> None:
    installed = {"pip": "Successfully installed alpha-1.0 beta-1.0", "uv": " + beta==1.0"}[installer_name]
    pytester.makepyfile(marked_tests(test_env='"beta"'))
    quiet = run_isolated(pytester, f"--isoenv-cache-dir={tmp_path / 'quiet'}")
    quiet.assert_outcomes(passed=1)
    quiet.stdout.no_fnmatch_line("isoenv| *")
    (log,) = (tmp_path / "quiet" / "logs").iterdir()
    assert installed in log.read_text()

    loud = run_isolated(pytester, f"--isoenv-cache-dir={tmp_path / 'loud'}", "-v")
    loud.assert_outcomes(passed=1)
    loud.stdout.fnmatch_lines(
        [
            f"isoenv| [[]beta py3.*[]] building beta with {installer_name} on * (log: {tmp_path / 'loud' / 'logs'}*.log)",
            f"isoenv| [[]beta py3.*[]] *{installed}*",
        ]
    )


def test_every_error_about_a_failed_build_names_its_log(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(marked_tests(test_one='"no-such-package"', test_two='"no-such-package"'))
    result = run_isolated(pytester, f"--isoenv-cache-dir={tmp_path / 'cache'}")
    result.assert_outcomes(errors=2)
    logs = tmp_path / "cache" / "logs"
    # The first test's error in full, the second's in a line that points at it: both name the log.
    shown = reports_of(result).splitlines()
    assert sum(f"full log: {logs}" in line for line in shown) == 1
    assert sum(f"and the log {logs}" in line for line in shown) == 1
    (log,) = logs.iterdir()
    assert "no-such-package" in log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_clear_frees_the_installers_caches_inside_the_cache(
    pytester: pytest.Pytester, private_cache: Path, installer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if installer == "uv":
        # uv keeps its cache inside the isoenv cache when the user's is on another filesystem than the envs.
        shm = Path("/dev/shm")
        if not shm.is_dir() or shm.stat().st_dev == private_cache.parent.stat().st_dev:
            pytest.skip("needs a second filesystem for the user's uv cache (/dev/shm)")
        elsewhere = Path(tempfile.mkdtemp(dir=shm))
        monkeypatch.setenv("UV_CACHE_DIR", str(elsewhere / "uv"))
        try:
            _clear_frees(pytester, private_cache, installer)
        finally:
            shutil.rmtree(elsewhere)
    else:
        _clear_frees(pytester, private_cache, installer)


def _clear_frees(pytester: pytest.Pytester, private_cache: Path, installer: str) -> None:
    pytester.makepyfile(marked_tests(test_alpha='"alpha==1.0"'))
    pytester.runpytest("-o", f"isoenv_installer={installer}").assert_outcomes(passed=1)
    own = {"uv": "uv", "pip": "seeds"}[installer]  # pip's envs link to the pip images in seeds/
    assert (private_cache / own).is_dir()
    assert not any(private_cache.glob("sessions/*.json")), "the run has ended"

    result = run_isolated(pytester, "--isoenv-clear")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["isoenv cache *: removed 1 env(s), freed * [kM]B"])
    result.stdout.fnmatch_lines([f"  removed  {own}/ * [kM]B  *"])
    result.stdout.fnmatch_lines(["  removed  hashes/ *B *the content hashes of input files"])
    for name in (own, "py-info", "hashes", "envs/*"):
        assert not list(private_cache.glob(name)), name
    assert not list((private_cache / "trash").iterdir())
    assert Cache(private_cache).is_ours(), "the cache itself stays, tagged"


#: How the CI cache guide names the envs a cache holds, for the key it saves the cache under.
RECORDS = "find envs -name isoenv-record.json | sort | sha256sum | cut -c1-64"
GUIDE = Path(__file__).parents[2] / "docs" / "how-to" / "ci-cache.md"

CI_SUITE = """
import pytest

@pytest.fixture(scope="session")
def tool_env(isoenv_factory):
    return isoenv_factory.get({fixture_env!r})

@pytest.mark.isoenv("alpha==1.0")
def test_marked(isoenv):
    pass

def test_fixture(tool_env):
    pass
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("sha256sum") is None or shutil.which("bash") is None, reason="the recipe's shell")
def test_the_ci_cache_recipe_saves_a_cache_when_the_envs_change_fixture_envs_included(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guide's recipe, played by hand: each run restores the newest saved cache on a fresh runner, runs the
    tests, and saves the cache under the hash of its records when that hash is not the one it restored."""
    guide = GUIDE.read_text(encoding="utf-8")
    assert f"cd .isoenv-cache && {RECORDS}" in guide
    assert "restore-keys: isoenv-${{ runner.os }}-" in guide
    assert "python -m pytest --isoenv-max-age=7" in guide
    store = tmp_path / "ci-store"
    saved: list[str] = []  # the keys saved, oldest first: restore-keys restores the newest with the prefix
    cache = tmp_path / "workspace" / ".isoenv-cache"
    monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(cache))

    def ci_run(fixture_env: str) -> tuple[pytest.RunResult, bool]:
        pytester.makepyfile(test_suite=CI_SUITE.format(fixture_env=fixture_env))
        if cache.exists():
            shutil.rmtree(cache)  # every job starts on a fresh runner, at the same workspace path
        matched = saved[-1] if saved else None
        if matched is not None:
            shutil.copytree(store / matched, cache, symlinks=True)
        result = pytester.runpytest_subprocess("--isoenv-max-age=7", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=2)
        key = subprocess.run(["bash", "-c", RECORDS], cwd=cache, capture_output=True, text=True, check=True)
        key_text = key.stdout.strip()
        if key_text == matched:
            return result, False
        shutil.copytree(cache, store / key_text, symlinks=True)
        saved.append(key_text)
        return result, True

    first, saved_first = ci_run("beta")
    first.stdout.fnmatch_lines(["isoenv: 2 envs built"])
    assert saved_first
    # Restored: nothing is built, and the same cache is not saved again.
    second, saved_second = ci_run("beta")
    second.stdout.fnmatch_lines(["isoenv: 2 envs reused from earlier runs, none built"])
    assert not saved_second
    # The fixture asks for another env (no plan key sees it): the run builds it, and a new cache is saved.
    third, saved_third = ci_run("clitool")
    third.stdout.fnmatch_lines(["isoenv: 1 env built, 1 reused from earlier runs"])
    assert saved_third
    fourth, saved_fourth = ci_run("clitool")
    fourth.stdout.fnmatch_lines(["isoenv: 2 envs reused from earlier runs, none built"])
    assert not saved_fourth
    assert len(saved) == 2


@pytest.mark.slow
def test_listing_and_pruning_read_each_envs_size_from_its_record(
    built: dict[str, IsolatedEnv], cache_dir: Path
) -> None:
    cache = Cache(cache_dir)
    record = cache.read_record(built["one"].key)[0]
    assert record is not None
    assert record.size == tree_size(record.path) - (record.path / RECORD_NAME).stat().st_size
    # What the listing says is the record's, not a walk of the env: a cache of many envs lists fast.
    dataclasses.replace(record, size=123_456).dump()
    set_last_used(built["one"], 0)
    assert {entry.name: entry.size for entry in list_entries(cache)}[record.key[:20]] == 123_456
    pruned = prune(cache, max_age=0, keep={built["two"].key, built["three"].key})
    assert pruned.freed == 123_456


@pytest.mark.slow
def test_listing_and_pruning_lock_no_env_that_nobody_builds(built: dict[str, IsolatedEnv], cache_dir: Path) -> None:
    cache = Cache(cache_dir)
    for lock in cache.folder("locks").iterdir():
        lock.unlink()
    lines = list_lines(cache)
    assert sum("ready" in line for line in lines) == 3
    prune(cache, max_age=30)
    assert list(cache.folder("locks").iterdir()) == [cache.maintenance_lock_path]
    with hold_lock(cache_dir, built["two"].key):
        builders = cache.builders()
        assert list(builders) == [built["two"].key[:20]]
        assert builders[built["two"].key[:20]].startswith("pid ")
        assert sum("being built by pid" in line for line in list_lines(cache)) == 1
