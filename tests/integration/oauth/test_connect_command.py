"""``commlink connect`` end to end: a subprocess signs in through the local
authorization servers with a loopback redirect, the grant is saved sealed
in the configuration's database, and ``commlink sync`` then uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from oauth_support import OWNER

from commlink.cli.main import main
from commlink.stores import generate_token_key
from commlink.stores.sql import SqlStore
from commlink.testing.google import GoogleApiServer
from commlink.testing.microsoft import GraphServer
from commlink.testing.oauth import GoogleOAuthServer, MicrosoftOAuthServer
from commlink.testing.oauth_browser import consent, deliver

pytestmark = pytest.mark.integration

SEALING = generate_token_key()
CLIENT_SECRET_ENV = "TEST_OAUTH_CLIENT_SECRET"
MESSAGE = (
    f"From: ann@client.example\r\nTo: {OWNER}\r\nSubject: hi\r\n"
    "Message-ID: <c1@test>\r\n\r\nhello\r\n"
).encode()


def _environment(server: GoogleOAuthServer | MicrosoftOAuthServer) -> dict[str, str]:
    return {
        **os.environ,
        "COMMLINK_TOKEN_KEY": SEALING,
        CLIENT_SECRET_ENV: server.client_secret or "",
        "PYTHONUNBUFFERED": "1",
    }


def _google_config(tmp: Path, oauth: GoogleOAuthServer, api: GoogleApiServer) -> Path:
    options = f"""\
oauth = "google"
client_id = "{oauth.client_id}"
client_secret_env = "{CLIENT_SECRET_ENV}"
auth_uri = "{oauth.authorization_endpoint}"
token_uri = "{oauth.token_endpoint}"
revoke_uri = "{oauth.revocation_endpoint}"
issuer = "{oauth.issuer}"
token_key = "alice-google"
"""
    config = tmp / "commlink.toml"
    config.write_text(
        f"""\
[store]
url = "sqlite:///crm.db"

[tokens]
key_env = "COMMLINK_TOKEN_KEY"

[[channels]]
id = "alice-mail"
user = "alice"
provider = "gmail"
owner = "{OWNER}"
org_domains = ["home.example"]

[channels.options]
{options}api_endpoint = "{api.base_url}"

[[channels]]
id = "alice-calendar"
user = "alice"
provider = "google-calendar"
owner = "{OWNER}"

