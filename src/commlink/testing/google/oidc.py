"""Google-style OIDC ID tokens for the local Pub/Sub: an RSA key made at
start, its self-signed certificate published as Google publishes its own
(``{key id: PEM certificate}``, the ``oauth2/v1/certs`` shape that
``google.oauth2.id_token.verify_token`` reads), and RS256 tokens with the
claims Pub/Sub puts in a push request's ``Authorization`` header.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["GOOGLE_ISSUER", "OidcIssuer"]

GOOGLE_ISSUER = "https://accounts.google.com"


class _Key:
    """One signing key: a google-auth signer and its certificate."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        from google.auth import crypt

        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = hashlib.sha1(public_der).hexdigest()  # a name for the key, not a safeguard
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.local")])
        now = datetime.now(timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=14))
            .sign(private, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.signer = crypt.RSASigner.from_string(pem, key_id=self.kid)  # type: ignore[no-untyped-call]


class OidcIssuer:
    """Signs ID tokens as ``accounts.google.com`` does for Pub/Sub push.

    ``rotate()`` starts signing with a new key; the old one stays published
    until ``retire_old_keys()``, as Google overlaps its keys.
    """

    def __init__(self, issuer: str = GOOGLE_ISSUER) -> None:
        self.issuer = issuer
        self._keys = [_Key()]
        self._lock = threading.Lock()

    @property
    def kid(self) -> str:
        """The key id tokens are signed with now."""
        return self._keys[-1].kid

    def certs(self) -> dict[str, str]:
        """The published certificates, ``{key id: PEM}``."""
        with self._lock:
            return {k.kid: k.cert_pem for k in self._keys}

    def rotate(self) -> str:
        """Sign with a new key from now on; returns its key id."""
        key = _Key()
        with self._lock:
            self._keys.append(key)
        return key.kid

    def retire_old_keys(self) -> None:
        with self._lock:
            self._keys = self._keys[-1:]

    def token(
        self,
        audience: str,
        email: str,
        *,
        lifetime: float = 3600.0,
        issued_at: float | None = None,
        email_verified: bool = True,
        extra: Mapping[str, Any] | None = None,
        key_id: str | None = None,
    ) -> str:
        """An RS256 ID token for ``email`` (a service account) and ``audience``.

        ``key_id`` puts another key's id in the header (a forgery, to test
        that verification refuses it)."""
        from google.auth import jwt

        now = int(time.time() if issued_at is None else issued_at)
        subject = str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16))
        payload: dict[str, Any] = {
            "aud": audience,
            "azp": subject,
            "email": email,
            "email_verified": email_verified,
            "exp": now + int(lifetime),
            "iat": now,
            "iss": self.issuer,
            "sub": subject,
            **(extra or {}),
        }
        with self._lock:
            signer = self._keys[-1].signer
        encoded: bytes = jwt.encode(signer, payload, key_id=key_id)  # type: ignore[no-untyped-call]
        return encoded.decode()
