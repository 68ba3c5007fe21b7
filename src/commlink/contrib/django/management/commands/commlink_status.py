"""``manage.py commlink_status [--json]``: each channel's sync state."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from .....records import ChannelState
from ...conf import get_config, get_store
from ...runtime import printable

__all__ = ["Command"]


class Command(BaseCommand):
    help = "Show the sync state of every channel (configured or stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        store = get_store()
        ids = [item.channel.id for item in get_config().channels]
        ids += sorted({c.id for c in store.channels()} - set(ids))
        states = store.channel_states()
        found = [states.get(i) or ChannelState(i) for i in ids]
        if options["json"]:
            self.stdout.write(json.dumps([_as_json(s) for s in found], indent=2))
            return
        for state in found:
            last = _when(state.last_success) if state.last_success else "never"
            line = f"{state.channel_id}: {state.status.value}, {state.stage.value}, "
            line += f"last success {last}"
            if state.failures:
                line += f", {state.failures} failures in a row"
            self.stdout.write(printable(line))
            if state.last_error:
                self.stdout.write(printable(f"  last error: {state.last_error}"))


def _when(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _as_json(state: ChannelState) -> dict[str, Any]:
    def moment(value: datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") if value else None

    return {
        "channel": state.channel_id,
        "status": state.status.value,
        "stage": state.stage.value,
        "failures": state.failures,
        "last_error": state.last_error or None,
        "next_attempt": moment(state.next_attempt),
        "last_success": moment(state.last_success),
    }
