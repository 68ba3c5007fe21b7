"""``with`` support for objects that hold connections, pools or threads.

Mix ``Closing`` into a class with ``close()``, or ``Stopping`` into one with
``stop()``: ``with`` then returns the object itself and releases it on exit,
also when the body raises (the exception is never swallowed).
"""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["Closing", "Stopping"]

_T = TypeVar("_T")


class _Released:
    __slots__ = ()

    def _release(self) -> None:
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()


class Closing(_Released):
    """``with obj:`` yields ``obj`` and calls ``obj.close()`` on exit."""

    __slots__ = ()

    def close(self) -> None:
        """Release what the object holds (subclasses override)."""

    def _release(self) -> None:
        self.close()


class Stopping(_Released):
    """``with obj:`` yields ``obj`` and calls ``obj.stop()`` on exit."""

    __slots__ = ()

    def stop(self) -> None:
        """Stop what the object runs (subclasses override)."""

    def _release(self) -> None:
        self.stop()
