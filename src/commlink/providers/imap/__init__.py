"""IMAP mailboxes (imapclient): CONDSTORE/QRESYNC incremental sync, IDLE.

``provider`` is the ``MailProvider``; ``connection`` logs in and selects;
``responses`` reads what the server answers (cursors, UID sets, folders);
``idle`` waits for new mail.
"""

from __future__ import annotations

from .connection import ImapSettings
from .provider import ImapProvider

__all__ = ["ImapProvider", "ImapSettings"]
