"""Acceptance tests: ``pytest_isoenv.get_factory(config)`` for code that cannot take fixtures (custom items, hooks)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import pytest_isoenv

#: A conftest that collects ``*.case`` files, each line a test: a custom item whose env comes from get_factory.
CUSTOM_ITEMS = """
import os

import pytest

from pytest_isoenv import get_factory


class CaseFile(pytest.File):
    def collect(self):
        for line in self.path.read_text().splitlines():
            name, _, kind = line.partition(" ")
            yield CaseItem.from_parent(self, name=name, kind=kind)


class CaseItem(pytest.Item):
    def __init__(self, *, kind, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind

    def runtest(self):
        factory = get_factory(self.config)
        if self.kind == "shared":
            env = factory.get("alpha==1.0")
            assert not env.private
            assert env.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip() == "1.0"
        elif self.kind == "private":
            env = factory.get("alpha==1.0", private=True)
            env.install("clitool")
            assert env.run("clitool").stdout.strip() == "clitool says hi"
            # Not under pytest's tmp_path folders (no fixture gave them), but in a folder of the session's own.
            assert "isoenv-private-" in str(env.path)
            PRIVATE_PATHS.append(env.path)
        elif self.kind == "warm":
            env = factory.get("alpha==1.0", warm=True)
            assert env.spec.warm
            assert env.run("python", "-c", "import alpha; print(alpha.VERSION)").stdout.strip() == "1.0"
        elif self.kind == "bad":
            factory.get("alpha==1.0", editable=["./no-such-project"])

    def reportinfo(self):
        return self.path, 0, f"case {self.name}"


PRIVATE_PATHS = []


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".case":
        return CaseFile.from_parent(parent, path=file_path)


def pytest_unconfigure(config):
    # The private envs' folder goes with the session; the report checks it after the run.
    with open(os.environ["PRIVATE_PATHS_FILE"], "w") as out:
        out.write("\\n".join(map(str, PRIVATE_PATHS)))
"""


def test_custom_items_get_shared_private_and_warm_envs(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths_file = tmp_path / "private-paths"
    monkeypatch.setenv("PRIVATE_PATHS_FILE", str(paths_file))
    pytester.makeconftest(CUSTOM_ITEMS)
    pytester.path.joinpath("envs.case").write_text("shared shared\nprivate private\nwarm warm\n")
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=3)
    private = Path(paths_file.read_text())
    assert re.fullmatch("isoenv-[0-9a-f]{12}", private.name)
    # A folder the plugin made for the session alone: removed at its end, with the private env in it.
    assert not private.parent.parent.exists()


def test_a_custom_item_and_the_fixture_share_one_factory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_isoenv import get_factory

        def test_same(isoenv_factory, request):
            assert get_factory(request.config) is isoenv_factory
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_hook_gets_an_env_through_get_factory(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from pytest_isoenv import get_factory

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            factory = get_factory(config)
            config.alpha_version = factory.get("alpha==2.0").run(
                "python", "-c", "import alpha; print(alpha.VERSION)"
            ).stdout.strip()
        """
    )
    pytester.makepyfile("def test_it(request):\n    assert request.config.alpha_version == '2.0'\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_get_factory_before_configure_or_after_the_session_says_when_it_works(pytester: pytest.Pytester) -> None:
    with pytest.raises(pytest_isoenv.IsoEnvError, match=r"before the isoenv plugin configured the session.*runtest"):
        pytest_isoenv.get_factory(pytester.parseconfig())

    class Keep:
        config: pytest.Config | None = None

        def pytest_configure(self, config: pytest.Config) -> None:
            self.config = config

    keep = Keep()
    pytester.makepyfile("def test_it():\n    pass\n")
    pytester.inline_run(plugins=[keep]).assertoutcome(passed=1)
    assert keep.config is not None
    with pytest.raises(pytest_isoenv.IsoEnvError, match="after the session ended"):
        pytest_isoenv.get_factory(keep.config)


def test_get_factory_is_public_and_importing_the_package_does_not_import_pytest(pytester: pytest.Pytester) -> None:
    assert "get_factory" in pytest_isoenv.__all__
    code = "import sys, pytest_isoenv; assert 'pytest' not in sys.modules; assert callable(pytest_isoenv.get_factory)"
    assert pytester.run(sys.executable, "-c", code).ret == 0
