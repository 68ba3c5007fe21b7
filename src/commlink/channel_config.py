"""A channel's settings, read once for configuration files and Django settings.

A channel is a table (a ``[[channels]]`` table of a TOML file) or a dict
(an entry of ``settings.COMMLINK["CHANNELS"]``) with the keys in
``CHANNEL_KEYS``: who owns the mailbox, which provider serves it, what may
be kept and shown, and ``options``, what the provider needs to connect.
Option values named like secrets (``SECRET_OPTIONS``) are held as
``Secret``.

Every mistake is a ``ConfigError`` naming its place in the words of where
it was written: ``channels[0].owner`` in a file (``FilePlace``),
``COMMLINK["CHANNELS"][0]["owner"]`` in Python settings (``SettingsPlace``).
"""

from __future__ import annotations

import abc
import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs

from .addresses import address_key, normalise_domain, normalise_entry, parse_address
from .credentials import Secret
from .errors import ConfigError
from .model import (
    CalendarContactPolicy,
    Channel,
    ChannelSettings,
    ContactPolicy,
    FolderSelection,
    Limits,
    Visibility,
)
from .providers.registry import PROVIDER_KINDS

__all__ = [
    "CHANNEL_KEYS",
    "SECRET_OPTIONS",
    "FilePlace",
    "Place",
    "SecretReader",
    "SettingsPlace",
    "check_keys",
    "parse_channel",
    "strings",
    "table",
]

CHANNEL_KEYS = frozenset(
    {
        "id", "user", "provider", "owner", "aliases", "org_domains", "visibility",
        "contact_policy", "calendar_contact_policy", "folders", "sync_internal", "blocklist",
        "create_companies", "sync_invites", "options", "path", "limits", "skip_details",
        "skip_unverified",
    }
)  # fmt: skip
#: Option names whose values are secrets (kept as ``Secret``).
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
_FILE_PROVIDERS = frozenset({"mbox", "maildir", "ics"})
_LIMIT_KEYS = frozenset(f.name for f in attrs.fields(Limits))


@attrs.frozen
class Place(abc.ABC):
    """Where a value sits, as a ``ConfigError`` names it; ``place / "key"``
    is the place of a key inside it."""

    path: str = ""
    #: what a mapping and the two booleans are called where settings are written
    mapping: ClassVar[str] = "table"
    booleans: ClassVar[str] = "true or false"

    def __truediv__(self, key: str) -> Place:
        return attrs.evolve(self, path=self._child(key))

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, field=self.path or None)

    @abc.abstractmethod
    def unknown(self, keys: Sequence[str], known: Collection[str]) -> ConfigError:
        """The error for keys (sorted) that are not among ``known``."""

    @abc.abstractmethod
    def _child(self, key: str) -> str:
        """The path of ``key`` inside this place."""


