"""SessionEnvs: one session's keys, as what they are made of changes while the session runs."""

from __future__ import annotations

from pathlib import Path

import isoenv_testbackend as backend
from helpers import MakeEnvs, write_pylock


def test_a_wheel_rebuilt_while_tests_run_counts_for_the_keys_made_after(make_envs: MakeEnvs, tmp_path: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'old'\n"})
    running: list[str | None] = [None]
    envs = make_envs(tmp_path / "cache", current_test=lambda: running[0])
    # Collection: the keys of every marker, the folder listed once for them all.
    envs.key(envs.spec(("gamma",), find_links=[str(house)]))

    # A fixture of a test rebuilds the wheel under its name, in place, then the test asks for an env.
    running[0] = "test_x.py::test_rebuilt"
    backend.write_wheel(house, "gamma", "1.0", files={"gamma/__init__.py": "VALUE = 'new'\n"})
    spec = envs.spec(("gamma", "alpha"), find_links=[str(house)])

    assert envs.key(spec) == make_envs(tmp_path / "cache").key(spec)


def test_the_sessions_versions_and_resolution_leave_a_lock_as_it_pins(make_envs: MakeEnvs, tmp_path: Path) -> None:
    lock = write_pylock(tmp_path)
    envs = make_envs(installer="uv", with_requirements=("alpha==2.0",), resolution="lowest-direct")
    spec = envs.spec((), lock=lock)
    assert (spec.requirements, spec.resolution) == ((), "highest")
    assert envs.spec(("beta",)).requirements == ("alpha==2.0", "beta")
