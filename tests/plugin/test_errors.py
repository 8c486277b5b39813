"""Acceptance tests: an error a user causes reads the same through ``isoenv_factory.get()`` as through the marker."""

from __future__ import annotations

import pytest

BAD_EDITABLE = """
import pytest

@pytest.mark.isoenv("alpha", editable=["./no-such-project"])
def test_marker(isoenv):
    pass

def test_get(isoenv_factory):
    isoenv_factory.get("alpha", editable=["./no-such-project"])

@pytest.fixture(scope="session")
def broken_env(isoenv_factory):
    return isoenv_factory.get("alpha", editable=["./no-such-project"])

def test_fixture(broken_env):
    pass
"""


def test_a_bad_editable_path_through_get_shows_the_callers_line_and_no_frame_of_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_bad=BAD_EDITABLE)
    result = pytester.runpytest("--tb=long")
    result.assert_outcomes(failed=1, errors=2)
    problem = "editable path './no-such-project' does not exist (resolved to *)"
    result.stdout.fnmatch_lines(
        [
            f"{problem}* (in test_bad.py::test_marker)",
            '>       isoenv_factory.get("alpha", editable=["./no-such-project"])',
            f"E       pytest_isoenv.errors.SpecError: {problem}* (in test_bad.py::test_get)",
            "test_bad.py:*: SpecError",
        ]
    )
    result.stdout.fnmatch_lines([">       return isoenv_factory.get(*", f"E       *SpecError: {problem}*"])
    assert not [line for line in result.outlines if "pytest_isoenv/" in line or "pytest_isoenv\\" in line]


def test_a_malformed_python_is_refused_as_malformed_by_the_marker_and_by_get(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_python="""
        import pytest

        @pytest.mark.isoenv(python="3.1O")
        def test_marker(isoenv):
            pass

        def test_get(isoenv_factory):
            isoenv_factory.get(python="3.1O")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1, errors=1)
    malformed = "python='3.1O' is malformed: it is neither a version nor a path to an interpreter. Use a version *"
    result.stdout.fnmatch_lines([f"{malformed} (in test_python.py::test_marker)"])
    result.stdout.fnmatch_lines([f"E       *SpecError: {malformed} (in test_python.py::test_get)"])
    result.stdout.no_fnmatch_line("*too old*")


def test_a_custom_items_error_through_get_factory_reads_as_the_markers(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from pytest_isoenv import IsoEnvError, get_factory

        class CaseItem(pytest.Item):
            def runtest(self):
                get_factory(self.config).get("alpha", editable=["./no-such-project"])

        class PlainItem(CaseItem):
            pass

        class MessageItem(CaseItem):
            # As the reference's example does: the message alone, as the marker reports it.
            def repr_failure(self, excinfo):
                if excinfo.errisinstance(IsoEnvError):
                    return str(excinfo.value)
                return super().repr_failure(excinfo)

        class CaseFile(pytest.File):
            def collect(self):
                yield PlainItem.from_parent(self, name="plain")
                yield MessageItem.from_parent(self, name="message")

        def pytest_collect_file(parent, file_path):
            if file_path.suffix == ".case":
                return CaseFile.from_parent(parent, path=file_path)
        """
    )
    pytester.path.joinpath("bad.case").write_text("")
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    problem = "editable path './no-such-project' does not exist *"
    result.stdout.fnmatch_lines([f"E   *SpecError: {problem} (in bad.case::plain)"])
    result.stdout.fnmatch_lines([f"{problem} (in bad.case::message)", "*short test summary*"])
    # pytest shows a plain custom item's whole traceback, its own runner's frames too: of the plugin's
    # frames, only the one get() raises from is left.
    plugin_lines = [line for line in result.outlines if "pytest_isoenv/" in line]
    assert plugin_lines
    assert all("pytest_isoenv/factory.py:" in line for line in plugin_lines), plugin_lines
