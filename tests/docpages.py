"""Helpers of the documentation's tests: files from a page's blocks, its console output against a real run's,
its install lines by their parts."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pytest
from helpers import DocBlock

ROOT = Path(__file__).parent.parent

#: What the README's, the quickstart's and the migration guide's examples install.
EXAMPLE_REQUIREMENTS = ("requests>=2.28", "flask==3.*", "black==24.*", "setuptools>=77", "tabulate>=0.9")


class RunPytest(Protocol):
    """``run(folder, *args, env=None, installs=True)``: ``python -m pytest ARGS`` in *folder*, finished."""

    def __call__(
        self, folder: Path, *args: str, env: dict[str, str] | None = None, installs: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


def write_files(blocks: Sequence[DocBlock], folder: Path) -> list[Path]:
    """Write each ``file NAME`` block of *blocks* to *folder*/NAME; the paths written."""
    written = []
    for block in blocks:
        assert block.kind == "file", block
        path = folder / block.argument
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text, encoding="utf-8")
        written.append(path)
    return written


def normalised(line: str) -> str:
    """*line* with what differs between machines and runs (paths, durations, Python versions, spacing) made equal."""
    line = re.sub(r"(isoenv: cache )\S+,", r"\1<cache>,", line)
    line = re.sub(r"\b\d+(\.\d+)?s\b", "<time>", line)
    line = re.sub(r"\bpy3\.\d+\b", "py3.x", line)
    return " ".join(line.split())


def console_commands(block: DocBlock) -> list[list[str]]:
    """The commands (``$ ...`` lines) of a console block, split into arguments."""
    return [shlex.split(line[2:]) for line in block.text.splitlines() if line.startswith("$ ")]


def assert_shows(block: DocBlock, output: str) -> None:
    """Every ``isoenv`` line of the console *block* is in *output*, in the same order (``...`` stands for any lines)."""
    real = [normalised(line) for line in output.splitlines()]
    position = 0
    for line in block.text.splitlines():
        if not line.startswith("isoenv"):
            continue
        wanted = normalised(line)
        try:
            position = real.index(wanted, position) + 1
        except ValueError:
            pytest.fail(
                f"{block}: the page shows {line!r}, which the real run does not print (after line "
                f"{position}):\n{output}"
            )


def assert_install_command(block: DocBlock) -> None:
    """An install block names this project, with extras it has, through pip: it cannot run offline, so its parts
    are checked instead."""
    from packaging.requirements import Requirement

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

    with (ROOT / "pyproject.toml").open("rb") as stream:
        project = tomllib.load(stream)["project"]
    for line in block.text.splitlines():
        words = shlex.split(line)
        assert words[:4] == ["python", "-m", "pip", "install"], block
        requirement = Requirement(words[4])
        assert requirement.name == project["name"], block
        assert requirement.extras <= set(project["optional-dependencies"]), block


def shown(text: str, paths: dict[Path, str]) -> str:
    """*text* as the pages show it: each of *paths* as its stand-in, and what differs between runs made equal
    (env keys, durations, pids, Python and package versions)."""
    for path, stand_in in sorted(paths.items(), key=lambda item: -len(str(item[0]))):
        text = text.replace(str(path), stand_in)
    text = re.sub(r"\b[0-9a-f]{12,}\b", "<key>", text)
    text = re.sub(r"\b\d+(\.\d+)?s\b", "<time>", text)
    text = re.sub(r"(?<=[Pp]ython 3\.)\d+(\.\d+)?|(?<=python3\.)\d+|(?<=pip3\.)\d+", "x", text)
    text = re.sub(r"==\d+(\.\d+)*", "==<version>", text)
    return text


def assert_message(block: DocBlock, output: str, paths: dict[Path, str]) -> None:
    """Every line of the message *block* is in *output*, in order; ``...`` in a line stands for any text."""
    real = [" ".join(shown(line, paths).split()) for line in output.splitlines()]
    position = 0
    for line in block.text.splitlines():
        parts = [" ".join(shown(part, {}).split()) for part in line.split("...")]
        pattern = ".*".join(re.escape(part) for part in parts if part)
        for index in range(position, len(real)):
            if re.search(pattern, real[index]):
                position = index + 1
                break
        else:
            pytest.fail(f"{block}: the page shows {line!r}, which the real run does not print:\n{output}")
