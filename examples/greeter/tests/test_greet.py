"""The library, tested in-process as usual."""

from __future__ import annotations

import pytest
from greeter import greet, greet_all


def test_greet() -> None:
    assert greet("Ada") == "Hello, Ada!"
    assert greet(" Grace ", greeting="Hi") == "Hi, Grace!"


def test_greet_all_keeps_the_order() -> None:
    assert greet_all(["Ada", "Grace"]) == ["Hello, Ada!", "Hello, Grace!"]


def test_a_name_is_required() -> None:
    with pytest.raises(ValueError, match="needs a name"):
        greet("  ")
