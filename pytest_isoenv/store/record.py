"""The completion record: the one file that says a generation of an env is complete, what it is and what is in it.

A build writes it last, so an env without one was never finished. It is the only
owner of its format: :meth:`Record.dump` writes it, :meth:`Record.load` reads it
and turns anything it cannot trust (missing, unreadable, of another format or key)
into a :class:`RecordProblem` whose message is the reason to rebuild.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_isoenv.store.fs import file_signature, tree_size, write_atomic

RECORD_NAME = "isoenv-record.json"
#: Bump when the record's content changes meaning; records of another format are rebuilt.
#: 3: the local sources of the env's distributions (:attr:`Built.sources`). A record without them is
#: rebuilt rather than taken for an env without sources: it may be the stale env the list exists to catch.
RECORD_FORMAT = 3


class RecordProblem(Exception):
    """Why a generation's record cannot be trusted; the message is the rebuild reason shown to users."""


@dataclass(frozen=True)
class Built:
    """What a build knows about the env it made: the builder's part of the record."""

    description: str
    """A short summary of the spec (``EnvSpec.describe()``)."""
    python_spec: str | None
    """The ``python=`` spec the env was asked for, or ``None`` for the running interpreter."""
    installer: str
    """The installer's name (``pip``, ``uv``)."""
    interpreter: dict[str, Any]
    """The base interpreter's identity (``Interpreter.key_material()``)."""
    base_executable: str
    """The base interpreter the env was made from, checked on every use."""
    python: str
    """The env's interpreter, relative to the env."""
    bin_dir: str
    """The env's scripts folder, relative to the env."""
    site_packages: str
    """The env's purelib folder, relative to the env."""
    packages: dict[str, str]
    """Canonical name to version of every distribution installed."""
    dist_infos: list[str]
    """The metadata folders of those distributions, relative to the env."""
    build_seconds: float
    """How long the build took."""
    resolution: str = "highest"
    """The resolution strategy it was built with (``--isoenv-resolution``)."""
    sources: list[dict[str, str | None]] = field(default_factory=list)
    """The local files and folders its distributions came from, with their digests at build time.

    See :mod:`pytest_isoenv.key.sources`: a reuse checks them, and a change builds the env anew.
    """


