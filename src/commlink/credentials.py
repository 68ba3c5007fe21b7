"""Keeping secrets out of sight: a ``Secret`` that never shows its value,
and redaction for URLs, text and log records.

Passwords, tokens and client secrets travel as ``Secret`` until the moment
they are handed to a client library (``reveal()``). Their ``repr`` and
``str`` are masked, so a configuration, an exception or a log line that
holds one prints ``'***'``. ``RedactingFilter`` scrubs what slips through
elsewhere (a third-party library's DEBUG log of an ``Authorization``
header, a URL with credentials in it) from log records.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "MASK",
    "RedactingFilter",
    "Secret",
    "COMMLINK_LOGGERS",
    "guard_loggers",
    "install_log_redaction",
    "is_loopback_host",
    "redact_text",
    "redact_url",
    "reveal",
]

MASK = "***"


class Secret:
    """A secret value: masked in ``repr``, ``str`` and formatting.

    ``reveal()`` returns the value for the one call that needs it. Every
    revealed value is remembered (by the process, not written anywhere) so
    that ``RedactingFilter`` can scrub it from log records.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        _remember(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled; pass it by reference")


def reveal(value: str | Secret | None) -> str | None:
    """The plain value of a ``Secret`` (a plain string passes through)."""
    return value.reveal() if isinstance(value, Secret) else value


_known: set[str] = set()
# re-entrant: a log record can be emitted while the lock is held (a garbage
# collected object's ``__del__`` logging from inside ``redact_text``), and the
# filter then calls ``redact_text`` again on the same thread
_known_lock = threading.RLock()
_MIN_SECRET = 4  # shorter values would scrub ordinary words out of log lines


def _remember(value: str) -> None:
    if len(value) >= _MIN_SECRET:
        with _known_lock:
            _known.add(value)


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` names this machine: ``localhost``, 127.0.0.0/8 or ``::1``.

    Plaintext connections are allowed to these without ``allow_plaintext``
    (tests, local bridges such as Proton Mail Bridge or DavMail)."""
    if not host:
        return False
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """``url`` without the user name and password it may carry."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# Credentials as they appear in headers, URLs and key=value text.
_PATTERNS = (
    (re.compile(r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?)(basic|bearer|ntlm|negotiate)\s+"
                r"[^\s'\",}]+"),
     rf"\1\2 {MASK}"),
    (re.compile(r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?)(?!basic|bearer|ntlm|negotiate)"
                r"[^\s'\",}]+"),
     rf"\1{MASK}"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|client_secret|access_token|"
                r"refresh_token|token|code_verifier|client_assertion)(['\"]?\s*[:=]\s*['\"]?)"
                r"[^\s'\",&}]+"),
     rf"\1\2{MASK}"),
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), rf"\1{MASK}@"),
    (re.compile(r"(?i)\b(LOGIN\s+\S+\s+)(\"(?:[^\"\\]|\\.)*\"|\S+)"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(AUTHENTICATE\s+(?:PLAIN|XOAUTH2|OAUTHBEARER)\s+)\S+"), rf"\1{MASK}"),
)  # fmt: skip


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with credentials masked: every ``Secret`` value seen so far,
    the given ``secrets``, and credential-shaped text (``Authorization:``
    headers, ``password=...``, ``user:pass@`` in URLs, IMAP ``LOGIN``)."""
    with _known_lock:
        known = sorted({*_known, *(s for s in secrets if len(s) >= _MIN_SECRET)}, key=len)
    for value in reversed(known):
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks credentials in every record it passes.

    Attach it to a handler (``handler.addFilter(RedactingFilter())``), or use
    ``install_log_redaction()`` for the root logger's handlers: handler
    filters see the records of every logger, third-party ones included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what can be shown
            message = str(record.msg)
        cleaned = redact_text(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add a ``RedactingFilter`` to every handler of ``logger`` (the root
    logger by default); returns the filter."""
    target = logger or logging.getLogger()
    found = RedactingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(found)
    return found


#: Every logger commlink logs through. Each carries a ``RedactingFilter`` of
#: its own (``guard_loggers``), so its records, tracebacks included, are
#: scrubbed before any handler sees them, whether or not the host installed
#: ``install_log_redaction``.
COMMLINK_LOGGERS = (
    "commlink",
    "commlink.auth",
    "commlink.celery",
    "commlink.cli",
    "commlink.contrib.django",
    "commlink.events",
    "commlink.exchange",
    "commlink.imap",
    "commlink.providers.background",
    "commlink.providers.google",
    "commlink.providers.google.calendar",
    "commlink.providers.google.gmail",
    "commlink.providers.microsoft.graph",
    "commlink.providers.retry",
    "commlink.push",
    "commlink.runner",
    "commlink.stores",
    "commlink.sync",
    "commlink.watch",
)


def guard_loggers(names: Iterable[str] = COMMLINK_LOGGERS) -> None:
    """Attach a ``RedactingFilter`` to each named logger (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
