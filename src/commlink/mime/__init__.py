"""RFC 5322 bytes to ``Message`` values.

``parse_message`` never raises: a fast native parser reads ordinary mail and
the standard library takes over for anything it is not known to survive.
``headers``, ``parts`` and ``text`` hold the pieces it is built from.
"""

from __future__ import annotations

from .parse import parse_message

__all__ = ["parse_message"]
