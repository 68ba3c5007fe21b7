"""``ImapAccount``: a fresh user on a private IMAP test server (Dovecot,
Cyrus), with providers for it and a second session that changes the mailbox
behind their back. It serves as the harness of ``MailProviderConformance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..providers.imap.provider import ImapProvider

__all__ = ["ImapAccount", "ImapTestServer"]


class ImapTestServer(Protocol):
    """What ``ImapAccount`` needs of a server launcher."""

    host: str
    port: int
    password: str

    def add_user(self, username: str) -> None:
        """Make ``username`` able to log in with the server's ``password``."""
        ...


class ImapAccount:
    """A user of a running test server: ``provider`` (and more from
    ``new_provider``), and ``admin``, an imapclient session of the same user.

    Every change goes through IMAP (APPEND, STORE, EXPUNGE, MOVE), so the
    account works the same on every server.
    """

    def __init__(self, server: ImapTestServer, username: str) -> None:
        import imapclient

        self.server = server
        self.username = username
        self.password = server.password
        self.providers: list[ImapProvider] = []
        server.add_user(username)
        self.provider = self.new_provider()
        self.admin: Any = imapclient.IMAPClient(server.host, server.port, ssl=False)
        self.admin.login(username, self.password)

    def new_provider(self, **options: Any) -> ImapProvider:
        """An ``ImapProvider`` for this account (closed by ``close()``)."""
        from ..providers.imap.provider import ImapProvider

        settings: dict[str, Any] = {"username": self.username, "password": self.password}
        settings.update(options)
        provider = ImapProvider(self.server.host, self.server.port, ssl=False, **settings)
        self.providers.append(provider)
        return provider

    def refused_provider(self) -> ImapProvider:
        """A provider for this account with a wrong password."""
        return self.new_provider(password=f"not-{self.password}")

    def add(self, folder_id: str, raw: bytes, flags: Sequence[bytes] = ()) -> None:
        """APPEND a message."""
        self.admin.append(folder_id, raw, flags=tuple(flags))

    def uids(self, folder_id: str, message_id: str) -> list[int]:
        """UIDs of the messages with this Message-ID (no angle brackets)."""
        self.admin.select_folder(folder_id)
        return [int(u) for u in self.admin.search(["HEADER", "Message-ID", f"<{message_id}>"])]

    def delete(self, folder_id: str, message_id: str) -> None:
        """Expunge the messages with this Message-ID."""
        uids = self.uids(folder_id, message_id)
        if not uids:
            raise LookupError(f"{message_id} not in {folder_id}")
        self.admin.delete_messages(uids)
        self.admin.expunge()
        self.admin.close_folder()

    def inbox(self) -> str:
        return "INBOX"

    def close(self) -> None:
        for provider in self.providers:
            provider.close()
        try:
            self.admin.logout()
        except Exception:
            self.admin.shutdown()
