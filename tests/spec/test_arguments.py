"""The one definition of the marker's and get()'s keywords, and the binding that refuses any other."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from pytest_isoenv.errors import SpecError
from pytest_isoenv.factory import IsoEnvFactory
from pytest_isoenv.spec.arguments import EnvOptions, bind_options, keywords, signature
from pytest_isoenv.spec.envspec import EnvSpec

WHERE = "tests/test_x.py::test_y"


def test_every_keyword_has_a_default_and_a_description() -> None:
    assert list(keywords()) == list(EnvOptions.__annotations__)
    for name, keyword in keywords().items():
        assert keyword.doc.strip().endswith("."), name
    assert signature() == (
        "*requirements, editable=(), constraints=None, requirements_files=(), groups=(), lock=None, python=None, "
        "private=False, installer=None, find_links=(), index_url=None, warm=False, preload=()"
    )


def test_the_defaults_are_what_an_omitted_keyword_means(tmp_path: Path) -> None:
    given = {name: keyword.default for name, keyword in keywords().items()}
    assert EnvSpec.from_arguments(rootdir=tmp_path, **bind_options(given, WHERE)) == EnvSpec.from_arguments(
        rootdir=tmp_path
    )


def test_get_and_from_arguments_take_the_definition_and_nothing_else() -> None:
    """Their keywords are :class:`EnvOptions`, not a copy of it: ``get(*requirements, **options)``."""
    for function in (IsoEnvFactory.get, EnvSpec.from_arguments):
        kinds = {p.name: p.kind for p in inspect.signature(function).parameters.values()}
        assert kinds["options"] is inspect.Parameter.VAR_KEYWORD
        assert set(kinds) & set(keywords()) == set(), function


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"editables": ["."]}, r"'editables': editables=\['\.'\] \(did you mean editable\?\)"),
        ({"colour": "red"}, r"'colour': colour='red'\. "),
        ({"pyhton": "3.12", "warm": True}, r"'pyhton': pyhton='3\.12' \(did you mean python\?\)"),
    ],
)
def test_an_unknown_keyword_names_the_test_the_value_and_the_accepted_ones(
    given: dict[str, object], expected: str
) -> None:
    with pytest.raises(SpecError) as info:
        bind_options(given, WHERE)
    message = str(info.value)
    assert message.startswith("unknown isoenv argument(s) ")
    assert message.endswith(f"The accepted keyword arguments are: {', '.join(keywords())} (in {WHERE})")
    assert re.search(expected, message), message  # the value as given, and the name it is closest to


def test_from_arguments_refuses_an_unknown_keyword_as_the_binding_does() -> None:
    with pytest.raises(SpecError) as bound:
        bind_options({"editables": ["."]}, WHERE)
    with pytest.raises(SpecError) as direct:
        EnvSpec.from_arguments(rootdir=Path("/"), where=WHERE, **{"editables": ["."]})  # type: ignore[arg-type]
    assert str(direct.value) == str(bound.value)
