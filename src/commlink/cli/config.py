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

import difflib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..addresses import normalise_domain, normalise_entry, parse_address
from ..credentials import MASK, Secret, redact_text, redact_url
from ..errors import ConfigError
from ..model import (
    CalendarContactPolicy,
    Channel,
    ChannelSettings,
    ContactPolicy,
    FolderSelection,
    Limits,
    Visibility,
)
from ..providers.registry import PROVIDER_KINDS
from .push_config import PUSH_KEYS, PushConfig, parse_push, with_push_defaults

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ChannelConfig", "Config", "absent_sqlite_file", "load_config", "parse_config"]

_SETTINGS_KEYS = {
    "id", "user", "provider", "kind", "owner", "aliases", "org_domains", "visibility",
    "contact_policy", "calendar_contact_policy", "folders", "sync_internal", "blocklist",
    "create_companies", "sync_invites", "options", "path", "limits", "skip_details",
}  # fmt: skip
#: Option names whose values are secrets (kept as ``Secret``; ``_env`` and
#: ``_file`` forms accepted).
SECRET_OPTIONS = frozenset(
    {
        "password",
        "token",
        "access_token",
        "refresh_token",
        "oauth2_token",
        "client_secret",
        "service_account_info",
    }
)


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
    _known_keys(data, {"store", "channels", "tokens", "push"}, "")
    store = data.get("store", {})
    if not isinstance(store, Mapping):
        raise ConfigError("must be a table", field="store")
    _known_keys(store, {"url"}, "store")
    url = store.get("url", "sqlite:///commlink.db")
    if not isinstance(url, str) or not url:
        raise ConfigError("must be a database URL", field="store.url")
    url = _sqlite_relative(url, base)
    raw_channels = data.get("channels", [])
    if not isinstance(raw_channels, list):
        raise ConfigError("must be an array of tables ([[channels]])", field="channels")
    channels = tuple(_channel(c, f"channels[{i}]", base) for i, c in enumerate(raw_channels))
    seen: set[str] = set()
    for item in channels:
        if item.channel.id in seen:
            raise ConfigError(f"duplicate channel id {item.channel.id!r}", field="channels")
        seen.add(item.channel.id)
    token_key = _token_key(data.get("tokens", {}), base)
    push = None
    if "push" in data:
        if isinstance(data["push"], Mapping):
            _known_keys(data["push"], PUSH_KEYS, "push")
        push = parse_push(data["push"])
        channels = with_push_defaults(channels, push)
    return Config(url, _with_token_store(channels, url, token_key), token_key, push)


def _with_token_store(
    channels: tuple[ChannelConfig, ...], url: str, key: Secret | None
) -> tuple[ChannelConfig, ...]:
    """OAuth channels get the store's database as their ``token_store``."""
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
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a table", field="tokens")
    _known_keys(raw, {"key", "key_env", "key_file"}, "tokens")
    given = [k for k in ("key", "key_env", "key_file") if k in raw]
    if len(given) > 1:
        raise ConfigError("give one of key, key_env and key_file", field="tokens")
    if not given:
        return None
    value = raw[given[0]]
    if not isinstance(value, str) or not value:
        raise ConfigError("must be a non-empty string", field=f"tokens.{given[0]}")
    if given[0] == "key":
        return Secret(value)
    return Secret(_secret_from(given[0][4:], value, f"tokens.{given[0]}", base))


def _channel(raw: Any, where: str, base: Path | None) -> ChannelConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a table", field=where)
    _known_keys(raw, _SETTINGS_KEYS, where)
    channel_id = _string(raw, "id", where)
    user = _string(raw, "user", where)
    provider = _string(raw, "provider", where)
    if provider not in PROVIDER_KINDS:
        known = ", ".join(sorted(PROVIDER_KINDS))
        raise ConfigError(
            f"unknown provider {provider!r} (known: {known})", field=f"{where}.provider"
        )
    owner = parse_address(_string(raw, "owner", where))
    if not owner.valid:
        raise ConfigError(f"not a valid address: {raw['owner']!r}", field=f"{where}.owner")
    aliases = frozenset(_address(a, f"{where}.aliases") for a in _strings(raw, "aliases", where))
    domains = frozenset(
        _domain(d, f"{where}.org_domains") for d in _strings(raw, "org_domains", where)
    )
    blocklist = frozenset(
        _entry(e, f"{where}.blocklist") for e in _strings(raw, "blocklist", where)
    )
    folders = raw.get("folders", {})
    if not isinstance(folders, Mapping) or set(folders) - {"include", "exclude"}:
        raise ConfigError("must be a table with include and exclude", field=f"{where}.folders")
    selection = FolderSelection(
        include=frozenset(_strings(folders, "include", f"{where}.folders")),
        exclude=frozenset(_strings(folders, "exclude", f"{where}.folders")),
    )
    settings = ChannelSettings(
        owner=owner.key,
        aliases=aliases,
        org_domains=domains,
        visibility=_enum(Visibility, raw, "visibility", where, Visibility.FULL),
        contact_policy=_enum(ContactPolicy, raw, "contact_policy", where, ContactPolicy.SENT),
        calendar_contact_policy=_enum(
            CalendarContactPolicy,
            raw,
            "calendar_contact_policy",
            where,
            CalendarContactPolicy.AS_PARTICIPANT,
        ),
        folders=selection,
        sync_internal=_bool(raw, "sync_internal", where, False),
        blocklist=blocklist,
        create_companies=_bool(raw, "create_companies", where, True),
        sync_invites=_bool(raw, "sync_invites", where, False),
        skip_details=_bool(raw, "skip_details", where, False),
        limits=_limits(raw.get("limits", {}), f"{where}.limits"),
    )
    kind = PROVIDER_KINDS[provider]
    raw_options = raw.get("options", {})
    if not isinstance(raw_options, Mapping):
        raise ConfigError("must be a table", field=f"{where}.options")
    options = _options(raw_options, f"{where}.options", base)
    if "oauth" in options:
        _check_oauth(options, provider, settings.visibility, f"{where}.options")
    if "path" in raw:
        path = Path(_string(raw, "path", where)).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.exists():
            raise ConfigError(f"no such file or folder: {path}", field=f"{where}.path")
        options["path"] = str(path)
    elif provider in ("mbox", "maildir", "ics"):
        raise ConfigError("is required for file providers", field=f"{where}.path")
    return ChannelConfig(Channel(channel_id, user, kind, provider, settings), options)


