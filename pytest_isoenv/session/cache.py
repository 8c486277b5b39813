"""The cache as one session uses it: made ready once, when first needed, its errors naming the test being run."""

from __future__ import annotations

from collections.abc import Callable

from pytest_isoenv.errors import CacheError, in_test
from pytest_isoenv.store.cache import Cache


class SessionCache:
    """The session's cache root, created, tagged and checked the first time an env or an interpreter needs it.

    A cache error does not know which test met it: :meth:`located` names the
    test *current_test* tells.
    """

    def __init__(self, cache: Cache, current_test: Callable[[], str | None]) -> None:
        self.cache = cache
        self._current_test = current_test
        self._ready = False

    def ready(self) -> Cache:
        """The cache, made ready first if it was not yet; a :class:`CacheError` naming the test if it cannot be."""
        if not self._ready:
            try:
                self.cache.ensure()
            except CacheError as exc:
                raise self.located(exc) from None
            self._ready = True
        return self.cache

    def located(self, exc: CacheError) -> CacheError:
        """*exc* with the test it happened in named first (cache errors do not know it)."""
        where = self._current_test()
        return CacheError(in_test(str(exc), where)) if where else exc
