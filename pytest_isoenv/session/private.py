"""Private envs: a copy of the cached shared env that one test may change, and installs into it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_isoenv.errors import SpecError
from pytest_isoenv.run.env import IsolatedEnv
from pytest_isoenv.run.privatecopy import copy_env
from pytest_isoenv.run.privatecopy import unsupported as private_envs_unsupported
from pytest_isoenv.session.build import env_from_record, labelled_echo
from pytest_isoenv.session.keys import EnvKeys
from pytest_isoenv.session.shared import SharedEnvs
from pytest_isoenv.spec.arguments import bind_options
from pytest_isoenv.spec.envspec import EnvSpec
from pytest_isoenv.spec.index import IndexOptions
from pytest_isoenv.text import LineSink

if TYPE_CHECKING:
    from pytest_isoenv.run.coverage import Measurement


class PrivateEnvs:
    """Makes each private env from the cached shared env of its spec (built first if need be), never from the index.

    *root* makes a new folder for each; *make_spec* turns what a test installs
    into a private env into a spec, as the session turns any env's arguments;
    *echo* is told the installers' output.
    """

    def __init__(
        self,
        shared: SharedEnvs,
        keys: EnvKeys,
        index: IndexOptions,
        *,
        root: Callable[[], Path] | None,
        make_spec: Callable[..., EnvSpec],
        current_test: Callable[[], str | None],
        echo: LineSink | None = None,
        coverage: Measurement | None = None,
    ) -> None:
        self._shared = shared
        self._keys = keys
        self._index = index
        self._root = root
        self._make_spec = make_spec
        self._current_test = current_test
        self._echo = echo
        self._coverage = coverage

    def get(self, spec: EnvSpec) -> IsolatedEnv:
        """A new changeable env of *spec* of the caller's own."""
        if self._root is None:
            raise RuntimeError("private envs need a folder: pass private_root to SessionEnvs")
        unsupported = private_envs_unsupported()
        if unsupported:
            raise SpecError(
                unsupported,
                where=self._current_test(),
                fix="Use a shared env, or skip the test on Windows (see the Windows and macOS page of the docs)",
            )
        shared = self._shared.get(dataclasses.replace(spec, private=False))
        # Named after the cached env it copies: a name no other path holds, which a test may look for.
        path = self._root() / f"isoenv-{shared.key[:12]}"
        # A copy of the cached env, its paths fixed: with uv too, as linking the files in-process is
        # several times faster than two uv runs that link the same files from uv's cache.
        copy_env(shared.path, path, bin_dir=shared.bin_dir, site_packages=shared.site_packages)
        # The record's paths are relative to the env, so they hold for the copy as well.
        record = self._shared.record(shared.key)
        assert record is not None  # the shared env was just handed out, with its record
        return env_from_record(record, path, spec, coverage=self._coverage, installs=self._install_into)

    def _install_into(self, env: IsolatedEnv, requirements: Sequence[object], editable: Sequence[object]) -> None:
        # What install() was given is not typed: its values are checked as a marker's are.
        spec = self._make_spec(requirements, session=False, **bind_options({"editable": list(editable)}, None))
        installer = self._keys.installer(env.spec)
        with installer.keeping_pip_image(env.site_packages):
            installer.install(
                env.python,
                spec,
                self._index.for_spec(env.spec),
                log=env.path.with_name(f"{env.path.name}.log"),
                environ=env.environ,
                echo=labelled_echo(self._echo, f"private {env.spec.describe()}"),
            )
