"""Acceptance tests: the plugin's behaviour in real pytest runs (pytester), with real envs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import marked_tests, needs_lock_uv, reports_of, write_pylock

from pytest_isoenv.installers.choice import installer_class


def test_marker_gives_the_test_a_ready_env(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv("beta", "clitool")
        def test_env(isoenv):
            assert isoenv.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip() == "1.0"
            assert isoenv.run("clitool").stdout.strip() == "clitool says hi"
            assert isoenv.installed()["beta"] == "1.0"
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["isoenv: cache *", "isoenv: *"])


def test_closest_marker_wins_and_no_marker_means_no_packages(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.isoenv("clitool")

        def test_module_marker(isoenv):
            assert "clitool" in isoenv.installed()

        @pytest.mark.isoenv("alpha==2.0")
        class TestClass:
            def test_class_marker(self, isoenv):
                assert isoenv.installed()["alpha"] == "2.0"
                assert "clitool" not in isoenv.installed()

            @pytest.mark.isoenv("beta")
            def test_function_marker(self, isoenv):
                assert isoenv.installed()["alpha"] == "1.0"
        """,
        test_nomarker="""
        def test_bare(isoenv):
            assert set(isoenv.installed()) == {"pip"}
        """,
    )
    pytester.runpytest().assert_outcomes(passed=4)


def test_factory_fixture_in_a_session_fixture(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def tool_env(isoenv_factory):
            return isoenv_factory.get("clitool")
        """
    )
    pytester.makepyfile(
        """
        def test_one(tool_env):
            assert tool_env.run("clitool").stdout == "clitool says hi\\n"

        def test_two(tool_env, isoenv_factory):
            assert isoenv_factory.get("clitool") is tool_env
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_second_session_builds_nothing(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv("beta")
        @pytest.mark.parametrize("n", range(3))
        def test_env(isoenv, n):
            isoenv.run("python", "-c", "import beta")
        """
    )
    cache = tmp_path / "own-cache"
    first = pytester.runpytest(f"--isoenv-cache-dir={cache}")
    first.assert_outcomes(passed=3)
    first.stdout.fnmatch_lines(["isoenv: 1 env built", "isoenv:   built  py3.*  *  *s  beta"])
    second = pytester.runpytest(f"--isoenv-cache-dir={cache}")
    second.assert_outcomes(passed=3)
    second.stdout.fnmatch_lines(["isoenv: 1 env reused from earlier runs, none built"])
    second.stdout.no_fnmatch_line("isoenv:   *")
    rebuilt = pytester.runpytest(f"--isoenv-cache-dir={cache}", "--isoenv-rebuild")
    rebuilt.stdout.fnmatch_lines(["isoenv: 1 env built", "isoenv:   built  py3.*  *  *s  beta"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('"requests>=>2"', "invalid requirement 'requests>=>2'*"),
        ('"alpha", editables=["."]', "unknown isoenv argument(s) 'editables'*"),
        ('"./missing"', "local requirement path './missing' does not exist*"),
        ('editable=["tests"]', "editable path 'tests' is not a Python project*"),
        ('requirements_files=["reqs.txt"]', "requirements file 'reqs.txt' does not exist*"),
        ("42", "requirement 42 is a int, not a string*"),
        ('lock="sub/pylock.toml"', "lock file 'sub/pylock.toml' does not exist*"),
    ],
)
def test_bad_input_errors_name_the_test_and_value_and_write_nothing(
    pytester: pytest.Pytester, tmp_path: Path, marker: str, message: str
) -> None:
    pytester.mkdir("tests")
    pytester.makepyfile(test_bad=marked_tests(test_it=marker))
    cache = tmp_path / "untouched"
    result = pytester.runpytest(f"--isoenv-cache-dir={cache}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"{message}* (in test_bad.py::test_it)"])
    assert not (cache / "envs").exists() or not any((cache / "envs").iterdir())


def test_an_unknown_keyword_is_refused_alike_by_the_marker_and_by_get(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_unknown="""
        import pytest

        @pytest.mark.isoenv("alpha", editables=["."])
        def test_marker(isoenv):
            pass

        def test_get(isoenv_factory):
            isoenv_factory.get("alpha", editables=["."])
        """
    )
    reports = pytester.inline_run().getreports("pytest_runtest_logreport")
    failed = {r.nodeid.split("::")[1]: r for r in reports if r.failed}
    assert sorted(failed) == ["test_get", "test_marker"]
    marker = failed["test_marker"].longreprtext
    raised = failed["test_get"].longrepr.reprcrash.message  # type: ignore[union-attr]
    assert raised == f"pytest_isoenv.errors.SpecError: {marker.replace('::test_marker)', '::test_get)')}"
    assert marker.startswith("unknown isoenv argument(s) 'editables': editables=['.'] (did you mean editable?). ")
    assert marker.endswith(
        "The accepted keyword arguments are: editable, constraints, requirements_files, groups, lock, python, private, "
        "installer, find_links, index_url, warm, preload (in test_unknown.py::test_marker)"
    )


def test_the_marker_help_and_the_fixtures_give_every_keyword(pytester: pytest.Pytester) -> None:
    from pytest_isoenv.spec.arguments import keywords, signature

    markers = pytester.runpytest("--markers").stdout.lines
    [line] = [line for line in markers if line.startswith("@pytest.mark.isoenv(")]
    assert line.startswith(f"@pytest.mark.isoenv({signature()}): the packages the test's `isoenv` env has")
    for name, keyword in keywords().items():
        assert f" {name}={keyword.default!r}," in line or f" {name}={keyword.default!r})" in line, name

    # The first paragraph of each docstring, which pytest --fixtures shows, has the signature.
    fixtures = pytester.runpytest("--fixtures").stdout.str()
    shown = {name: fixtures.split(f"\n{name} ", 1)[1].split("\n\n", 1)[0] for name in ("isoenv_factory", "isoenv")}
    assert f"``isoenv_factory.get({signature()})``" in shown["isoenv_factory"]
    assert f"``@pytest.mark.isoenv({signature()})``" in shown["isoenv"]
    for name, doc in shown.items():
        assert all(f" {keyword}=" in doc for keyword in keywords()), (name, doc)


def test_a_test_whose_python_is_missing_is_skipped_at_its_own_location(pytester: pytest.Pytester) -> None:
    # As pytest places a skip mark's reason: at the test, so that the reasons of its parameters fold into one line.
    pytester.makepyfile(
        test_missing="""
        import pytest

        @pytest.mark.parametrize("n", [1, 2])
        @pytest.mark.skip(reason="marked")
        def test_marked(n):
            pass

        @pytest.mark.parametrize("n", [1, 2])
        @pytest.mark.isoenv(python="3.98")
        def test_missing(isoenv, n):
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]2[]] test_missing.py:3: marked",
            "SKIPPED [[]2[]] test_missing.py:8: python='3.98' is not installed (*)",
        ]
    )