@dataclass(frozen=True)
class Record:
    """The completion record of one generation of an env: what was built, when, and how to check it is intact."""

    key: str
    path: Path
    """The generation's folder: the env itself (not stored; it is where the record was read from)."""
    built: Built
    run_id: str
    """The run that built it (every xdist worker of a run shares the id)."""
    created: float
    base_signature: list[int] | None
    """The base interpreter's file signature at build time."""
    site_packages_state: dict[str, list[int] | None] = field(repr=False)
    """site-packages as built: each name, with the signature of the ``RECORD`` file for metadata folders."""
    size: int | None = None
    """Bytes of the generation's files as built (:func:`~pytest_isoenv.store.fs.tree_size`), so that listing
    and pruning a cache of many envs need not walk each one; ``None`` in records written before it was kept."""

    @classmethod
    def complete(cls, key: str, path: Path, built: Built, run_id: str) -> Record:
        """The record of a build that just finished at *path*: what :meth:`problem` compares later is taken now."""
        return cls(
            key=key,
            path=path,
            built=built,
            run_id=run_id,
            created=time.time(),
            base_signature=file_signature(Path(built.base_executable)),
            site_packages_state=site_packages_state(path / built.site_packages),
            size=tree_size(path),
        )

    @property
    def python(self) -> Path:
        return self.path / self.built.python

    @property
    def bin_dir(self) -> Path:
        return self.path / self.built.bin_dir

    @property
    def site_packages(self) -> Path:
        return self.path / self.built.site_packages

    @property
    def generation(self) -> str:
        return self.path.name

    def dump(self) -> None:
        """Write the record into its generation, atomically: the last step of a build."""
        data = {
            "format": RECORD_FORMAT,
            "key": self.key,
            "run_id": self.run_id,
            "created": self.created,
            "base_signature": self.base_signature,
            "site_packages_state": self.site_packages_state,
            "size": self.size,
            "built": dataclasses.asdict(self.built),
        }
        write_atomic(self.path / RECORD_NAME, json.dumps(data, indent=2, sort_keys=True))
        # The record's mtime is when the env was last used (see Cache.touch): it starts at the creation
        # time, from the same clock, not the file system's coarser one that may lag it by a tick.
        os.utime(self.path / RECORD_NAME, (self.created, self.created))

    @classmethod
    def load(cls, path: Path, key: str, *, name_only: bool = False) -> Record:
        """The record of the generation at *path*, which must belong to *key*; :class:`RecordProblem` if not usable.

        With *name_only*, *key* is only the first digits of a key (an entry's name), which the record's must start with.
        """
        try:
            data = json.loads((path / RECORD_NAME).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordProblem("it has no completion record (an interrupted build)") from None
        except (OSError, ValueError) as exc:
            raise RecordProblem(f"its completion record is unreadable ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise RecordProblem(f"its completion record is of another format ({found!r}, expected {RECORD_FORMAT})")
        recorded = data.get("key")
        if not isinstance(recorded, str) or not (recorded.startswith(key) if name_only else recorded == key):
            raise RecordProblem("its completion record belongs to another key")
        try:
            return cls(
                key=recorded,
                path=path,
                built=Built(**data["built"]),
                run_id=str(data["run_id"]),
                created=float(data["created"]),
                base_signature=data["base_signature"],
                site_packages_state=dict(data["site_packages_state"]),
                size=int(data["size"]) if data.get("size") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordProblem(f"its completion record is incomplete ({exc!r})") from None

    def problem(self) -> str | None:
        """Why this env cannot be used as it is, found by cheap checks, or ``None`` if it can.

        A few ``stat`` calls and one directory listing: cheap enough for every use.
        """
        base = self.built.base_executable
        signature = file_signature(Path(base))
        if signature is None:
            return f"its base interpreter {base} was removed"
        if self.base_signature is not None and self.base_signature != signature:
            return f"its base interpreter {base} was replaced since the env was built (upgraded or reinstalled)"
        if not self.python.exists():
            return f"its interpreter {self.python} is missing"
        changed = self.site_packages_changes()
        if changed:
            return f"its site-packages {self.site_packages} changed since it was built ({changed})"
        # The listing above found every metadata folder that is directly in site-packages: only others need a look.
        site = Path(self.built.site_packages)
        missing = [d for d in self.built.dist_infos if Path(d).parent != site and not (self.path / d).exists()]
        if missing:
            return f"{len(missing)} installed distribution(s) are gone from it (e.g. {missing[0]})"
        return None

    def site_packages_changes(self) -> str | None:
        """What was installed, uninstalled or reinstalled in site-packages since the build, or ``None``."""
        now = site_packages_state(self.site_packages)
        recorded = self.site_packages_state
        added, removed = sorted(set(now) - set(recorded)), sorted(set(recorded) - set(now))
        # A reinstall of the same version keeps every name but writes a new RECORD file.
        rewritten = sorted(name for name in set(now) & set(recorded) if now[name] != recorded[name])
        parts = [f"added {', '.join(added)}"] if added else []
        parts += [f"removed {', '.join(removed)}"] if removed else []
        parts += [f"reinstalled {', '.join(rewritten)}"] if rewritten else []
        return "; ".join(parts) or None


def site_packages_state(site_packages: Path) -> dict[str, list[int] | None]:
    """The names in *site_packages* that installs change, each metadata folder with its ``RECORD``'s signature.

    Every install, uninstall or reinstall (also of the same version) writes a new
    ``RECORD`` file, so this sees all three with one listing and one ``stat`` per
    distribution. Bytecode caches are left out: they are not installs.
    """
    try:
        names = sorted(p.name for p in site_packages.iterdir() if p.name != "__pycache__")
    except OSError:
        return {}
    return {
        name: file_signature(site_packages / name / "RECORD") if name.endswith(".dist-info") else None for name in names
    }
