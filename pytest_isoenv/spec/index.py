"""Where packages come from: the session's index options, with an env's own added, and their part of the key.

The session sets them with ``--isoenv-index-url``, ``--isoenv-find-links`` and
``--isoenv-offline``; an env adds its own ``find_links=`` and ``index_url=``.
Every installer turns them into arguments of its install command (see
:mod:`pytest_isoenv.installers.api`).
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import Requirement

from pytest_isoenv.errors import SpecError
from pytest_isoenv.spec.envspec import EnvSpec


@dataclass(frozen=True)
class IndexOptions:
    """Where packages come from, as set by the plugin's own options."""

    index_url: str | None = None
    find_links: tuple[str, ...] = ()
    offline: bool = False

    def check_reachable(self, spec: EnvSpec, *, where: str | None = None) -> None:
        """Refuse, before anything is built, a requirement these options cannot fetch: a URL while offline."""
        if not self.offline:
            return
        if spec.index_url is not None:
            raise SpecError(
                f"index_url={spec.index_url!r} is an index, but installs are offline (--isoenv-offline)",
                where=where,
                fix="Put the packages in a find_links= folder instead, or run without --isoenv-offline",
            )
        for requirement in spec.requirements:
            url = Requirement(requirement).url
            if url and not url.startswith("file:"):
                raise SpecError(
                    f"requirement {requirement!r} needs the network, but installs are offline (--isoenv-offline)",
                    where=where,
                    fix="Put the package in an --isoenv-find-links folder and require it by name, or pass a local path",
                )

    def for_spec(self, spec: EnvSpec) -> IndexOptions:
        """These options with *spec*'s own added: its find-links besides the session's, its index instead."""
        if not spec.find_links and spec.index_url is None:
            return self
        return IndexOptions(
            index_url=spec.index_url or self.index_url,
            find_links=tuple(dict.fromkeys((*self.find_links, *spec.find_links))),
            offline=self.offline,
        )