FAILING = """
import pytest

@pytest.mark.isoenv("alpha==9.9")
@pytest.mark.parametrize("n", range(3))
def test_it(isoenv, n):
    pass

def test_unaffected():
    pass
"""


def test_a_failed_build_is_reported_once_and_later_tests_point_at_it(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(FAILING)
    cache = tmp_path / "cache"
    result = pytester.runpytest(f"--isoenv-cache-dir={cache}")
    result.assert_outcomes(passed=1, errors=3)
    first = "test_a_failed_build_is_reported_once_and_later_tests_point_at_it.py::test_it[[]0[]]"
    result.stdout.fnmatch_lines(
        [
            f"installing alpha==9.9 failed (in {first})",
            "  command: *pip install *alpha==9.9*",
            "  exit code: 1",
            "  full log: *.log",
            f"installing alpha==9.9 failed earlier in this run: see the report of {first} for the error, "
            "and the log *.log (in *test_it[[]1[]])",
            "isoenv: 1 env failed to build",
            "isoenv:   failed  py3.*  *  *s  alpha==9.9",
        ]
    )
    # The whole error once, not once per test.
    assert reports_of(result).count("exit code: 1") == 1
    assert list((cache / "envs").iterdir()) == []
    assert len(list((cache / "logs").iterdir())) == 1
    # A new run tries again, and says it in full again.
    again = pytester.runpytest(f"--isoenv-cache-dir={cache}")
    again.assert_outcomes(passed=1, errors=3)
    assert reports_of(again).count("exit code: 1") == 1


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_under_xdist_a_failed_build_is_tried_once_per_run(
    pytester: pytest.Pytester, tmp_path: Path, installer: str
) -> None:
    """The failure is recorded in the cache: the other worker neither builds the env again nor repeats the error."""
    pytester.makepyfile(FAILING)
    cache = tmp_path / "cache"
    builds = tmp_path / "builds"
    # Every build of the env writes its log anew: a copy of the header at each build's start counts the builds.
    pytester.makeconftest(
        f"""
        import pytest_isoenv.session.shared as shared

        real = shared.build_env

        def counted(spec, path, log, **kwargs):
            with open({str(builds)!r}, "a") as stream:
                stream.write(spec.describe() + "\\n")
            return real(spec, path, log, **kwargs)

        shared.build_env = counted
        """
    )
    for _ in range(2):
        result = pytester.runpytest_subprocess(
            f"--isoenv-cache-dir={cache}", "-n", "2", "-o", f"isoenv_installer={installer}"
        )
        result.assert_outcomes(passed=1, errors=3)
        assert reports_of(result).count("exit code: 1") == 1, result.stdout.str()
        assert reports_of(result).count("failed earlier in this run: see ") == 2, result.stdout.str()
        result.stdout.fnmatch_lines(["isoenv: 1 env failed to build"])
        result.stdout.no_fnmatch_line("isoenv: 2 envs failed to build")
    # Once per run: the second run tried again.
    assert builds.read_text().splitlines() == ["alpha==9.9", "alpha==9.9"]


def test_private_env_may_be_changed_and_shared_env_refuses(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_isoenv import SharedEnvError

        @pytest.mark.isoenv("beta", private=True)
        def test_private(isoenv):
            isoenv.install("clitool")
            assert isoenv.run("clitool").stdout.strip() == "clitool says hi"

        @pytest.mark.isoenv("beta")
        def test_shared(isoenv):
            with pytest.raises(SharedEnvError, match="private=True"):
                isoenv.install("clitool")
            assert "clitool" not in isoenv.installed()
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_options_and_ini_keys_share_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "  --isoenv-cache-dir=DIR",
            "*Where built envs are cached (also",
            "  --isoenv-offline *Install only from --isoenv-find-links*",
            "  isoenv_cache_dir (string):",
            "*Where built envs are cached (also",
            "  isoenv_offline (bool):",
            "*Install only from --isoenv-find-links*",
        ]
    )
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.isoenv(*requirements, editable=(), *"])


#: What the plugin's entry point may import in a run whose tests use no env: the option table, the marker's text,
#: the fixtures, and the small modules these need. Not the core (session, store, installers, discovery, key, run,
#: factory), nor what only the core needs (filelock, packaging, urllib.request, ssl, concurrent.futures...).
LIGHT_MODULES = {
    "pytest_isoenv",
    "pytest_isoenv.environ",
    "pytest_isoenv.errors",
    "pytest_isoenv.text",
    "pytest_isoenv.spec",
    "pytest_isoenv.spec.arguments",
    "pytest_isoenv.spec.reqfiles",
    "pytest_isoenv.plugin",
    "pytest_isoenv.plugin.access",
    "pytest_isoenv.plugin.activation",
    "pytest_isoenv.plugin.coverage",
    "pytest_isoenv.plugin.fixtures",
    "pytest_isoenv.plugin.hooks",
    "pytest_isoenv.plugin.options",
    "pytest_isoenv.plugin.reporting",
    "pytest_isoenv.plugin.state",
    "pytest_isoenv.plugin.xdist",
}

#: Writes the modules each process of a run has imported by the end of its session (each xdist worker too).
MODULES_CONFTEST = """
import json, os, sys

def pytest_sessionfinish(session):
    name = getattr(session.config, "workerinput", {}).get("workerid", "main")
    kind = "plugin" if session.config.pluginmanager.has_plugin("isoenv") else "bare"
    with open(os.path.join(os.environ["MODULES_OUT"], f"{name}-{kind}.json"), "w") as out:
        json.dump(sorted(sys.modules), out)
"""


@pytest.mark.parametrize("args", [(), ("-q",), ("-n", "2")], ids=["header", "quiet", "xdist"])
def test_a_run_whose_tests_use_no_env_loads_nothing_of_the_core(
    pytester: pytest.Pytester,
    private_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
) -> None:
    out = tmp_path / "modules"
    out.mkdir()
    monkeypatch.setenv("MODULES_OUT", str(out))
    pytester.makeconftest(MODULES_CONFTEST)
    pytester.makepyfile("def test_plain(tmp_path):\n    assert tmp_path.is_dir()\n")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)
    pytester.runpytest_subprocess(*args, "-p", "no:isoenv").assert_outcomes(passed=1)
    for with_plugin in sorted(out.glob("*-plugin.json")):
        bare = with_plugin.with_name(with_plugin.name.replace("-plugin", "-bare"))
        added = set(json.loads(with_plugin.read_text())) - set(json.loads(bare.read_text()))
        assert added - LIGHT_MODULES == set(), f"{with_plugin.stem}: the plugin loaded more than it needs"
    assert len(list(out.glob("*.json"))) == (6 if "-n" in args else 2)
    assert not private_cache.exists(), "nothing was read from or written into the cache"


