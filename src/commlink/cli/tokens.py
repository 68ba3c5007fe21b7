"""The OAuth grants of a configuration's channels, in its store's database.

``DatabaseTokenStore`` is the ``TokenStore`` every OAuth channel of a
configuration is given (``options["token_store"]``), so each command that
opens providers (sync, check, watch, the Celery factories) finds the grants
``commlink connect`` saved. It opens the database for each call and closes
it after: grants are read when a channel connects and written about once an
hour per account, so a loaded configuration holds no connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..credentials import Secret, redact_text, redact_url
from ..errors import StoreError
from ..records import OAuthToken
from ..stores.sql_push import SqlTokenStore
from ..stores.sql_schema import create_engine, dispose

__all__ = ["DatabaseTokenStore"]


class DatabaseTokenStore:
    """A ``TokenStore`` on the ``commlink_oauth_tokens`` table of ``url``,
    sealed with ``key`` when given (``[tokens]`` in the configuration)."""

    def __init__(self, url: str, key: Secret | None = None) -> None:
        self.url = url
        self._key = key

    def __repr__(self) -> str:
        return f"DatabaseTokenStore({redact_text(redact_url(self.url))!r})"

    @contextmanager
    def _opened(self) -> Iterator[SqlTokenStore]:
        try:
            engine = create_engine(self.url)
        except ValueError as exc:
            raise StoreError(f"cannot open the token store: {exc}") from exc
        try:
            yield SqlTokenStore(engine, key=self._key, create=False)
        finally:
            dispose(engine)

    def load_token(self, key: str) -> OAuthToken | None:
        with self._opened() as store:
            return store.load_token(key)

    def save_token(self, key: str, token: OAuthToken) -> None:
        with self._opened() as store:
            store.save_token(key, token)

    def delete_token(self, key: str) -> None:
        with self._opened() as store:
            store.delete_token(key)
