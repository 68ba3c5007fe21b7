"""The mailbox owner's addresses, from the directory through EWS ``ResolveNames``.

One ``ResolveNames`` request for the mailbox's primary SMTP address, in
Active Directory only, with ``ReturnFullContactData``: the directory entry
comes back as a contact whose ``EmailAddresses`` carry routing types
(``SMTP:`` for the primary address, ``smtp:`` for the others, ``SIP:``,
``X500:``...). The EWS schema has three keys for a contact's addresses
(``EmailAddress1`` to ``EmailAddress3``), so at most three are reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .account import ExchangeConnection
from .errors import Caller

__all__ = ["resolve_aliases", "smtp_addresses"]


def resolve_aliases(connection: ExchangeConnection, caller: Caller) -> tuple[str, ...]:
    """The SMTP addresses of the mailbox's directory entry, the primary first;
    ``()`` when the directory does not know the mailbox."""
    from exchangelib.errors import ErrorNameResolutionNoResults

    mailbox = str(connection.account.primary_smtp_address)

    def resolve() -> list[Any]:
        found = connection.protocol.resolve_names(
            [mailbox], return_full_contact_data=True, search_scope="ActiveDirectory"
        )
        for item in found:
            # exchangelib hands back an error of the answer as an item
            if isinstance(item, BaseException) and not isinstance(
                item, ErrorNameResolutionNoResults
            ):
                raise item
        return [item for item in found if not isinstance(item, BaseException)]

    addresses: dict[str, None] = {}
    for person, contact in caller("ResolveNames", resolve):
        primary = str(getattr(person, "email_address", "") or "")
        if primary.lower() != mailbox.lower():
            continue  # another directory entry that matched the name
        addresses[primary] = None
        entries = getattr(contact, "email_addresses", None) or ()
        addresses.update(dict.fromkeys(smtp_addresses(str(e.email or "") for e in entries)))
    return tuple(addresses)


def smtp_addresses(entries: Iterable[str]) -> list[str]:
    """The SMTP addresses among directory addresses (``SMTP:a@x``,
    ``smtp:b@x``, or bare); other routing types (``SIP:``, ``X500:``) are left out."""
    found = []
    for entry in entries:
        scheme, colon, address = entry.partition(":")
        if not colon:
            scheme, address = "smtp", entry
        if scheme.strip().lower() == "smtp" and "@" in address:
            found.append(address.strip())
    return found
