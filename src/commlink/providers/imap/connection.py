"""One IMAP connection: connect, TLS, login, ENABLE, and errors mapped at the edge.

``ImapConnection.call`` runs one command (after selecting a folder when
asked), reconnects once when the connection dropped, and translates every
imapclient/imaplib/socket exception into commlink's error tree.
``ImapConnection.stream_uid`` sends a UID command itself and reads its
responses as they arrive (``fetch_stream``), bypassing imaplib's
collection of untagged responses.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl as ssl_module
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import attrs

from ...closing import Closing
from ...credentials import Secret, is_loopback_host
from ...errors import AuthError, ConfigError, NotFound, ProviderError, TransientError
from .fetch_stream import CommandRefused, ConnectionLost, Fetch, ResponseReader, Vanished
from .fetch_stream import command_responses as _command_responses

__all__ = ["DROPPED", "ImapConnection", "ImapSettings", "OAuth2Token", "Selected"]

#: An XOAUTH2 access token: fixed, or a callable asked at every login (a
#: token source that refreshes, so a reconnect after expiry gets a new token).
OAuth2Token = str | Secret | Callable[[], str]

log = logging.getLogger("commlink.imap")

T = TypeVar("T")

_DROPPED = (OSError, EOFError, imaplib.IMAP4.abort, ssl_module.SSLError)
#: What a lost connection raises, from imaplib or from a streamed command.
DROPPED = (*_DROPPED, ConnectionLost)


@attrs.frozen(slots=True)
class ImapSettings:
    """How to reach and log in to an IMAP server."""

    host: str
    port: int
    username: str
    password: str | None = attrs.field(default=None, repr=False)
    oauth2_token: OAuth2Token | None = attrs.field(default=None, repr=False)
    ssl: bool = True
    starttls: bool = False
    verify: bool = True
    timeout: float = 30.0
    allow_plaintext: bool = False

    def ssl_context(self) -> ssl_module.SSLContext:
        context = ssl_module.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl_module.CERT_NONE
        return context


@attrs.frozen(slots=True)
class Selected:
    """The state a read-only SELECT (EXAMINE) reported."""

    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int


class ImapConnection(Closing):
    """A lazily opened, reconnecting IMAP connection.

    ``round_trips`` counts the commands sent after login (for tests and
    benchmarks of quiet passes); ``literal_bytes`` the bytes of literals
    (message bodies and headers) read by streamed commands.
    """

    def __init__(self, settings: ImapSettings) -> None:
        if settings.password is None and settings.oauth2_token is None:
            raise ConfigError("a password or an OAuth2 token is needed", field="password")
        if settings.ssl and settings.starttls:
            raise ConfigError("use either ssl or starttls", field="starttls")
        if not (settings.ssl or settings.starttls or settings.allow_plaintext) and not (
            is_loopback_host(settings.host)
        ):
            raise ConfigError(
                f"refusing to log in to {settings.host} without TLS: the credentials would "
                "travel in clear; use ssl or starttls (or set allow_plaintext=True)",
                field="ssl",
            )
        self.settings = settings
        self.client: Any = None
        self.capabilities: frozenset[str] = frozenset()
        self.selected: Selected | None = None
        self.round_trips = 0
        self.literal_bytes = 0
        self.connects = 0
        self._tags = 0

    # -- lifecycle -------------------------------------------------------------

    def open(self) -> Any:
        """The logged-in ``IMAPClient``, connecting when needed."""
        if self.client is not None:
            return self.client
        try:
            from imapclient import IMAPClient
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "the IMAP provider needs imapclient: pip install commlink[imap]"
            ) from exc
        s = self.settings
        token = self._oauth2_token()  # first: a refresh that fails leaves no socket behind
        try:
            client = IMAPClient(
                s.host,
                port=s.port,
                ssl=s.ssl,
                ssl_context=s.ssl_context() if s.ssl else None,
                timeout=s.timeout,
            )
        except (*_DROPPED, imaplib.IMAP4.error) as exc:
            raise TransientError(f"cannot connect to {s.host}:{s.port}: {exc}") from exc
        client.normalise_times = False
        # imapclient turns imaplib's debug output on (level 5): imaplib then
        # formats every response, message bodies included, for a logger that
        # usually drops it; that was a third of a full sync's time
        client._imap.debug = 0
        try:
            if s.starttls:
                client.starttls(s.ssl_context())
            self._login(client, token)
            caps = {c.decode().upper() if isinstance(c, bytes) else str(c).upper()
                    for c in client.capabilities()}  # fmt: skip
            if "ENABLE" in caps and "QRESYNC" in caps:
                client.enable("QRESYNC")
            elif "ENABLE" in caps and "CONDSTORE" in caps:
                client.enable("CONDSTORE")
        except ProviderError:  # refused, or a token source that failed
            _shutdown(client)
            raise
        except (*_DROPPED, imaplib.IMAP4.error) as exc:
            _shutdown(client)
            raise TransientError(f"IMAP session set-up failed: {exc}") from exc
        self.capabilities = frozenset(caps)
        self.client = client
        self.selected = None
        self.connects += 1
        return client

    def _oauth2_token(self) -> str | None:
        """The XOAUTH2 token for this login (asked afresh from a callable)."""
        token = self.settings.oauth2_token
        if isinstance(token, Secret):
            return token.reveal()
        if callable(token):
            return token()
        return token

    def _login(self, client: Any, token: str | None) -> None:
        s = self.settings
        renew = getattr(s.oauth2_token, "refresh", None)  # a token source
        try:
            if token is not None and renew is not None:
                try:
                    client.oauth2_login(s.username, token)
                except imaplib.IMAP4.abort:
                    raise
                except imaplib.IMAP4.error:
                    # refused before its expiry (revoked): one new token, or
                    # the source's own error (a revoked grant says so)
                    client.oauth2_login(s.username, renew(token))
            elif token is not None:
                client.oauth2_login(s.username, token)
            else:
                client.login(s.username, s.password or "")
        except imaplib.IMAP4.abort as exc:
            raise TransientError(f"connection lost during login: {exc}") from exc
        except imaplib.IMAP4.error as exc:
            raise AuthError(f"IMAP login refused for {s.username}: {exc}") from exc

    def drop(self) -> None:
        """Forget the connection without a goodbye (it is broken)."""
        client, self.client, self.selected = self.client, None, None
        if client is not None:
            _shutdown(client)

    def close(self) -> None:
        """LOGOUT, then close the socket."""
        client, self.client, self.selected = self.client, None, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # a goodbye that fails changes nothing
            log.debug("IMAP logout failed", exc_info=True)
            _shutdown(client)

    # -- commands --------------------------------------------------------------

    def has(self, capability: str) -> bool:
        self.open()
        return capability.upper() in self.capabilities

    def call(
        self, command: Callable[[Any], T], *, folder: str | None = None, counted: bool = True
    ) -> T:
        """Run ``command(client)``, EXAMINE-ing ``folder`` first when given
        (unless already selected); reconnects and retries once when the
        connection drops. ``counted=False``: the command counts its round
        trips itself (``stream_uid`` does)."""
        for attempt in (1, 2):
            client = self.open()
            try:
                if folder is not None and (self.selected is None or self.selected.name != folder):
                    self._examine(client, folder)
                self.round_trips += counted
                return command(client)
            except DROPPED as exc:
                self.drop()
                if attempt == 2:
                    raise TransientError(f"IMAP connection lost: {exc}") from exc
                log.info("IMAP connection lost (%s); reconnecting", exc)
            except imaplib.IMAP4.error as exc:
                raise _refused(exc, folder) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def examine(self, folder: str) -> Selected:
        """A fresh read-only SELECT of ``folder`` (never sets \\Seen)."""
        for attempt in (1, 2):
            client = self.open()
            try:
                return self._examine(client, folder)
            except DROPPED as exc:
                self.drop()
                if attempt == 2:
                    raise TransientError(f"IMAP connection lost: {exc}") from exc
            except imaplib.IMAP4.error as exc:
                raise _refused(exc, folder) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _examine(self, client: Any, folder: str) -> Selected:
        self.selected = None
        self.round_trips += 1
        try:
            response = client.select_folder(folder, readonly=True)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            raise NotFound(f"cannot open folder {folder!r}: {exc}") from exc
        self.selected = Selected(
            folder,
            _int(response, b"UIDVALIDITY"),
            _int(response, b"UIDNEXT"),
            _int(response, b"EXISTS"),
            _int(response, b"HIGHESTMODSEQ"),
        )
        return self.selected

    def deselect(self, client: Any) -> None:
        """Leave the selected folder (UNSELECT, or CLOSE, which expunges nothing
        in a folder opened read-only). Dovecot answers STATUS on the selected
        folder from the session's own, possibly stale, view."""
        if self.selected is None:
            return
        self.selected = None
        self.round_trips += 1
        if "UNSELECT" in self.capabilities:
            client.unselect_folder()
        else:
            client.close_folder()

    def stream_uid(
        self, client: Any, command: str, *args: str, max_literal: int
    ) -> Iterator[Fetch | Vanished]:
        """``UID <command> args``, its FETCH and VANISHED responses handed out
        as each completes (literals above ``max_literal`` bytes are dropped,
        see ``fetch_stream``). A command left unfinished, or one whose
        responses could not be read, drops the connection: it is out of step."""
        imap = client._imap
        # imaplib's tags are upper-case letters and digits: these never collide
        self._tags += 1
        tag = b"cl%d" % self._tags
        line = " ".join(("UID", command, *args))
        self.round_trips += 1
        imap.send(tag + b" " + line.encode("ascii") + b"\r\n")
        reader = ResponseReader(_ImaplibStream(imap), max_literal=max_literal)
        finished = False
        try:
            yield from _command_responses(reader, tag)
            finished = True
        except CommandRefused as exc:
            finished = True  # the command is over; the connection is fine
            raise refusal(exc.text, self.selected.name if self.selected else None) from exc
        finally:
            self.literal_bytes += reader.literal_bytes
            if not finished:
                self.drop()


