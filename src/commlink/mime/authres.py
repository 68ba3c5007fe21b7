"""The receiving server's word on who sent a message: RFC 8601 Authentication-Results.

Anyone can write any address in From. The mailbox's own server checks the
sender's domain (SPF, DKIM, and DMARC, which ties them to the From domain)
and writes its verdict in an ``Authentication-Results`` header at the top of
the message, above every header that came with it. Only that topmost
header is read, and only a failure counts: a sender can forge a header
saying "pass" below the server's, or where the server writes none, but a
"fail" can only be the server's, or the sender's own about its own message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["MAX_RESULTS_CHARS", "SPOOF_METHODS", "failed_sender_check", "method_results"]

#: methods whose failure means the From domain did not send the message:
#: DMARC (RFC 7489) and Microsoft's composite authentication
SPOOF_METHODS = ("dmarc", "compauth")
#: how much of an Authentication-Results value is read
MAX_RESULTS_CHARS = 8192

# a comment holding no other comment
_INNER_COMMENT = re.compile(r"\([^()]*\)")
# comment nesting read with the expression above; deeper goes the slow way
_COMMENT_PASSES = 4
# "method[/version] = result" opening a resinfo (RFC 8601 §2.2)
_METHOD = re.compile(r"([A-Za-z0-9_-]+)\s*(?:/\s*[0-9]+\s*)?=\s*([A-Za-z0-9_-]+)")


def failed_sender_check(values: Sequence[str]) -> str | None:
    """The method (one of ``SPOOF_METHODS``) by which the topmost of a
    message's ``Authentication-Results`` values says its From domain did not
    send it; ``None`` when it says nothing of the kind."""
    if not values or "fail" not in values[0][:MAX_RESULTS_CHARS].lower():
        return None  # the common case, at the cost of one search
    results = method_results(values[0])
    for method in SPOOF_METHODS:
        if "fail" in results.get(method, ()):
            return method
    return None


def method_results(value: str) -> dict[str, list[str]]:
    """Each method's results in one ``Authentication-Results`` value, lower-cased.

    Comments and quoted strings are skipped; the authentication service id
    opening the value is optional (Exchange Online writes none); anything
    unreadable is passed over. At most ``MAX_RESULTS_CHARS`` are read.
    """
    results: dict[str, list[str]] = {}
    for part in _statements(value[:MAX_RESULTS_CHARS]):
        found = _METHOD.match(part)
        if found is not None:
            results.setdefault(found[1].lower(), []).append(found[2].lower())
    return results


def _statements(value: str) -> list[str]:
    """``value`` without comments, split at the semicolons outside quoted strings."""
    if '"' not in value and "\\" not in value:
        # the usual header: comments, nested a little, and no quoting
        for _ in range(_COMMENT_PASSES):
            if "(" not in value:
                return [part.strip() for part in value.split(";")]
            stripped = _INNER_COMMENT.sub("", value)
            if stripped == value:  # an unclosed comment runs to the end
                return [part.strip() for part in value.partition("(")[0].split(";")]
            value = stripped
    return _scanned(value)


def _scanned(value: str) -> list[str]:
    """``_statements`` read a character at a time: quoted strings, escapes,
    deep comments."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
            if not depth:
                current.append(char)
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            current.append(char)
            quoted = char != '"'
        elif char == "(":
            depth += 1
        elif depth:
            depth -= char == ")"
        elif char == '"':
            current.append(char)
            quoted = True
        elif char == ";":
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts
