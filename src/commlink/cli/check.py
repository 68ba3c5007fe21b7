"""``commlink check``: can every configured channel be reached, and what would
it sync? Nothing is written: the store is only asked for its schema version."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from ..credentials import redact_text
from ..errors import AuthError
from ..model import ChannelKind, Folder
from ..ports import CalendarProvider, MailProvider
from .config import ChannelConfig, Config, absent_sqlite_file, load_config
from .output import as_json, terminal_safe

__all__ = ["check_channel", "cmd_check"]

_SHOWN = 8  # selected folder names listed per channel


def check_channel(item: ChannelConfig) -> dict[str, Any]:
    """Connect to one channel's provider, list its folders or calendars and
    say which are selected; never raises."""
    from ..providers.registry import connect

    channel = item.channel
    result: dict[str, Any] = {"channel": channel.id, "provider": channel.provider}
    started = time.monotonic()
    try:
        provider = connect(channel, item.options)
    except Exception as exc:
        return _failed(result, exc, started)
    try:
        if channel.kind is ChannelKind.MAIL and isinstance(provider, MailProvider):
            folders: Sequence[Folder] = provider.folders()
        elif isinstance(provider, CalendarProvider):
            folders = provider.calendars()
        else:  # pragma: no cover - the registry pairs kinds and providers
            folders = ()
    except Exception as exc:
        return _failed(result, exc, started)
    finally:
        with contextlib.suppress(Exception):  # a failed close does not change the verdict
            provider.close()
    selected = [f for f in folders if channel.settings.folders.selects(f)]
    result.update(
        status="ok",
        seconds=round(time.monotonic() - started, 2),
        folders=len(folders),
        selected=[f.name or f.id for f in selected],
    )
    return result


def _failed(result: dict[str, Any], exc: Exception, started: float) -> dict[str, Any]:
    result.update(
        status="auth_failed" if isinstance(exc, AuthError) else "failed",
        seconds=round(time.monotonic() - started, 2),
        error=redact_text(f"{type(exc).__name__}: {exc}")[:500],
    )
    return result


def _store(config: Config) -> dict[str, Any]:
    from ..stores.sql_schema import SCHEMA_VERSION, create_engine, dispose, schema_version

    try:
        database = absent_sqlite_file(config.store_url)
        if database is not None:  # checking must not create it
            return {"status": "ok", "schema": None, "note": f"no database at {database} yet"}
        engine = create_engine(config.store_url, None)
        try:
            found = schema_version(engine)
        finally:
            dispose(engine)
    except Exception as exc:
        return {"status": "failed", "error": redact_text(f"{type(exc).__name__}: {exc}")[:500]}
    if found == SCHEMA_VERSION:
        return {"status": "ok", "schema": found}
    if found is None:
        return {"status": "ok", "schema": None, "note": "no schema yet: `commlink sync` creates it"}
    return {"status": "outdated", "schema": found, "note": "run `commlink db upgrade`"}


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    items = [c for c in config.channels if not args.channel or c.channel.id in args.channel]
    store = _store(config)
    results = [check_channel(item) for item in items]
    if args.json:
        print(as_json({"store": store, "channels": results}))
    else:
        line = f"store: {store['status']}"
        if "schema" in store:
            line += f", schema {store['schema']}"
        if store.get("note") or store.get("error"):
            line += f" ({store.get('note') or store.get('error')})"
        print(terminal_safe(line))
        for result in results:
            print(terminal_safe(_line(result)))
    failed = store["status"] == "failed" or any(r["status"] != "ok" for r in results)
    return 1 if failed else 0


def _line(result: dict[str, Any]) -> str:
    head = f"{result['channel']} ({result['provider']}): "
    if result["status"] != "ok":
        reason = "authentication failed" if result["status"] == "auth_failed" else "failed"
        return head + f"{reason}: {result['error']}"
    names = result["selected"]
    shown = ", ".join(names[:_SHOWN]) + (
        f", +{len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    )
    return head + (
        f"ok in {result['seconds']} s, {result['folders']} found, {len(names)} selected"
        + (f": {shown}" if names else "")
    )
