"""RFC 5322 bytes to ``Message`` values.

``parse_message`` never raises: a fast native parser reads ordinary mail and
the standard library takes over for anything it is not known to survive.
``headers``, ``parts`` and ``text`` hold the pieces it is built from.

``parse_message`` loads on first use: calendar code that needs only this
package's storable-value helpers does not import the mail parser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .parse import parse_message

__all__ = ["parse_message"]


def __getattr__(name: str) -> object:
    if name == "parse_message":
        from .parse import parse_message

        return parse_message
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
