"""The mailboxes and calendars of ``settings.COMMLINK["CHANNELS"]``, and
syncing them through commlink's engine into the configured store."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from commlink.auth.options import token_key
from commlink.contrib.django.channels import ConfiguredChannel
from commlink.contrib.django.conf import get_config, get_directory, get_store
from commlink.errors import CommlinkError
from commlink.providers.registry import connect
from commlink.sync.engine import SyncEngine
from commlink.sync.report import SyncReport


def configured_channels() -> Sequence[ConfiguredChannel]:
    """The channels the settings declare (validated like a ``commlink`` config
    file), OAuth ones with the token store their grants are saved in."""
    return get_config().channels


def signed_in_account(config: ConfiguredChannel) -> str | None:
    """The account an OAuth channel's saved grant is for; ``None`` without one."""
    tokens = config.options.get("token_store")
    grant = tokens.load_token(token_key(config.channel.id, config.options)) if tokens else None
    if grant is None:
        return None
    return grant.account or config.channel.settings.owner


def needs_sign_in(config: ConfiguredChannel) -> bool:
    return "oauth" in config.options and signed_in_account(config) is None


def sync_channel(config: ConfiguredChannel) -> SyncReport:
    """One sync step for a configured channel.

    Once a channel is stored, its stored settings win over the configured
    ones: a visibility its owner changed on the accounts page stays.
    """
    store = get_store()
    stored = store.channel(config.channel.id)
    channel = (
        config.channel if stored is None else attrs.evolve(config.channel, settings=stored.settings)
    )
    engine = SyncEngine(store, get_directory())
    try:
        provider = connect(channel, config.options)
    except CommlinkError as exc:  # not signed in, or the sign-in was refused
        return engine.connect_failed(channel, exc)
    try:
        return engine.run(channel, provider)
    finally:
        provider.close()


def sync_all() -> list[SyncReport]:
    """One sync step for every configured channel that needs no sign-in or
    is signed in."""
    return [sync_channel(c) for c in configured_channels() if not needs_sign_in(c)]