def _check_oauth(
    options: Mapping[str, Any], provider: str, visibility: Visibility, where: str
) -> None:
    """An OAuth channel names a known identity provider that serves its
    provider, and the app's client id."""
    from ..auth.options import identity_of
    from ..auth.scopes import scopes_for

    try:
        identity = identity_of(options)
        scopes_for(provider, visibility, identity=identity)
    except ConfigError as exc:
        raise ConfigError(str(exc).removeprefix("oauth: "), field=f"{where}.oauth") from None
    client_id = options.get("client_id")
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigError("is required with oauth", field=f"{where}.client_id")
    key = options.get("token_key")
    if key is not None and (not isinstance(key, str) or not key.strip()):
        raise ConfigError("must be a non-empty string", field=f"{where}.token_key")


def _string(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("is required and must be a non-empty string", field=f"{where}.{key}")
    return value.strip()


def _strings(raw: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("must be a list of strings", field=f"{where}.{key}")
    return value


def _bool(raw: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError("must be true or false", field=f"{where}.{key}")
    return value


def _enum(kind: Any, raw: Mapping[str, Any], key: str, where: str, default: Any) -> Any:
    value = raw.get(key)
    if value is None:
        return default
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ConfigError(f"must be one of {allowed}", field=f"{where}.{key}") from None


def _address(text: str, field: str) -> str:
    address = parse_address(text)
    if not address.valid:
        raise ConfigError(f"not a valid address: {text!r}", field=field)
    return address.key


def _domain(text: str, field: str) -> str:
    domain = normalise_domain(text)
    if not domain or "." not in domain:
        raise ConfigError(f"not a valid domain: {text!r}", field=field)
    return domain


def _entry(text: str, field: str) -> str:
    entry = normalise_entry(text)
    if not entry:
        raise ConfigError(f"not an address or @domain: {text!r}", field=field)
    return entry


def _known_keys(raw: Mapping[str, Any], known: set[str] | frozenset[str], where: str) -> None:
    for key in sorted(set(raw) - set(known)):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown setting {key!r}{hint}", field=where or None)


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


def _limits(raw: Any, where: str) -> Limits:
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a table", field=where)
    known = {f.name for f in attrs.fields(Limits)}
    _known_keys(raw, known, where)
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError("must be a positive whole number", field=f"{where}.{key}")
    return Limits(**raw)


def _options(raw: Mapping[str, Any], where: str, base: Path | None) -> dict[str, Any]:
    """Provider options with secrets resolved (``<name>_env``, ``<name>_file``)
    and held as ``Secret``."""
    options: dict[str, Any] = {}
    for key, value in raw.items():
        name, _, via = key.rpartition("_")
        if via in ("env", "file") and name in SECRET_OPTIONS:
            if name in raw:
                raise ConfigError(f"give {name} or {key}, not both", field=f"{where}.{key}")
            if not isinstance(value, str) or not value:
                raise ConfigError("must be a non-empty string", field=f"{where}.{key}")
            options[name] = Secret(_secret_from(via, value, f"{where}.{key}", base))
        elif key in SECRET_OPTIONS and isinstance(value, str):
            options[key] = Secret(value)
        else:
            options[key] = value
    return options


def _secret_from(via: str, reference: str, field: str, base: Path | None) -> str:
    if via == "env":
        value = os.environ.get(reference)
        if not value:
            raise ConfigError(f"environment variable {reference} is not set", field=field)
        return value
    path = Path(reference).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", field=field) from None
    if not value:
        raise ConfigError(f"{path} is empty", field=field)
    return value