class _ImaplibStream:
    """The connection's bytes through imaplib's own ``read``/``readline``
    (they know the read buffer imaplib keeps), for ``fetch_stream``."""

    def __init__(self, imap: Any) -> None:
        self._imap = imap

    def readline(self, size: int = -1, /) -> bytes:
        try:
            line: bytes = self._imap.readline()
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:  # a line over imaplib's own bound
            raise ProviderError(f"unreadable IMAP response: {exc}") from exc
        return line

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._imap.read(size)
        return data


def _int(response: Mapping[bytes, Any], key: bytes) -> int:
    value = response.get(key)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else 0
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _refused(exc: imaplib.IMAP4.error, folder: str | None) -> ProviderError:
    return refusal(str(exc), folder)


def refusal(text: str, folder: str | None) -> ProviderError:
    """The error for a command the server refused (NO/BAD), by its text."""
    upper = text.upper()
    # Dovecot: [NONEXISTENT] / "doesn't exist"; Cyrus: "Mailbox does not exist"
    if any(sign in upper for sign in ("NONEXISTENT", "DOESN'T EXIST", "DOES NOT EXIST", "NO SUCH")):
        return NotFound(f"folder {folder or ''!r} does not exist: {text}")
    if "UNAVAILABLE" in upper or "INUSE" in upper or "LIMIT" in upper:
        return TransientError(f"IMAP server busy: {text}")
    return ProviderError(f"IMAP command refused: {text}")


def _shutdown(client: Any) -> None:
    try:
        client.shutdown()
    except Exception:  # already closed
        log.debug("IMAP shutdown failed", exc_info=True)
    sock: socket.socket | None = None
    try:
        sock = client.socket()
    except Exception:
        sock = None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