def test_the_header_names_the_installer_as_set_until_a_test_needs_an_env(
    pytester: pytest.Pytester, private_cache: Path
) -> None:
    pytester.makepyfile(test_plain="def test_plain(): pass")
    result = pytester.runpytest_subprocess("--isoenv-installer=auto")
    result.assert_outcomes(passed=1)
    assert [line for line in result.outlines if line.startswith("isoenv:")] == [
        f"isoenv: cache {private_cache}, installer auto"
    ]
    # A test that needs an env: the installer is chosen, and the summary says which, not the progress line.
    pytester.makepyfile(test_env="def test_env(isoenv): pass")
    result = pytester.runpytest_subprocess("--isoenv-installer=auto", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    chosen = installer_class("auto").name
    result.stdout.fnmatch_lines(
        [
            f"isoenv: cache {private_cache}, installer auto",
            "test_env.py .*",
            "test_plain.py .*",
            "*= isoenv =*",
            f"isoenv: cache {private_cache}, installer {chosen}*",
        ]
    )
    progress = [line for line in result.outlines if line.startswith("test_")]
    assert len(progress) == 2, "each test file's progress on one line"


def test_header_names_the_cache_dir_from_the_environment_and_the_installer(
    pytester: pytest.Pytester, shared_cache: Path, installer_name: str
) -> None:
    pytester.makepyfile("def test_it(isoenv): pass")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines([f"isoenv: cache {shared_cache}, installer {installer_name}"])


def test_a_cache_inside_the_rootdir_is_never_collected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=marked_tests(test_alpha='"alpha==1.0"'))
    pytester.runpytest("--isoenv-cache-dir=isoenv-cache").assert_outcomes(passed=1)
    cache = pytester.path / "isoenv-cache"
    assert (cache / "CACHEDIR.TAG").is_file()
    (cache / "envs" / "test_planted.py").write_text("def test_planted():\n    raise AssertionError('collected')\n")

    result = pytester.runpytest("--isoenv-cache-dir=isoenv-cache")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["collected 1 item"])
    # Named on the command line, a path inside the cache is still not collected.
    pytester.runpytest("--isoenv-cache-dir=isoenv-cache", "isoenv-cache/envs").assert_outcomes()


def test_a_marked_lock_file_is_the_env_and_asking_pip_for_it_is_a_usage_error(
    pytester: pytest.Pytester, wheelhouse: Path
) -> None:
    needs_lock_uv()
    # The installer left to auto (the suite's ini may name pip): uv installs lock files.
    pytester.makeini(f"[pytest]\nisoenv_find_links = {wheelhouse}\nisoenv_offline = true\n")
    write_pylock(pytester.path, wheelhouse / "alpha-2.0-py3-none-any.whl", wheelhouse / "clitool-1.0-py3-none-any.whl")
    pytester.makepyfile(
        marked_tests(test_lock='lock="pylock.toml"', test_pip='lock="pylock.toml", installer="pip"')
        + "\n\n@pytest.mark.isoenv(lock='pylock.toml')\ndef test_versions(isoenv):\n"
        "    assert isoenv.installed()['alpha'] == '2.0'\n    assert isoenv.run('clitool').returncode == 0\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*lock='pylock.toml' needs the uv installer: pip cannot install a uv.lock*(in test_*.py::test_pip)"]
    )
