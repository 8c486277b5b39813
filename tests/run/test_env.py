"""IsolatedEnv: paths, environ, run(), installed() and install(), on real envs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MakeFactory

from pytest_isoenv import CommandNotFound, IsolatedEnv, RunError, SharedEnvError


@pytest.fixture
def env(make_factory: MakeFactory) -> IsolatedEnv:
    return make_factory().get("beta", "clitool")


def test_paths_are_inside_the_env(env: IsolatedEnv) -> None:
    assert env.python.is_relative_to(env.path)
    assert env.python.parent == env.bin_dir
    assert env.site_packages.is_relative_to(env.path)
    assert (env.site_packages / "alpha" / "__init__.py").is_file()
    assert env.run("python", "-c", "import sys; print(sys.prefix)").stdout.strip() == str(env.path)


def test_first_argument_runs_the_envs_own_script(env: IsolatedEnv) -> None:
    assert env.run("clitool").stdout == "clitool says hi\n"
    assert env.script("clitool") == env.bin_dir / "clitool"
    assert env.run("python", "-m", "pip", "--version").stdout.startswith("pip ")
    assert env.run("pip", "--version").stdout.startswith("pip ")


def test_environ_points_into_the_env_and_is_a_copy(env: IsolatedEnv) -> None:
    environ = env.environ
    assert environ["VIRTUAL_ENV"] == str(env.path)
    assert environ["PATH"].split(os.pathsep)[0] == str(env.bin_dir)
    assert environ["PYTHONNOUSERSITE"] == "1"
    environ["VIRTUAL_ENV"] = "changed"
    assert env.environ["VIRTUAL_ENV"] == str(env.path)


def test_nothing_of_the_host_python_leaks_in(
    make_factory: MakeFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    poison = tmp_path / "poison"
    poison.mkdir()
    (poison / "alpha.py").write_text("VERSION = 'poisoned'\n")
    (poison / "startup.py").write_text("print('startup ran')\n")
    monkeypatch.setenv("PYTHONPATH", str(poison))
    monkeypatch.setenv("PYTHONSTARTUP", str(poison / "startup.py"))
    monkeypatch.setenv("PYTHONUSERBASE", str(poison))
    monkeypatch.setenv("PIP_USER", "1")
    env = make_factory().get("beta", "clitool")
    out = env.run(
        "python",
        "-c",
        "import alpha, json, os, site, sys; "
        "print(json.dumps([alpha.VERSION, os.environ.get('PYTHONPATH'), site.ENABLE_USER_SITE, sys.path]))",
    ).stdout
    version, pythonpath, user_site, path = json.loads(out)
    assert version == "1.0"
    assert pythonpath is None
    assert user_site is False
    assert str(poison) not in path
    assert "startup ran" not in out


def test_run_env_adds_and_removes_variables(env: IsolatedEnv) -> None:
    code = "import os; print(os.environ.get('EXTRA'), os.environ.get('VIRTUAL_ENV'))"
    out = env.run("python", "-c", code, env={"EXTRA": "yes", "VIRTUAL_ENV": None}).stdout
    assert out.split() == ["yes", "None"]


def test_run_input_cwd_and_unchecked_failure(env: IsolatedEnv, tmp_path: Path) -> None:
    proc = env.run("python", "-c", "import os, sys; print(os.getcwd(), sys.stdin.read())", cwd=tmp_path, input="hi")
    assert proc.stdout.split() == [str(tmp_path), "hi"]
    assert env.run("python", "-c", "raise SystemExit(3)", check=False).returncode == 3


def test_failing_command_raises_with_command_code_and_output_tails(env: IsolatedEnv) -> None:
    script = "import sys\nfor i in range(100): print('line', i)\nprint('boom', file=sys.stderr)\nsys.exit(7)"
    with pytest.raises(RunError) as excinfo:
        env.run("python", "-c", script)
    error = excinfo.value
    assert error.returncode == 7
    assert "boom" in error.stderr
    message = str(error)
    assert message.startswith(f"command exited with code 7 in isolated env {env.path}")
    assert f"command: {env.python}" in message
    assert "line 99" in message
    assert "line 5\n" not in message, "only the tail of long output is shown"
    assert "earlier lines cut" in message
    assert "boom" in message


def test_installed_reads_the_env(env: IsolatedEnv) -> None:
    installed = env.installed()
    assert installed["alpha"] == "1.0"
    assert installed["beta"] == "1.0"
    assert installed["clitool"] == "1.0"
    assert "pip" in installed


def test_shared_env_refuses_install(env: IsolatedEnv) -> None:
    with pytest.raises(SharedEnvError, match=r"refusing to install alpha==2.0 into the shared env .*private=True"):
        env.install("alpha==2.0")


def test_private_env_is_the_callers_own(make_factory: MakeFactory) -> None:
    factory = make_factory()
    shared = factory.get("beta", "clitool")
    private = factory.get("beta", "clitool", private=True)
    assert private.private
    assert private.path != shared.path
    assert private.key == shared.key
    private.install("alpha==2.0")
    assert private.installed()["alpha"] == "2.0"
    private.run("python", "-m", "pip", "uninstall", "-y", "clitool")
    assert "clitool" not in private.installed()
    assert shared.installed()["alpha"] == "1.0"
    assert shared.run("clitool").stdout == "clitool says hi\n"


def test_env_is_a_frozen_value(env: IsolatedEnv, make_factory: MakeFactory) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.path = Path("elsewhere")  # type: ignore[misc]
    assert not env.private
    assert env.installs is None
    same = make_factory().get("clitool", "beta")
    assert same == env, "the same spec at the same place is the same env"
    assert repr(env).startswith("<IsolatedEnv shared beta, clitool at ")


needs_posix_scripts = pytest.mark.skipif(sys.platform == "win32", reason="writes a POSIX shell script")


@pytest.fixture
def host_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A program named ``hostonly`` on the host's PATH, which no env has."""
    folder = tmp_path / "hostbin"
    folder.mkdir()
    program = folder / "hostonly"
    program.write_text("#!/bin/sh\necho host program ran\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return "hostonly"


@needs_posix_scripts
def test_bare_name_the_env_lacks_is_refused_not_taken_from_the_host(env: IsolatedEnv, host_program: str) -> None:
    with pytest.raises(CommandNotFound) as excinfo:
        env.run(host_program)
    message = str(excinfo.value)
    assert message.startswith(f"'hostonly' is not a script of the env; the isolated env (beta, clitool) at {env.path}")
    assert "clitool" in excinfo.value.scripts
    assert "python" in excinfo.value.scripts
    assert "external=True" in message
    with pytest.raises(CommandNotFound):
        env.popen(host_program)
    assert env.run(host_program, external=True).stdout == "host program ran\n"


def test_a_path_runs_as_given(env: IsolatedEnv) -> None:
    assert env.run(sys.executable, "-c", "import sys; print(sys.prefix)").stdout.strip() == sys.prefix


def test_command_missing_everywhere_names_the_env_and_its_scripts(env: IsolatedEnv) -> None:
    with pytest.raises(CommandNotFound) as excinfo:
        env.run("no-such-program-anywhere", external=True)
    message = str(excinfo.value)
    assert "'no-such-program-anywhere' is neither a script of the env nor a program on the host's PATH" in message
    assert str(env.path) in message
    assert "clitool" in message
    assert isinstance(excinfo.value, FileNotFoundError)
    with pytest.raises(CommandNotFound, match="does not exist"):
        env.run(str(env.bin_dir / "no-such-script"))


def test_output_is_utf8_whatever_the_locale(env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONIOENCODING", raising=False)
    monkeypatch.delenv("PYTHONUTF8", raising=False)
    write = "import sys; sys.stdout.buffer.write({!r})"
    assert env.run("python", "-c", write.format("grüße ✓".encode())).stdout == "grüße ✓"
    assert env.run("python", "-c", write.format(b"bad \xff")).stdout == "bad \ufffd"
    with pytest.raises(UnicodeDecodeError):
        env.run("python", "-c", write.format(b"bad \xff"), errors="strict")
    assert env.run("python", "-c", write.format("é".encode("latin-1")), encoding="latin-1").stdout == "é"
    # The env's processes keep their own encoding settings unless the test asks.
    code = "import os; print(os.environ.get('PYTHONIOENCODING'), os.environ.get('PYTHONUTF8'))"
    assert env.run("python", "-c", code).stdout.split() == ["None", "None"]
    assert env.run("python", "-c", code, env={"PYTHONUTF8": "1"}).stdout.split() == ["None", "1"]


def test_popen_runs_in_the_env_in_the_background(env: IsolatedEnv) -> None:
    proc = env.popen(
        "python", "-c", "import sys; print(sys.prefix); print(input())", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    out, _ = proc.communicate("pong", timeout=60)
    assert out.split() == [str(env.path), "pong"]
    assert proc.returncode == 0
    raw = env.popen("clitool", stdout=subprocess.PIPE)
    assert raw.communicate(timeout=60)[0] == b"clitool says hi" + os.linesep.encode()


def test_failing_run_shows_the_callers_line_not_the_plugins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fails(isoenv):
            isoenv.run("python", "-c", "raise SystemExit(3)")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "    def test_fails(isoenv):",
            '>       isoenv.run("python", "-c", "raise SystemExit(3)")',
            "E       pytest_isoenv.errors.RunError: command exited with code 3 in isolated env *",
        ]
    )
    output = result.stdout.str()
    assert "subprocess.run(" not in output
    assert "def run(" not in output
    assert "env.py" not in output