[channels.options]
{options}api_endpoint = "{api.calendar_url}"
"""
    )
    return config


@pytest.fixture
def google_pair() -> Iterator[tuple[GoogleOAuthServer, GoogleApiServer]]:
    with GoogleOAuthServer(OWNER) as oauth, GoogleApiServer(user=OWNER) as api:
        oauth.issue_to(api)
        yield oauth, api


def _saved(config: Path, key: str) -> tuple[str, str]:
    """The sealed columns of a saved grant, as the database holds them."""
    engine = sa.create_engine(f"sqlite:///{config.parent / 'crm.db'}")
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT access_token, refresh_token FROM commlink_oauth_tokens WHERE key=:k"
                ),
                {"k": key},
            ).one()
    finally:
        engine.dispose()
    return str(row.access_token), str(row.refresh_token)


def test_connect_prints_a_url_and_saves_the_grant_sealed(
    tmp_path: Path,
    google_pair: tuple[GoogleOAuthServer, GoogleApiServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    oauth, api = google_pair
    config = _google_config(tmp_path, oauth, api)
    command = [sys.executable, "-m", "commlink", "connect", str(config), "alice-mail"]
    process = subprocess.Popen(
        [*command, "--no-browser", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(oauth),
    )
    assert process.stdout is not None
    shown: list[str] = []
    url = ""
    while not url:
        line = process.stdout.readline()
        assert line, "connect ended before printing the URL: " + "".join(shown)
        shown.append(line)
        if line.strip().startswith("http"):
            url = line.strip()
    status, page = deliver(consent(url))
    assert status == 200
    assert "close this window" in page
    out, err = process.communicate(timeout=60)
    output = "".join(shown) + out + err
    assert process.returncode == 0, output
    assert f"Connected {OWNER} (google) for alice-mail, alice-calendar." in output

    with SqlStore(f"sqlite:///{tmp_path / 'crm.db'}") as store:
        grant = store.token_store(SEALING).load_token("alice-google")
    assert grant is not None
    assert grant.account == OWNER
    assert "https://www.googleapis.com/auth/calendar.readonly" in grant.scopes
    assert grant.refresh_token is not None
    sealed_access, sealed_refresh = _saved(config, "alice-google")
    assert sealed_access.startswith("fernet:")
    assert grant.access_token.reveal() not in sealed_access
    assert grant.refresh_token.reveal() not in sealed_refresh
    for secret in (grant.access_token, grant.refresh_token):
        assert secret.reveal() not in output
    assert (oauth.client_secret or "") not in output

    # the saved grant serves both channels of the configuration
    api.gmail.add_message(OWNER, MESSAGE)
    api.calendar.add_calendar(OWNER, OWNER, "Alice", primary=True)
    monkeypatch.setenv("COMMLINK_TOKEN_KEY", SEALING)
    monkeypatch.setenv(CLIENT_SECRET_ENV, oauth.client_secret or "")
    assert main(["sync", str(config)]) == 0


def test_connect_opens_the_browser_for_a_microsoft_account(tmp_path: Path, clock: object) -> None:
    browser = tmp_path / "browser"
    browser.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "from commlink.testing.oauth_browser import consent, deliver\n"
        "answer = consent(sys.argv[1], ca_file=os.environ['TEST_OAUTH_CA'])\n"
        "sys.exit(0 if deliver(answer)[0] == 200 else 1)\n"
    )
    browser.chmod(0o755)
    with MicrosoftOAuthServer(OWNER) as oauth, GraphServer(user=OWNER) as api:
        oauth.issue_to(api)
        config = tmp_path / "commlink.toml"
        config.write_text(
            f"""\
[store]
url = "sqlite:///crm.db"

[tokens]
key_env = "COMMLINK_TOKEN_KEY"

[[channels]]
id = "alice-graph"
user = "alice"
provider = "graph"
owner = "{OWNER}"

[channels.options]
oauth = "microsoft"
tenant = "{oauth.tenant_domain}"
authority_host = "{oauth.root_url}"
oauth_ca_file = "{oauth.ca_file}"
client_id = "{oauth.client_id}"
client_secret_env = "{CLIENT_SECRET_ENV}"
base_url = "{api.base_url}"
"""
        )
        env = {**_environment(oauth), "BROWSER": str(browser), "TEST_OAUTH_CA": oauth.ca_file or ""}
        done = subprocess.run(
            [sys.executable, "-m", "commlink", "connect", str(config), "alice-graph",
             "--timeout", "60"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert f"Connected {OWNER} (microsoft) for alice-graph." in output
        assert oauth.token_requests == [
            {"grant_type": "authorization_code", "client_auth": "client_secret_post"}
        ]
        with SqlStore(f"sqlite:///{tmp_path / 'crm.db'}") as store:
            grant = store.token_store(SEALING).load_token("alice-graph")
        assert grant is not None
        assert grant.refresh_token is not None
        assert grant.refresh_token.reveal() not in output
        assert grant.access_token.reveal() not in output


def test_connect_explains_a_channel_that_does_not_sign_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "commlink.toml"
    config.write_text(
        f"""\
[[channels]]
id = "files"
user = "alice"
provider = "maildir"
owner = "{OWNER}"
path = "."
"""
    )
    assert main(["connect", str(config), "files"]) == 2
    assert "does not sign in with OAuth" in capsys.readouterr().err
    assert main(["connect", str(config), "nope"]) == 2
    assert "no channel 'nope' (channels: files)" in capsys.readouterr().err
