"""A live session's env is never pulled from under it: rebuilds make a new generation beside the one in use,
and any install, uninstall or reinstall in a shared env is seen."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import isoenv_testbackend as backend
import pytest
from helpers import EnvsFor, finish, read_line
from reliability_helpers import Figure, env_entries

from pytest_isoenv import IsoEnvFactory

# Another session: it gets an env, prints its path, runs in it until told to stop, and then ends
# (releasing its lease) when it reads a line.
HOLDER = textwrap.dedent(
    """
    import os, subprocess, sys, uuid
    from pathlib import Path
    from pytest_isoenv.factory import IsoEnvFactory
    from pytest_isoenv.session.envs import SessionEnvs
    from pytest_isoenv.session.settings import Settings
    from pytest_isoenv.spec.index import IndexOptions

    cache, wheelhouse = sys.argv[1:3]
    envs = SessionEnvs(Settings(
        cache_dir=Path(cache), rootdir=Path.cwd(), run_id=uuid.uuid4().hex,
        index=IndexOptions(find_links=(wheelhouse,), offline=True),
        installer=os.environ.get("ISOENV_TEST_INSTALLER", "auto"),
    ))
    env = IsoEnvFactory(envs).get("alpha==1.0")
    print(env.path, flush=True)
    sys.stdin.readline()
    print(env.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip(), flush=True)
    envs.close()
    """
)


@pytest.mark.slow
def test_rebuild_leaves_another_sessions_env_alone(
    private_cache: Path, wheelhouse: Path, envs_for: EnvsFor, figure: Figure
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(private_cache), str(wheelhouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    held = Path(read_line(holder, what="the other session").strip())

    rebuilder, _ = envs_for(private_cache, rebuild=True)
    rebuilt = IsoEnvFactory(rebuilder).get("alpha==1.0")
    after_rebuild = sorted(p.name for p in held.parent.iterdir())

    assert rebuilt.path != held, "the rebuild is a new generation beside the one in use"
    assert rebuilt.path.parent == held.parent
    assert after_rebuild == sorted([held.name, rebuilt.path.name, "current"])
    output = finish(holder, what="the other session", input="go on\n")
    assert holder.returncode == 0, output
    assert output.strip() == "1.0", "the other session's env kept working through the rebuild"
    assert not held.exists(), "its last holder gone, the old generation went"
    assert rebuilt.run("python", "-c", "import alpha").returncode == 0
    rebuilder.close()
    figure(
        f"--isoenv-rebuild while another session ran in generation {held.name}: built generation "
        f"{rebuilt.path.name} beside it ({', '.join(after_rebuild)}); the other session's env still ran; "
        f"generation {held.name} went when that session ended"
    )


def test_sessions_rebuilding_together_build_once(private_cache: Path, envs_for: EnvsFor, figure: Figure) -> None:
    first, _ = envs_for(private_cache)
    IsoEnvFactory(first).get("alpha==1.0")
    first.close()
    # Two sessions started with --isoenv-rebuild before either has rebuilt anything.
    one, _ = envs_for(private_cache, rebuild=True)
    two, _ = envs_for(private_cache, rebuild=True)
    IsoEnvFactory(one).get("alpha==1.0")
    IsoEnvFactory(two).get("alpha==1.0")
    assert (len(one.stats.built), len(two.stats.built)) == (1, 0)
    assert len(two.stats.reused) == 1
    one.close()
    two.close()
    assert len(env_entries(private_cache)) == 1
    figure("two sessions started together with --isoenv-rebuild: the first rebuilt the env, the second reused it")


@pytest.mark.slow
def test_reinstalling_the_same_version_is_a_change(
    pytester: pytest.Pytester, private_cache: Path, tmp_path: Path, figure: Figure
) -> None:
    """``pip install --force-reinstall --no-deps`` of another build of the same version keeps every name."""
    other = tmp_path / "other-build"
    other.mkdir()
    wheel = backend.write_wheel(other, "alpha", "1.0", files={"alpha/__init__.py": "VERSION = 'tampered'\n"})
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv("alpha==1.0")
        def test_reinstalls(isoenv):
            isoenv.run("python", "-m", "pip", "--disable-pip-version-check", "install", "--force-reinstall",
                       "--no-deps", {str(wheel)!r})
            assert isoenv.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip() == "tampered"

        @pytest.mark.isoenv("alpha==1.0")
        def test_after(isoenv):
            assert isoenv.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip() == "1.0"
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    line = next(line for line in result.stdout.lines if "was changed by" in line and "::test_reinstalls" in line)
    assert "reinstalled alpha-1.0.dist-info" in line
    figure(f"same-version reinstall into a shared env: {line[line.index('(reinstalled') :]}; the next test saw 1.0")
