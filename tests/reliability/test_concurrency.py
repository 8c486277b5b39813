"""Many processes on one cache: each env is built exactly once, waiters say what they wait for, locks time out only
when asked to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import EnvsFor, MakeProject, finish, hold_lock, kill, read_line
from reliability_helpers import (
    RUN_LIMIT,
    BuildTrace,
    Figure,
    env_entries,
    generation,
    pytest_command,
    run_together,
    start,
)

from pytest_isoenv.store.record import RECORD_NAME

PROJECTS = ("pa", "pb", "pc")


def write_env_tests(
    pytester: pytest.Pytester, make_project: MakeProject, name: str, order: tuple[str, ...], repeat: int
) -> None:
    """A test file needing one env per project (a local project each), *repeat* tests per env.

    Tests cycle through *order*, so the first ones of every process or worker ask for different envs.
    """
    projects = pytester.path / "projects"
    if not projects.exists():
        for project in PROJECTS:
            make_project(project, parent=projects)
    paths_text = repr({p: str(projects / p) for p in PROJECTS})
    pytester.makepyfile(
        **{
            name: f"""
            import pytest

            PATHS = {paths_text}
            ORDER = {order!r}
            CASES = [
                pytest.param(name, marks=pytest.mark.isoenv(PATHS[name]), id=f"{{name}}-{{i}}")
                for i in range({repeat})
                for name in ORDER
            ]

            @pytest.mark.parametrize("name", CASES)
            def test_env(isoenv, name):
                out = isoenv.run("python", "-c", f"import {{name}}; print({{name}}.NAME)").stdout
                assert out.strip() == name
            """
        }
    )


def waits(output: str) -> list[str]:
    """The wait announcements in *output* (an xdist worker's may share a line with the progress dots)."""
    return re.findall(r"isoenv: .*waiting for .*", output)


@pytest.mark.slow
def test_xdist_builds_each_env_once(
    pytester: pytest.Pytester,
    private_cache: Path,
    make_project: MakeProject,
    build_trace: BuildTrace,
    build_gate: Path,
    figure: Figure,
) -> None:
    write_env_tests(pytester, make_project, "test_envs.py", PROJECTS, repeat=10)

    [(code, output)] = run_together([pytest_command("-n", "4", "-p", "xdist")], cwd=pytester.path, gate=build_gate)

    assert code == 0, output
    assert re.search(r"\b30 passed\b", output), output
    builds = build_trace.counts()
    assert builds == dict.fromkeys(PROJECTS, 1), f"builds per env: {dict(builds)}"
    assert len(env_entries(private_cache)) == 3
    assert all((generation(private_cache, e) / RECORD_NAME).is_file() for e in env_entries(private_cache))
    announced = waits(output)
    # The test backend holds every build until a wait is announced: 4 workers, 3 envs, so one must wait.
    assert announced, output
    assert all(
        re.search(r"\[gw\d\] waiting for env \(p[abc] 0\.1\) \[\w+\], being built by xdist worker gw\d", w)
        for w in announced
    ), announced
    assert "Warning" not in output, "a worker waiting for a build in progress must not call it broken"
    figure(
        f"pytest -n 4, 30 tests, 3 envs: builds per env {', '.join(f'{p}={builds[p]}' for p in PROJECTS)}; "
        f"{len(announced)} waits announced on stderr, e.g. {announced[0]!r}"
    )


@pytest.mark.slow
def test_independent_processes_build_each_env_once(
    pytester: pytest.Pytester,
    private_cache: Path,
    make_project: MakeProject,
    build_trace: BuildTrace,
    build_gate: Path,
    figure: Figure,
) -> None:
    # The first two processes start with the same env, so one of them waits for the other.
    orders = [("pa", "pb", "pc"), ("pa", "pc", "pb"), ("pb", "pc", "pa")]
    for number, order in enumerate(orders):
        write_env_tests(pytester, make_project, f"test_order{number}.py", order, repeat=2)

    results = run_together(
        [pytest_command("-p", "no:xdist", f"test_order{n}.py") for n in range(len(orders))],
        cwd=pytester.path,
        gate=build_gate,
    )

    for code, output in results:
        assert code == 0, output
        assert re.search(r"\b6 passed\b", output), output
    builds = build_trace.counts()
    assert builds == dict.fromkeys(PROJECTS, 1), f"builds per env: {dict(builds)}"
    assert len(env_entries(private_cache)) == 3
    # A process that ends first prunes the cache when it sees no other lease yet: the others may then wait
    # for that prune, which is no build wait and says so.
    announced = [w for _, output in results for w in waits(output) if "to finish pruning" not in w]
    assert announced
    assert all(
        re.search(r"waiting for env \(p[abc] 0\.1\) \[\w+\], being built by pid \d+ on ", w) for w in announced
    ), announced
    figure(
        f"3 pytest processes at once, 6 tests each, 3 envs: builds per env "
        f"{', '.join(f'{p}={builds[p]}' for p in PROJECTS)}; {len(announced)} waits announced, e.g. {announced[0]!r}"
    )


@pytest.fixture
def alpha_key(private_cache: Path, envs_for: EnvsFor) -> str:
    """The key of the env the lock tests' pytester runs ask for (same interpreter, installer and index)."""
    envs, _ = envs_for(private_cache)
    return envs.key(envs.spec(["alpha"]))


LOCK_TEST = """
import pytest

@pytest.mark.isoenv("alpha")
def test_alpha(isoenv):
    isoenv.run("python", "-c", "import alpha")
"""


def test_lock_timeout_names_the_holder(
    pytester: pytest.Pytester, private_cache: Path, alpha_key: str, figure: Figure
) -> None:
    pytester.makepyfile(LOCK_TEST)
    with hold_lock(private_cache, alpha_key) as holder:
        result = pytester.runpytest("--isoenv-lock-timeout", "1")
    result.assert_outcomes(errors=1)
    line = next(line for line in result.stdout.lines if "gave up waiting" in line)
    assert "gave up waiting 1s for the lock of env (alpha)" in line
    assert line.endswith("(in test_lock_timeout_names_the_holder.py::test_alpha)")
    assert f"held by pid {holder.pid} on " in line
    assert "Raise isoenv_lock_timeout" in line
    assert env_entries(private_cache) == []
    figure(f"isoenv_lock_timeout=1 with the lock held by pid {holder.pid}: {line.strip()}")


def test_lock_wait_lasts_as_long_as_the_holder(
    pytester: pytest.Pytester, private_cache: Path, alpha_key: str, figure: Figure
) -> None:
    pytester.makepyfile(LOCK_TEST)
    with hold_lock(private_cache, alpha_key) as holder:
        waiter = start(pytest_command(), cwd=pytester.path)
        seen: list[str] = []
        try:
            while not seen or "waiting for" not in seen[-1]:
                seen.append(read_line(waiter, what="the waiting pytest run"))
            holder.release()  # the "build" ends only once the waiter is known to wait
            output = "".join(seen) + finish(waiter, timeout=RUN_LIMIT, what="the waiting pytest run")
        finally:
            kill(waiter)
    assert waiter.returncode == 0, output
    [announced] = waits(output)
    assert f"being built by pid {holder.pid} on " in announced
    assert re.search(r"\b1 passed\b", output)
    figure(f"no timeout by default: waited for pid {holder.pid}, then built and passed; said {announced!r}")
