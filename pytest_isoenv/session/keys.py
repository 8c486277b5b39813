"""What identifies each spec's env in one session: its interpreter, its installer and its cache key."""

from __future__ import annotations

from collections.abc import Callable

from pytest_isoenv.discovery import Discovery, Interpreter
from pytest_isoenv.environ import host_environ
from pytest_isoenv.errors import SpecError
from pytest_isoenv.installers.api import Installer, InstallerDirs
from pytest_isoenv.installers.choice import lock_installer, select_installer
from pytest_isoenv.key.hashing import FileHashes
from pytest_isoenv.key.material import compute_key, spec_material
from pytest_isoenv.session.cache import SessionCache
from pytest_isoenv.session.settings import Settings
from pytest_isoenv.spec.envspec import EnvSpec


class EnvKeys:
    """The base interpreter, the installer and the cache key of each spec, each worked out once per session.

    *where* names the test in errors; by default, the test *current_test* tells.
    """

    def __init__(self, settings: Settings, cache: SessionCache, current_test: Callable[[], str | None]) -> None:
        self._settings = settings
        self._cache = cache
        self._current_test = current_test
        self._discovery: Discovery | None = None
        self._installers: dict[str | None, Installer] = {}
        self._keys: dict[EnvSpec, str] = {}
        self._hashes: FileHashes | None = None

    def key(self, spec: EnvSpec, *, where: str | None = None) -> str:
        """The cache key of *spec*: its content plus the interpreter, installer and index settings."""
        key = self._keys.get(spec)
        if key is None:
            where = where or self._current_test()
            # The installer first: an unknown name is refused before the cache is touched.
            installer = self.installer(spec, where=where)
            interpreter = self.interpreter(spec, where=where)
            unsupported = installer.unsupported(interpreter)
            if unsupported:
                raise SpecError(
                    f"python={spec.python!r} is {interpreter.implementation} {interpreter.version_text} at "
                    f"{interpreter.executable}, which the {installer.name} installer cannot make envs from: "
                    f"{unsupported}",
                    where=where,
                )
            try:
                installer.resolution_arguments(spec.resolution)
                installer.check_lock(spec)
            except SpecError as exc:
                raise SpecError(exc.problem, where=where, fix=exc.fix) from None
            hashes = self._file_hashes()
            if self._current_test() is not None:
                # A fixture may have built or rebuilt a wheel in a find-links folder since the last key was made:
                # keys made while tests run list the folders again. Collection's and the pre-build's share a listing.
                hashes.forget("dir")
            try:
                material = {
                    "spec": spec_material(spec, hashes),
                    "interpreter": interpreter.key_material(),
                    "installer": installer.key_material(self._settings.index.for_spec(spec), hashes),
                }
            except SpecError as exc:
                raise SpecError(exc.problem, where=where, fix=exc.fix) from None
            finally:
                hashes.save()
            key = self._keys[spec] = compute_key(material)
        return key

    @property
    def hashes(self) -> FileHashes:
        """The session's file hashes (see :meth:`_file_hashes`): the key's inputs and the envs' sources read them."""
        return self._file_hashes()

    def _file_hashes(self) -> FileHashes:
        """The session's file hashes, remembered in the cache root's ``hashes/`` between sessions."""
        if self._hashes is None:
            cache = self._cache.cache
            # Only into a cache that is pytest-isoenv's own: never a folder of the user's given by mistake.
            folder = cache.folder("hashes") if cache.is_ours() else None
            self._hashes = FileHashes(folder, cache_root=cache.root)
        return self._hashes

    @property
    def discovery(self) -> Discovery:
        """Finds the interpreters ``python=`` specs name, remembering what it learns in the cache root."""
        if self._discovery is None:
            self._discovery = Discovery(self._cache.ready().folder("py-info"), host_environ())
        return self._discovery

    def interpreter(self, spec: EnvSpec, *, where: str | None = None) -> Interpreter:
        """The base interpreter *spec* builds on."""
        return self.discovery.find(spec.python, where=where or self._current_test())

    def installer(self, spec: EnvSpec, *, where: str | None = None) -> Installer:
        """The installer *spec* uses (its own choice, or the session's)."""
        name = lock_installer(spec.installer or self._settings.installer) if spec.lock else None
        name = name or spec.installer or self._settings.installer
        if name not in self._installers:
            cache = self._cache.cache
            dirs = InstallerDirs(
                app_data=cache.folder("virtualenv"),
                uv_cache=cache.folder("uv"),
                root=cache.root,
                seeds=cache.folder("seeds"),
            )
            self._installers[name] = select_installer(name, dirs=dirs, where=where or self._current_test())
        return self._installers[name]

    def stop_installers(self) -> None:
        """Stop every installer subprocess running for this session (an interrupted prebuild)."""
        for installer in self._installers.values():
            installer.stop()
