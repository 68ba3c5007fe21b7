"""The pure parts of signing in: PKCE, state, scopes per channel kind and
visibility, redirect parameters, ID token claims and what refusals mean."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commlink.auth import (
    account_from_claims,
    check_state,
    new_pkce,
    new_state,
    redirect_params,
    s256_challenge,
    scopes_for,
    scopes_for_channels,
    unverified_claims,
)
from commlink.auth.errors import GrantRefused, grant_error
from commlink.auth.id_token import check_claims
from commlink.auth.identity import check_endpoint, google_identity, microsoft_identity
from commlink.auth.pkce import valid_verifier
from commlink.auth.scopes import (
    CALENDAR_READONLY,
    GMAIL_IMAP,
    GMAIL_METADATA,
    GMAIL_READONLY,
    GRAPH_CALENDARS_READ,
    GRAPH_MAIL_READ,
    OUTLOOK_IMAP,
)
from commlink.errors import AuthError, ConfigError, InvalidInput, ProviderError, TransientError
from commlink.model import Visibility

AUTH = Path(__file__).resolve().parents[2] / "src" / "commlink" / "auth"
SDKS = {"google", "google_auth_oauthlib", "googleapiclient", "msal", "requests", "httpx"}


def test_the_rfc_7636_example_challenge() -> None:
    # RFC 7636 Appendix B
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_new_verifiers_are_valid_distinct_and_masked() -> None:
    pairs = [new_pkce() for _ in range(50)]
    verifiers = {p.verifier.reveal() for p in pairs}
    assert len(verifiers) == 50
    assert all(valid_verifier(v) and len(v) == 64 for v in verifiers)
    assert all(p.method == "S256" and p.challenge == s256_challenge(p.verifier.reveal())
               for p in pairs)  # fmt: skip
    assert "***" in repr(pairs[0])
    assert pairs[0].verifier.reveal() not in repr(pairs[0])
    with pytest.raises(InvalidInput):
        new_pkce(42)


@given(st.text(max_size=200))
def test_a_challenge_is_made_only_from_a_valid_verifier(text: str) -> None:
    if valid_verifier(text):
        challenge = s256_challenge(text)
        assert len(challenge) == 43
        assert "=" not in challenge
    else:
        with pytest.raises(InvalidInput):
            s256_challenge(text)


def test_state_is_unguessable_and_checked() -> None:
    states = {new_state() for _ in range(100)}
    assert len(states) == 100
    assert all(len(s) >= 43 for s in states)
    state = new_state()
    check_state(state, state)
    for wrong in (None, "", state[:-1], state + "x", state.upper()):
        with pytest.raises(AuthError, match="state mismatch"):
            check_state(state, wrong)
    with pytest.raises(AuthError):
        check_state("", "")


@given(st.text(), st.text())
def test_state_checking_survives_hostile_input(expected: str, received: str) -> None:
    try:
        check_state(expected, received)
    except AuthError:
        assert not expected or expected != received
    else:
        assert expected == received


@pytest.mark.parametrize(
    ("provider", "visibility", "identity", "expected"),
    [
        ("gmail", Visibility.FULL, None, GMAIL_READONLY),
        ("gmail", Visibility.SUBJECT, None, GMAIL_READONLY),
        ("gmail", Visibility.METADATA, None, GMAIL_METADATA),
        ("google-calendar", Visibility.METADATA, None, CALENDAR_READONLY),
        ("graph", Visibility.METADATA, None, GRAPH_MAIL_READ),
        ("graph-calendar", Visibility.FULL, "microsoft", GRAPH_CALENDARS_READ),
        ("imap", Visibility.FULL, "google", GMAIL_IMAP),
        ("imap", Visibility.METADATA, "microsoft", OUTLOOK_IMAP),
    ],
)
def test_scopes_per_channel_kind_and_visibility(
    provider: str, visibility: Visibility, identity: str | None, expected: str
) -> None:
    found = scopes_for(provider, visibility, identity=identity)
    assert expected in found
    assert "openid" in found
    assert "email" in found
    assert not [s for s in found if "modify" in s or "ReadWrite" in s or "send" in s.lower()]
    assert expected in scopes_for(provider, visibility, identity=identity, sign_in=False)
    assert "openid" not in scopes_for(provider, visibility, identity=identity, sign_in=False)


def test_metadata_gmail_never_asks_for_message_bodies() -> None:
    assert GMAIL_READONLY not in scopes_for("gmail", Visibility.METADATA)
    assert GMAIL_METADATA not in scopes_for("gmail", Visibility.FULL)


def test_microsoft_scopes_keep_the_grant() -> None:
    assert "offline_access" in scopes_for("graph")
    assert "offline_access" not in scopes_for("gmail")


def test_scopes_that_do_not_fit_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="oauth"):
        scopes_for("imap")
    with pytest.raises(ConfigError):
        scopes_for("gmail", identity="microsoft")
    with pytest.raises(ConfigError):
        scopes_for("caldav", identity="google")


def test_one_grant_for_several_channels() -> None:
    both = scopes_for_channels(
        [("gmail", Visibility.METADATA), ("google-calendar", Visibility.FULL)], identity="google"
    )
    assert {GMAIL_METADATA, CALENDAR_READONLY} <= set(both)
    assert both == tuple(sorted(both))
    graph = scopes_for_channels(
        [("graph", Visibility.FULL), ("graph-calendar", Visibility.FULL)], identity="microsoft"
    )
    assert {GRAPH_MAIL_READ, GRAPH_CALENDARS_READ} <= set(graph)
    with pytest.raises(ConfigError, match="token_key"):
        scopes_for_channels(
            [("graph", Visibility.FULL), ("imap", Visibility.FULL)], identity="microsoft"
        )


def test_redirect_parameters_from_a_url_a_path_or_a_query() -> None:
    assert redirect_params("http://127.0.0.1:5/?code=a&state=b") == {"code": "a", "state": "b"}
    assert redirect_params("/cb?code=a%2Fb&state=") == {"code": "a/b", "state": ""}
    assert redirect_params("code=a&state=b") == {"code": "a", "state": "b"}
    assert redirect_params("?error=access_denied") == {"error": "access_denied"}
    with pytest.raises(InvalidInput, match="twice"):
        redirect_params("?state=a&state=b&code=c")


@given(st.text(max_size=300))
def test_redirect_parameters_never_crash(text: str) -> None:
    try:
        found = redirect_params(text)
    except InvalidInput:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in found.items())


def _jwt(claims: object) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256'})}.{part(claims)}.c2ln"


def test_claims_give_the_account() -> None:
    claims = unverified_claims(_jwt({"email": "Ann@Example.com", "aud": "app", "iss": "x"}))
    assert account_from_claims(claims) == "ann@example.com"
    assert account_from_claims({"preferred_username": "bob@contoso.com"}) == "bob@contoso.com"
    assert account_from_claims({"email": "a@b.example", "email_verified": False}) == ""
    assert account_from_claims({"email": "not an address", "upn": "c@d.example"}) == "c@d.example"
    assert account_from_claims({"email": 7}) == ""


def test_claims_name_the_app_and_the_issuer() -> None:
    claims = {"aud": "app", "iss": "https://accounts.google.com"}
    check_claims(claims, client_id="app", issuer="https://accounts.google.com")
    check_claims({"aud": "app", "iss": "accounts.google.com"}, client_id="app",
                 issuer="https://accounts.google.com")  # fmt: skip
    check_claims({"aud": ["x", "app"]}, client_id="app", issuer=None)
    with pytest.raises(AuthError, match="aud"):
        check_claims(claims, client_id="other", issuer=None)
    with pytest.raises(AuthError, match="iss"):
        check_claims(claims, client_id="app", issuer="https://evil.example")


@given(st.text(max_size=400) | st.builds(_jwt, st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=10,
)))  # fmt: skip
def test_hostile_id_tokens_never_crash(token: str) -> None:
    claims = unverified_claims(token)
    assert isinstance(claims, dict)
    account = account_from_claims(claims)
    assert account == "" or "@" in account
    try:
        check_claims(claims, client_id="app", issuer="https://accounts.google.com")
    except AuthError:
        return
    audience = claims["aud"]
    assert audience == "app" or (isinstance(audience, list) and "app" in audience)


@pytest.mark.parametrize(
    ("error", "status", "kind", "text"),
    [
        ("invalid_grant", 400, AuthError, "refused the saved grant (invalid_grant): reconnect"),
        ("invalid_client", 401, AuthError, "check client_id and client_secret"),
        ("invalid_scope", 400, AuthError, "reconnect the account"),
        ("access_denied", None, AuthError, "declined"),
        ("temporarily_unavailable", 503, TransientError, "will retry"),
        ("odd", 502, TransientError, "will retry"),
        ("odd", 400, ProviderError, "sign-in failed (odd)"),
    ],
)
def test_refusals_tell_the_host_what_to_show(
    error: str, status: int | None, kind: type[Exception], text: str
) -> None:
    found = grant_error("google", GrantRefused(error, "details", status))
    assert type(found) is kind
    assert text in str(found)
    assert str(found).startswith("Google")


def test_endpoints_must_be_https_or_loopback() -> None:
    assert check_endpoint("https://login.example/x", "f")
    assert check_endpoint("http://127.0.0.1:8080/token", "f")
    for bad in ("http://login.example/token", "https://u:p@login.example/", "ftp://x", "nope"):
        with pytest.raises(ConfigError):
            check_endpoint(bad, "f")
    with pytest.raises(ConfigError):
        google_identity(token_endpoint="http://oauth2.example/token")
    with pytest.raises(ConfigError, match="tenant"):
        microsoft_identity("a/b")
    sovereign = microsoft_identity("contoso.us", authority_host="https://login.microsoftonline.us")
    assert sovereign.token_endpoint == (
        "https://login.microsoftonline.us/contoso.us/oauth2/v2.0/token"
    )


@pytest.mark.parametrize("path", sorted(AUTH.glob("*.py")), ids=lambda p: p.name)
def test_auth_imports_client_libraries_lazily(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    eager = []
    for node in tree.body:
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        eager += [n for n in names if n.split(".")[0] in SDKS]
    assert not eager, f"{path.name} imports {eager} at import time"
