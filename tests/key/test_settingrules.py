"""The rules of what counts, checked against the pip and uv installed now: no setting slips past the key.

Every setting counts by its value unless it is harmless, so what can slip is a
setting that names files or folders and counts only by their names. These tests
read the settings pip and uv know from their own help (``uv ... --help`` prints
``[env: UV_...]``; pip's install command lists its options, each also a
``PIP_*`` variable) and fail for such a setting that is neither counted by
content nor harmless, and for a harmless entry that neither installer knows: a
new release of either cannot change the rules unnoticed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import virtualenv

from pytest_isoenv.installers.uv import find_uv
from pytest_isoenv.key.settingrules import BY_CONTENT, HARMLESS, PIP_ALIASES, pip_variable
from pytest_isoenv.key.settings import pip_counts
from pytest_isoenv.key.uvconfig import uv_counts

# What an option's help says when its value names files or folders (for uv: or an index, or locations).
NAMES_FILES = re.compile(r"\b(files?|paths?|dir|director(?:y|ies)|urls?|locations?|index(?:es)?)\b", re.IGNORECASE)


def options(help_text: str) -> dict[str, str]:
    """The options of a ``--help`` text, each with the rest of its entry (value placeholder and description)."""
    found: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        option = re.match(r"^\s{2,}(?:-\w, )?(--[a-z][a-z0-9-]*)(.*)$", line)
        if option:
            current = option.group(1)
            found[current] = option.group(2)
        elif current is not None and line.startswith(" " * 6):
            found[current] += " " + line.strip()
        else:
            current = None
    return found


@pytest.fixture(scope="module")
def uv() -> Path:
    found = find_uv()
    if found is None:
        pytest.skip("uv is not installed")
    return found


@pytest.fixture(scope="module")
def uv_help(uv: Path) -> dict[str, str]:
    """The options of ``uv pip install`` and ``uv venv`` (the commands a build runs), by option."""
    found: dict[str, str] = {}
    for command in (["pip", "install"], ["venv"]):
        proc = subprocess.run([str(uv), *command, "--help"], capture_output=True, text=True, check=True)
        found.update(options(proc.stdout))
    return found


@pytest.fixture(scope="module")
def env_pip(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """How to run the pip an env is seeded with (virtualenv's), which the rules are for, not the host's own."""
    created = virtualenv.cli_run([str(tmp_path_factory.mktemp("seeded")), "--no-setuptools", "--no-wheel", "-q"])
    return [str(created.creator.exe), "-m", "pip"]


@pytest.fixture(scope="module")
def pip_help(env_pip: list[str]) -> dict[str, str]:
    """The options of ``pip install``, by option."""
    proc = subprocess.run([*env_pip, "install", "--help"], capture_output=True, text=True, check=True)
    return options(proc.stdout)


def uv_variables(uv_help: dict[str, str]) -> dict[str, str]:
    """The ``UV_*`` variables uv's help names, each with its option's entry."""
    found = {}
    for entry in uv_help.values():
        variable = re.search(r"\[env:\s*[`\"]?(UV_[A-Z0-9_]+)", entry)
        if variable:
            found[variable.group(1)] = entry
    return found


def test_every_uv_setting_that_names_files_counts_by_content_or_is_harmless(uv_help: dict[str, str]) -> None:
    naming_files = [
        variable
        for variable, entry in uv_variables(uv_help).items()
        # A value (a placeholder), not one of a fixed set, and the help says it names files, folders or indexes.
        if entry.lstrip().startswith("<")
        and "[possible values" not in entry
        and NAMES_FILES.search(entry.split("[env:")[0])
    ]
    assert "UV_CONSTRAINT" in naming_files, f"uv's help was not read as expected: {sorted(uv_help)}"
    slipping = [v for v in naming_files if v not in BY_CONTENT and uv_counts(v)]
    assert slipping == [], (
        f"uv settings that name files or folders count only by their names: {slipping}. "
        "Count them by content (settingrules.BY_CONTENT) or list them as harmless, with the reason"
    )


def test_every_pip_setting_that_names_files_counts_by_content_or_is_harmless(pip_help: dict[str, str]) -> None:
    naming_files = []
    for option, entry in pip_help.items():
        placeholder = re.match(r"\s*<([^>]*)>", entry)
        if placeholder and NAMES_FILES.search(placeholder.group(1)):
            naming_files.append(pip_variable(option))
    assert "PIP_CONSTRAINT" in naming_files, f"pip's help was not read as expected: {sorted(pip_help)}"
    slipping = [v for v in naming_files if v not in BY_CONTENT and pip_counts(v)]
    assert slipping == [], (
        f"pip settings that name files or folders count only by their names: {slipping}. "
        "Count them by content (settingrules.BY_CONTENT) or list them as harmless, with the reason"
    )


#: What constraints/lowest.txt pins: the oldest versions the plugin supports, by project.
LOWEST = dict(
    line.strip().split("==", 1)
    for line in (Path(__file__).parents[2] / "constraints" / "lowest.txt").read_text().splitlines()
    if "==" in line and not line.startswith("#")
)
#: Whether the pip envs are seeded with is the oldest supported: the lowest virtualenv's (CI's lowest-versions run).
OLDEST_PIP = virtualenv.__version__ == LOWEST["virtualenv"]


def _version(uv: Path) -> str:
    """The version ``uv --version`` prints (``uv 0.6.7``, perhaps followed by a build note)."""
    return subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=True).stdout.split()[1]


def test_every_harmless_setting_is_one_the_installers_know(
    uv: Path, uv_help: dict[str, str], pip_help: dict[str, str]
) -> None:
    # uv's help lists the variables of options; the others (timeouts, parallelism) are named in its executable.
    executable = uv.read_bytes()
    known_to_uv = set(uv_variables(uv_help))
    known_to_pip = {pip_variable(option) for option in pip_help}
    unknown = [
        name
        for name in HARMLESS
        if not (name in known_to_pip or name in known_to_uv or (name.startswith("UV_") and name.encode() in executable))
    ]
    # The oldest uv and pip supported (CI's lowest-versions run) cannot know the settings of later releases.
    oldest = ("UV_",) * (_version(uv) == LOWEST["uv"]) + ("PIP_",) * OLDEST_PIP
    unknown = [name for name in unknown if not name.startswith(oldest)]
    assert unknown == [], f"harmless settings neither pip nor uv knows (any more): {unknown}; remove them"
    assert all(reason for reason in HARMLESS.values())
    unknown = [
        name
        for name in BY_CONTENT
        if name not in known_to_pip and name not in known_to_uv and not name.startswith(oldest)
    ]
    assert unknown == [], f"settings counted by content that neither pip nor uv knows (any more): {unknown}"


@pytest.mark.parametrize("alias", sorted(PIP_ALIASES))
def test_pip_aliases_are_options_pip_accepts(alias: str, env_pip: list[str], tmp_path: Path) -> None:
    # An option pip does not know is a usage error; with a known one, --help prints the help and succeeds.
    # In a folder of its own: an option that takes a file (--log) takes "--help" as its name and writes it.
    codes = [
        subprocess.run(
            [*env_pip, "install", *argument, "--help"],
            capture_output=True,
            check=False,
            cwd=tmp_path,
        ).returncode
        for argument in ([f"--{alias}=1"], [f"--{alias}"])
    ]
    # The oldest pip supported may not know an option of a later release: an alias of it then never applies.
    assert 0 in codes or OLDEST_PIP, f"pip install does not accept --{alias}: remove it from PIP_ALIASES"