@attrs.frozen
class FilePlace(Place):
    """A place in a TOML configuration file: ``channels[0].options.password``."""

    def unknown(self, keys: Sequence[str], known: Collection[str]) -> ConfigError:
        close = difflib.get_close_matches(keys[0], sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return self.error(f"unknown setting {keys[0]!r}{hint}")

    def _child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


@attrs.frozen
class SettingsPlace(Place):
    """A place in Python settings: ``COMMLINK["CHANNELS"][0]["options"]``."""

    mapping: ClassVar[str] = "dict"
    booleans: ClassVar[str] = "True or False"

    def unknown(self, keys: Sequence[str], known: Collection[str]) -> ConfigError:
        return self.error(f"unknown keys {list(keys)}")

    def _child(self, key: str) -> str:
        return f'{self.path}["{key}"]'


#: Reads a secret given by reference (``<name>_env``, ``<name>_file``):
#: ``(via, reference, place)`` with ``via`` ``"env"`` or ``"file"``.
SecretReader = Callable[[str, str, Place], str]


def parse_channel(
    raw: Any,
    place: Place,
    *,
    base: Path | None = None,
    read_secret: SecretReader | None = None,
) -> tuple[Channel, dict[str, Any]]:
    """The channel a table of settings describes, and its provider options.

    A relative ``path`` resolves against ``base``. With ``read_secret``,
    ``<name>_env`` and ``<name>_file`` options of a secret ``<name>`` are
    read through it; without, they are options like any other.
    """
    raw = table(raw, place)
    check_keys(raw, CHANNEL_KEYS, place)
    channel_id = _text(raw, "id", place)
    user = _text(raw, "user", place)
    provider = _text(raw, "provider", place)
    if provider not in PROVIDER_KINDS:
        known = ", ".join(sorted(PROVIDER_KINDS))
        raise (place / "provider").error(f"unknown {provider!r} (known: {known})")
    settings = _settings(raw, place)
    options = _options(raw.get("options", {}), place / "options", read_secret)
    if "oauth" in options:
        _check_oauth(options, provider, settings.visibility, place / "options")
    if "path" in raw:
        options["path"] = _existing_path(_text(raw, "path", place), place / "path", base)
    elif provider in _FILE_PROVIDERS:
        raise (place / "path").error("is required for file providers")
    return Channel(channel_id, user, PROVIDER_KINDS[provider], provider, settings), options


def table(raw: Any, place: Place) -> Mapping[str, Any]:
    """``raw`` if it is a mapping."""
    if not isinstance(raw, Mapping):
        raise place.error(f"must be a {place.mapping}")
    return raw


def check_keys(raw: Mapping[str, Any], known: Collection[str], place: Place) -> None:
    """Refuse keys that are not ``known`` (a misspelling never passes silently)."""
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise place.unknown(unknown, known)


def strings(raw: Mapping[str, Any], key: str, place: Place) -> list[str]:
    """The list of non-empty strings at ``key`` (empty when absent)."""
    values = raw.get(key, [])
    if (
        isinstance(values, (str, bytes))
        or not isinstance(values, Sequence)
        or not all(isinstance(v, str) for v in values)
    ):
        raise (place / key).error("must be a list of strings")
    if not all(values):
        raise (place / key).error("must not hold an empty string")
    return list(values)


def _settings(raw: Mapping[str, Any], place: Place) -> ChannelSettings:
    text = _text(raw, "owner", place)
    owner = parse_address(text)
    if not owner.valid:
        raise (place / "owner").error(f"not valid as an address: {text!r}")
    folders = table(raw.get("folders", {}), place / "folders")
    check_keys(folders, {"include", "exclude"}, place / "folders")
    return ChannelSettings(
        owner=owner.key,
        aliases=_entries(raw, "aliases", place, address_key, "an address"),
        org_domains=_entries(raw, "org_domains", place, _domain, "a domain"),
        visibility=_choice(Visibility, raw, "visibility", place, Visibility.FULL),
        contact_policy=_choice(ContactPolicy, raw, "contact_policy", place, ContactPolicy.SENT),
        calendar_contact_policy=_choice(
            CalendarContactPolicy,
            raw,
            "calendar_contact_policy",
            place,
            CalendarContactPolicy.AS_PARTICIPANT,
        ),
        folders=FolderSelection(
            include=frozenset(strings(folders, "include", place / "folders")),
            exclude=frozenset(strings(folders, "exclude", place / "folders")),
        ),
        sync_internal=_flag(raw, "sync_internal", place, False),
        blocklist=_entries(raw, "blocklist", place, normalise_entry, "an address or @domain"),
        create_companies=_flag(raw, "create_companies", place, True),
        sync_invites=_flag(raw, "sync_invites", place, False),
        skip_details=_flag(raw, "skip_details", place, False),
        skip_unverified=_flag(raw, "skip_unverified", place, False),
        limits=_limits(raw.get("limits", {}), place / "limits"),
    )


def _options(raw: Any, place: Place, read_secret: SecretReader | None) -> dict[str, Any]:
    """Provider options, secrets held as ``Secret``."""
    raw = table(raw, place)
    options: dict[str, Any] = {}
    for key, value in raw.items():
        name, _, via = key.rpartition("_")
        if read_secret is not None and via in ("env", "file") and name in SECRET_OPTIONS:
            if name in raw:
                raise (place / key).error(f"give {name} or {key}, not both")
            if not isinstance(value, str) or not value:
                raise (place / key).error("must be a non-empty string")
            options[name] = Secret(read_secret(via, value, place / key))
        elif key in SECRET_OPTIONS and isinstance(value, str):
            options[key] = Secret(value)
        else:
            options[key] = value
    return options


def _check_oauth(
    options: Mapping[str, Any], provider: str, visibility: Visibility, place: Place
) -> None:
    """An OAuth channel names a known identity provider that serves its
    provider, and the app's client id."""
    from .auth.options import identity_of
    from .auth.scopes import scopes_for

    try:
        identity = identity_of(options)
        scopes_for(provider, visibility, identity=identity)
    except ConfigError as exc:
        raise (place / "oauth").error(str(exc).removeprefix("oauth: ")) from None
    client_id = options.get("client_id")
    if not isinstance(client_id, str) or not client_id.strip():
        raise (place / "client_id").error("is required with oauth")
    key = options.get("token_key")
    if key is not None and (not isinstance(key, str) or not key.strip()):
        raise (place / "token_key").error("must be a non-empty string")


def _existing_path(text: str, place: Place, base: Path | None) -> str:
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.exists():
        raise place.error(f"no such file or folder: {path}")
    return str(path)


def _limits(raw: Any, place: Place) -> Limits:
    values = table(raw, place)
    check_keys(values, _LIMIT_KEYS, place)
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise (place / key).error("must be a positive whole number")
    try:
        return Limits(**values)
    except ConfigError as exc:  # below the limit's bound: 1, or 0 where 0 turns a part off
        raise (place / str(exc.field)).error("must be a positive whole number") from None


def _text(raw: Mapping[str, Any], key: str, place: Place) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise (place / key).error("is required and must be a non-empty string")
    return value.strip()


def _entries(
    raw: Mapping[str, Any], key: str, place: Place, normalise: Callable[[str], str], what: str
) -> frozenset[str]:
    """The list at ``key``, each entry normalised (``""`` means not valid)."""
    found = set()
    for value in strings(raw, key, place):
        entry = normalise(value)
        if not entry:
            raise (place / key).error(f"not valid as {what}: {value!r}")
        found.add(entry)
    return frozenset(found)


def _domain(text: str) -> str:
    """A domain mail can come from, normalised; ``""`` otherwise."""
    domain = normalise_domain(text)
    return domain if "." in domain and address_key(f"x@{domain}") else ""


def _flag(raw: Mapping[str, Any], key: str, place: Place, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise (place / key).error(f"must be {place.booleans}")
    return value


def _choice(kind: Any, raw: Mapping[str, Any], key: str, place: Place, default: Any) -> Any:
    """A member of the enum ``kind`` by its value (any case)."""
    value = raw.get(key)
    if value is None:
        return default
    try:
        return kind(value.lower() if isinstance(value, str) else value)
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise (place / key).error(f"{value!r} is not one of {known}") from None
