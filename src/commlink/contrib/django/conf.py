"""``settings.COMMLINK``: the store, the directory and the channels a Django
host configures, read once per process.

``get_store()``, ``get_directory()`` and ``get_config()`` build what the
settings name on first use and keep it; changing ``COMMLINK`` (for example
with ``override_settings`` in a test) clears them. See ``docs/django.md``
for every key.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import attrs
from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ...auth.options import identity_of
from ...credentials import Secret
from ...errors import ConfigError
from ...ports import Directory, Store, SubscriptionStore, TokenStore
from .channels import ChannelsConfig, parse_channels
from .directory_mapping import DirectoryMapping, parse_mapping

__all__ = [
    "commlink_settings",
    "get_config",
    "get_directory",
    "get_mapping",
    "get_store",
    "get_subscription_store",
    "reset",
]

_KNOWN = {
    "STORE",
    "STORE_DATABASE",
    "DIRECTORY",
    "CHANNELS",
    "TOKENS",
    "PUSH",
    "OAUTH",
    "RELINK",
    "EVENTS",
    "WAKE",
}

_lock = threading.RLock()
_built: dict[str, Any] = {}


def commlink_settings() -> Mapping[str, Any]:
    """``settings.COMMLINK`` (empty when unset), its keys checked."""
    raw = getattr(settings, "COMMLINK", None) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError("settings.COMMLINK must be a dict")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ConfigError(f"settings.COMMLINK: unknown keys {unknown} (known: {sorted(_KNOWN)})")
    return raw


def _once(name: str, build: Any) -> Any:
    with _lock:
        if name not in _built:
            _built[name] = build()
        return _built[name]


def get_store() -> Store:
    """The configured store: ``"orm"`` (the default) is ``DjangoStore`` on
    ``STORE_DATABASE``; any other value is an SQLAlchemy URL for ``SqlStore``."""
    store: Store = _once("store", _build_store)
    return store


def _build_store() -> Store:
    conf = commlink_settings()
    kind = conf.get("STORE", "orm")
    if not isinstance(kind, str) or not kind:
        raise ConfigError('settings.COMMLINK["STORE"] must be "orm" or a database URL')
    options = _event_options(conf.get("EVENTS"), conf.get("STORE_DATABASE", "default"))
    if kind == "orm":
        from .store import DjangoStore

        try:
            return DjangoStore(using=conf.get("STORE_DATABASE", "default"), **options)
        except TypeError as exc:
            raise ConfigError(
                'settings.COMMLINK["EVENTS"]: the ORM store does not deliver host events'
            ) from exc
    from ...stores.sql import SqlStore

    return SqlStore(kind, **options)


def _event_options(events: Any, using: str) -> dict[str, Any]:
    """``EVENTS``: ``None`` (off), ``"hook"`` (signals sent in-process after
    each commit) or ``"outbox"`` (kept with the data; the commands relay them)."""
    if events is None:
        return {}
    if events == "hook":
        from .signals import DjangoSignalSink

        return {"on_events": DjangoSignalSink(using)}
    if events == "outbox":
        return {"outbox": True}
    raise ConfigError('settings.COMMLINK["EVENTS"] must be None, "hook" or "outbox"')


def get_subscription_store() -> SubscriptionStore:
    """Where push subscriptions are kept: the ORM table with ``STORE = "orm"``,
    else the SQL store's own."""
    subscriptions: SubscriptionStore = _once("subscriptions", _build_subscriptions)
    return subscriptions


def _build_subscriptions() -> SubscriptionStore:
    store = get_store()
    if commlink_settings().get("STORE", "orm") == "orm":
        from .tokens import DjangoSubscriptionStore

        orm: SubscriptionStore = DjangoSubscriptionStore(
            using=commlink_settings().get("STORE_DATABASE", "default")
        )
        return orm
    made: SubscriptionStore = getattr(store, "subscription_store")()  # noqa: B009
    return made


def get_mapping() -> DirectoryMapping | None:
    """The declared directory mapping, or ``None`` when ``DIRECTORY`` is unset
    or names a host's own ``Directory`` factory."""
    mapping: DirectoryMapping | None = _once("mapping", _build_mapping)
    return mapping


def _build_mapping() -> DirectoryMapping | None:
    raw = commlink_settings().get("DIRECTORY")
    return parse_mapping(raw) if isinstance(raw, Mapping) else None


def get_directory() -> Directory:
    """The configured directory: a ``ModelDirectory`` over the declared
    mapping, or what the dotted path in ``DIRECTORY`` returns when called."""
    directory: Directory = _once("directory", _build_directory)
    return directory


def _build_directory() -> Directory:
    raw = commlink_settings().get("DIRECTORY")
    if raw is None:
        raise ConfigError('settings.COMMLINK["DIRECTORY"] is not set')
    if isinstance(raw, str):
        try:
            factory = import_string(raw)
        except ImportError as exc:
            raise ConfigError(f'settings.COMMLINK["DIRECTORY"]: cannot import {raw!r}') from exc
        directory: Directory = factory()
        return directory
    from .directory import ModelDirectory

    mapping = get_mapping()
    assert mapping is not None
    return ModelDirectory(mapping)


def get_config() -> ChannelsConfig:
    """The channels (``CHANNELS``; see ``channels.py``), each OAuth channel
    given the token store (``TOKENS`` seals it), and ``PUSH``."""
    config: ChannelsConfig = _once("config", _build_config)
    return config


def _build_config() -> ChannelsConfig:
    conf = commlink_settings()
    config = parse_channels(conf.get("CHANNELS", []), conf.get("TOKENS"), conf.get("PUSH"))
    if not any(identity_of(item.options) for item in config.channels):
        return config
    tokens = _token_store(config.token_key)
    channels = tuple(
        attrs.evolve(item, options={**item.options, "token_store": tokens})
        if identity_of(item.options) and "token_store" not in item.options
        else item
        for item in config.channels
    )
    return attrs.evolve(config, channels=channels)


def _token_store(key: Secret | None) -> TokenStore:
    """Where grants are saved: the ORM table with ``STORE = "orm"``, else the
    SQL store's own table."""
    if commlink_settings().get("STORE", "orm") == "orm":
        from .tokens import DjangoTokenStore

        using = commlink_settings().get("STORE_DATABASE", "default")
        orm: TokenStore = DjangoTokenStore(key, using=using)
        return orm
    store = get_store()  # its tables, the grants' included, exist before a grant is saved
    sql: TokenStore = getattr(store, "token_store")(key)  # noqa: B009
    return sql


def reset() -> None:
    """Forget what was built (the next call reads the settings again)."""
    with _lock:
        store = _built.pop("store", None)
        _built.clear()
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting == "COMMLINK":
        reset()


setting_changed.connect(_on_setting_changed, dispatch_uid="commlink.conf.reset")
