"""Channel configuration files for the ``commlink`` command.

A TOML file names the store and the channels to sync::

    [store]
    url = "sqlite:///commlink.db"

    [[channels]]
    id = "alice-mail"
    user = "alice"
    provider = "maildir"            # mbox, maildir, ics, imap, ...
    path = "~/Maildir"
    owner = "alice@northwind.example"
    visibility = "subject"          # metadata, subject, full
    folders = { exclude = ["archive"] }
    limits = { max_message_bytes = 10_000_000 }

    [channels.options]              # what the provider needs to connect
    host = "imap.example.com"
    username = "alice"
    password_env = "ALICE_IMAP_PASSWORD"   # or password_file = "secrets/alice"

Secrets (``password``, ``token``, ``client_secret``, ...) are best given by
reference: ``<name>_env`` names an environment variable, ``<name>_file`` a
file (relative to the configuration file) holding the value. Either way the
value is kept as a ``commlink.credentials.Secret``, which never shows in a
``repr``, an error or a log line. Relative paths, including a SQLite
database URL's, resolve against the configuration file's folder.

Channels that sign in with OAuth (Gmail, Google Calendar, Graph, IMAP with
XOAUTH2) name the identity provider and the app; ``commlink connect`` saves
the grant in the store's database, sealed with the key ``[tokens]`` names::

    [tokens]
    key_env = "COMMLINK_TOKEN_KEY"  # a Fernet key (commlink.stores.generate_token_key)

    [channels.options]
    oauth = "google"                # or "microsoft" (then tenant = "...")
    client_id = "1234.apps.googleusercontent.com"
    client_secret_env = "GOOGLE_CLIENT_SECRET"
    token_key = "alice-google"      # default: the channel id; share it between
                                    # channels of one account (Gmail + Calendar)

A ``[push]`` table serves the webhook push endpoints while ``commlink sync
--watch`` or ``commlink watch`` runs (see ``commlink.cli.push_config``).

Every mistake is a ``ConfigError`` naming the field, raised before anything
is written; a misspelt key gets a suggestion.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..channel_config import SECRET_OPTIONS, FilePlace, Place, check_keys, parse_channel, table
from ..credentials import MASK, Secret, redact_text, redact_url
from ..errors import ConfigError
from ..model import Channel
from .push_config import PUSH_KEYS, PushConfig, parse_push, with_push_defaults

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ChannelConfig", "Config", "absent_sqlite_file", "load_config", "parse_config"]

#: Accepted in a ``[[channels]]`` table and ignored: the provider decides the kind.
_IGNORED_CHANNEL_KEYS = frozenset({"kind"})


def _options_repr(options: Mapping[str, Any]) -> str:
    """``options`` as shown by ``repr``: secrets masked, URLs without credentials."""
    shown: dict[str, Any] = {}
    for key, value in options.items():
        if key in SECRET_OPTIONS and not isinstance(value, Secret):
            shown[key] = Secret(MASK)
        elif isinstance(value, str):
            shown[key] = redact_text(redact_url(value)) if "://" in value else value
        else:
            shown[key] = value
    return repr(shown)


def _url_repr(url: str) -> str:
    return repr(redact_text(redact_url(url)))


@attrs.frozen
class ChannelConfig:
    """A channel plus what its provider needs to connect (``options``; its
    ``repr`` masks secrets and credentials in URLs)."""

    channel: Channel
    options: Mapping[str, Any] = attrs.field(repr=_options_repr)


@attrs.frozen
class Config:
    store_url: str = attrs.field(repr=_url_repr)
    channels: tuple[ChannelConfig, ...]
    #: Seals the OAuth grants saved in the store's database (``[tokens]``).
    token_key: Secret | None = attrs.field(default=None, repr=False)
    #: The push endpoints and their public URL (``[push]``; see ``cli.push_config``).
    push: PushConfig | None = None


def absent_sqlite_file(store_url: str) -> str | None:
    """The file a SQLite URL names when it does not exist yet (else ``None``):
    commands that only read or check must not create it by connecting."""
    import sqlalchemy as sa

    url = sa.make_url(store_url)
    database = url.database or ""
    on_disk = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    return database if on_disk and not Path(database).exists() else None


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML configuration file."""
    file = Path(path).expanduser()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no such file: {file}", field="config") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}", field="config") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", field="config") from exc
    return parse_config(data, base=file.parent)


