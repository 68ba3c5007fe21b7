"""Sealing saved OAuth tokens with a Fernet key (``cryptography``), shared
by the token stores (SQL and the Django ORM)."""

from __future__ import annotations

from typing import Any

from ..credentials import Secret, reveal
from ..errors import ConfigError, StoreError

__all__ = ["TokenSeal", "generate_token_key"]

#: Prefix of a sealed value; values without it were saved unsealed.
SEALED = "fernet:"


def _fernet_module() -> Any:
    try:
        import cryptography.fernet as fernet
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("sealed tokens need cryptography: pip install cryptography") from exc
    return fernet


def generate_token_key() -> str:
    """A new random key for ``SqlTokenStore(key=...)`` (urlsafe base64, 32 bytes)."""
    return str(_fernet_module().Fernet.generate_key().decode())


class TokenSeal:
    """Seals and opens token values with ``key``; without a key, values are
    kept as they are and a sealed one cannot be opened (``StoreError``)."""

    __slots__ = ("_fernet",)

    def __init__(self, key: str | bytes | Secret | None) -> None:
        plain = key.decode() if isinstance(key, bytes) else reveal(key)
        self._fernet: Any = None
        if plain:
            try:
                self._fernet = _fernet_module().Fernet(plain.encode())
            except ValueError as exc:
                raise ConfigError(
                    "the token key is not a Fernet key (see generate_token_key)"
                ) from exc

    @property
    def sealing(self) -> bool:
        return self._fernet is not None

    def seal(self, value: str) -> str:
        if self._fernet is None:
            return value
        sealed: bytes = self._fernet.encrypt(value.encode())
        return SEALED + sealed.decode()

    def open(self, value: str) -> str:
        if not value.startswith(SEALED):
            return value
        if self._fernet is None:
            raise StoreError("stored OAuth token is sealed: pass the token key")
        try:
            return str(self._fernet.decrypt(value[len(SEALED) :].encode()).decode())
        except Exception as exc:
            raise StoreError("stored OAuth token does not open with this key") from exc
