"""``SavedTokenSource``: access tokens for one saved grant, kept fresh and
persisted.

The grant lives in a ``TokenStore`` under a key (by default the channel
id). An access token is served while it has more than ``margin`` seconds
left; then, or when a server refused it, the refresh token buys a new one
once, under a lock, however many threads ask. Every refresh and every
rotated refresh token is saved straight away, so the grant survives a
restart and is shared by the processes that use the store.

A refresh that another process made first is adopted rather than repeated;
when a rotated refresh token was saved by someone else while ours was on
its way, the refusal (``invalid_grant``) is retried once with the saved one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import attrs

from ..credentials import Secret
from ..errors import AuthError
from ..ports import TokenStore
from ..records import OAuthToken
from .errors import LABELS, GrantRefused, grant_error

__all__ = ["Refresher", "SavedTokenSource", "as_secret", "expires_at"]

log = logging.getLogger("commlink.auth")

#: Uses a grant's refresh token to get a new access token (and maybe a
#: rotated refresh token); raises ``GrantRefused`` on an OAuth error.
Refresher = Callable[[OAuthToken], OAuthToken]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SavedTokenSource:
    """Fresh access tokens for the grant saved under ``key``.

    ``token()`` (or calling the source, for IMAP's XOAUTH2) returns a valid
    access token; ``refresh()`` gets a new one after a server refused it
    (Graph's ``TokenSource`` protocol). A revoked grant raises
    ``AuthError`` telling the user to reconnect.
    """

    def __init__(
        self,
        store: TokenStore,
        key: str,
        refresher: Refresher,
        *,
        provider: str,
        margin: float = 300.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.key = key
        self.provider = provider
        self.margin = margin
        self._refresher = refresher
        self._clock = clock
        self._lock = threading.Lock()
        self._held: OAuthToken | None = None
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"SavedTokenSource(provider={self.provider!r}, key={self.key!r})"

    @property
    def label(self) -> str:
        return LABELS.get(self.provider, self.provider)

    def current(self) -> OAuthToken:
        """The grant with a valid access token, refreshing it when due."""
        with self._lock:
            held = self._held
            if held is None or held.expired(self._clock(), self.margin):
                held = self._load()
                if held.expired(self._clock(), self.margin):
                    held = self._refresh(held)
                self._held = held
            return held

    def token(self) -> str:
        """A valid access token."""
        return self.current().access_token.reveal()

    def __call__(self) -> str:
        return self.token()

    def refresh(self, stale: str | None = None) -> str:
        """A new access token after a server refused ``stale`` (by default the
        one last handed out). When another thread or process has refreshed
        meanwhile, its token is used instead of refreshing again."""
        return self.renew(stale).access_token.reveal()

    def renew(self, stale: str | None = None) -> OAuthToken:
        """Like ``refresh``, returning the whole grant (its expiry included)."""
        if stale is None:
            held = self._held
            stale = held.access_token.reveal() if held is not None else None
        with self._lock:
            saved = self._load()
            adopt = (
                stale is not None
                and saved.access_token.reveal() != stale
                and not saved.expired(self._clock(), self.margin)
            )
            held = saved if adopt else self._refresh(saved)
            self._held = held
            return held

    def _load(self) -> OAuthToken:
        saved = self.store.load_token(self.key)
        if saved is None:
            raise AuthError(f"no {self.label} account is connected for {self.key!r}: connect it")
        return saved

    def _refresh(self, saved: OAuthToken) -> OAuthToken:
        base = saved
        try:
            fresh = self._grant(base)
        except GrantRefused as refused:
            latest = self._rotated_elsewhere(base, refused)
            if latest is None:
                raise grant_error(self.provider, refused) from None
            if not latest.expired(self._clock(), self.margin):
                return latest
            base = latest
            try:
                fresh = self._grant(base)
            except GrantRefused as again:
                raise grant_error(self.provider, again) from None
        kept = attrs.evolve(
            fresh,
            refresh_token=fresh.refresh_token or base.refresh_token,
            scopes=fresh.scopes or base.scopes,
            account=base.account or fresh.account,
        )
        self.store.save_token(self.key, kept)
        self.refreshes += 1
        rotated = kept.refresh_token != base.refresh_token
        log.info(
            "refreshed the %s access token for %s%s",
            self.label,
            self.key,
            " (refresh token rotated)" if rotated else "",
        )
        return kept

    def _grant(self, base: OAuthToken) -> OAuthToken:
        if base.refresh_token is None:
            raise AuthError(
                f"the {self.label} access token expired and the grant has no refresh "
                "token: reconnect the account"
            )
        return self._refresher(base)

    def _rotated_elsewhere(self, used: OAuthToken, refused: GrantRefused) -> OAuthToken | None:
        """The grant as saved now, when ``refused`` is ``invalid_grant`` because
        another process rotated the refresh token after we read it (ours was
        then spent); else ``None``."""
        if refused.error != "invalid_grant":
            return None
        latest = self.store.load_token(self.key)
        if latest is None or latest.refresh_token in (None, used.refresh_token):
            return None
        log.info("%s refresh token was rotated elsewhere; using the saved one", self.label)
        return latest


def expires_at(now: datetime, expires_in: object) -> datetime | None:
    """When a token answered with ``expires_in`` seconds ends (``None`` if unsaid)."""
    try:
        seconds = float(str(expires_in))
    except (TypeError, ValueError):
        return None
    if not 0 < seconds < 10 * 365 * 86400:
        return None
    return now + timedelta(seconds=seconds)


def as_secret(value: object) -> Secret | None:
    """A token string from a response as a ``Secret`` (``None`` when absent)."""
    return Secret(value) if isinstance(value, str) and value else None