def parse_config(data: Mapping[str, Any], *, base: Path | None = None) -> Config:
    """Validate an already-parsed configuration mapping."""
    check_keys(data, {"store", "channels", "tokens", "push"}, FilePlace())
    store = table(data.get("store", {}), FilePlace("store"))
    check_keys(store, {"url"}, FilePlace("store"))
    url = store.get("url", "sqlite:///commlink.db")
    if not isinstance(url, str) or not url:
        raise ConfigError("must be a database URL", field="store.url")
    url = _sqlite_relative(url, base)
    raw_channels = data.get("channels", [])
    if not isinstance(raw_channels, list):
        raise ConfigError("must be an array of tables ([[channels]])", field="channels")
    channels = tuple(
        _channel(c, FilePlace(f"channels[{i}]"), base) for i, c in enumerate(raw_channels)
    )
    seen: set[str] = set()
    for item in channels:
        if item.channel.id in seen:
            raise ConfigError(f"duplicate channel id {item.channel.id!r}", field="channels")
        seen.add(item.channel.id)
    token_key = _token_key(data.get("tokens", {}), base)
    push = None
    if "push" in data:
        if isinstance(data["push"], Mapping):
            check_keys(data["push"], PUSH_KEYS, FilePlace("push"))
        push = parse_push(data["push"])
        channels = with_push_defaults(channels, push)
    return Config(url, _with_token_store(channels, url, token_key), token_key, push)


def _channel(raw: Any, place: Place, base: Path | None) -> ChannelConfig:
    if isinstance(raw, Mapping):
        raw = {k: v for k, v in raw.items() if k not in _IGNORED_CHANNEL_KEYS}

    def read_secret(via: str, reference: str, place: Place) -> str:
        return _secret_from(via, reference, place, base)

    channel, options = parse_channel(raw, place, base=base, read_secret=read_secret)
    return ChannelConfig(channel, options)


def _with_token_store(
    channels: tuple[ChannelConfig, ...], url: str, key: Secret | None
) -> tuple[ChannelConfig, ...]:
    """OAuth channels get the store's database as their ``token_store``."""
    if not any("oauth" in item.options for item in channels):
        return channels  # and the database layer is not loaded yet
    from .tokens import DatabaseTokenStore

    tokens = DatabaseTokenStore(url, key)
    return tuple(
        attrs.evolve(item, options={**item.options, "token_store": tokens})
        if "oauth" in item.options
        else item
        for item in channels
    )


def _token_key(raw: Any, base: Path | None) -> Secret | None:
    """The ``[tokens]`` table: ``key``, ``key_env`` or ``key_file``."""
    place = FilePlace("tokens")
    raw = table(raw, place)
    check_keys(raw, {"key", "key_env", "key_file"}, place)
    given = [k for k in ("key", "key_env", "key_file") if k in raw]
    if len(given) > 1:
        raise place.error("give one of key, key_env and key_file")
    if not given:
        return None
    value = raw[given[0]]
    if not isinstance(value, str) or not value:
        raise (place / given[0]).error("must be a non-empty string")
    if given[0] == "key":
        return Secret(value)
    return Secret(_secret_from(given[0][4:], value, place / given[0], base))


def _sqlite_relative(url: str, base: Path | None) -> str:
    """A relative SQLite file resolves against the configuration file's folder,
    not against wherever the command runs."""
    prefix = next((p for p in ("sqlite:///", "sqlite+pysqlite:///") if url.startswith(p)), None)
    if prefix is None or base is None:
        return url
    rest = url[len(prefix) :]
    path_part, sep, query = rest.partition("?")
    if not path_part or path_part == ":memory:" or path_part.startswith("/"):
        return url
    resolved = (base / Path(path_part).expanduser()).resolve()
    return f"{prefix}{resolved}{sep}{query}"


def _secret_from(via: str, reference: str, place: Place, base: Path | None) -> str:
    """A secret given by reference: an environment variable (``via`` ``"env"``)
    or a file, relative to ``base`` (``"file"``)."""
    if via == "env":
        value = os.environ.get(reference)
        if not value:
            raise place.error(f"environment variable {reference} is not set")
        return value
    path = Path(reference).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise place.error(f"cannot read {path}: {exc.strerror or exc}") from None
    if not value:
        raise place.error(f"{path} is empty")
    return value
