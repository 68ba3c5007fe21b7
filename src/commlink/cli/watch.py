"""``commlink watch CONFIG --app MODULE:ATTR``: the push process of a Celery deployment.

Workers and the watch process share one configuration file. The module
the workers start with builds its tasks from it::

    # crm_sync.py
    from celery import Celery
    from commlink.cli.watch import config_factories
    from commlink.contrib.celery import install

    app = Celery("crm", broker="redis://localhost:6379/0")
    tasks = install(app, **config_factories("commlink.toml"))

and ``celery -A crm_sync worker`` runs the syncs while
``commlink watch commlink.toml --app crm_sync:tasks`` holds the push
connections (IMAP NOTIFY/IDLE, EWS streaming) and queues a sync for each
channel that changes. With a ``[push]`` table it also serves the webhook
endpoints (Gmail, Google Calendar, Graph) and keeps their subscriptions.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..model import Channel
from ..ports import CalendarProvider, MailProvider, Store
from ..providers.registry import connect
from ..stores.sql import SqlDirectory, SqlStore
from .config import Config, load_config
from .push_config import PushConfig

__all__ = ["cmd_watch", "config_factories"]


def config_factories(config: Config | str | Path) -> dict[str, Any]:
    """``store_factory``, ``provider_factory`` and ``directory_factory`` for
    ``commlink.contrib.celery.install``, from a configuration file (or a
    loaded ``Config``): its store, and its channels' provider options."""
    loaded = config if isinstance(config, Config) else load_config(config)
    options = {item.channel.id: item.options for item in loaded.channels}

    def provider_factory(channel: Channel) -> MailProvider | CalendarProvider:
        found = options.get(channel.id)
        if found is None:
            raise ConfigError(f"channel {channel.id!r} is not in the configuration", field="id")
        return connect(channel, found)

    def store_factory() -> Store:
        return SqlStore(loaded.store_url)

    return {
        "store_factory": store_factory,
        "provider_factory": provider_factory,
        "directory_factory": SqlDirectory,
    }


def _target(spec: str) -> Any:
    """The object ``MODULE:ATTR`` names (the current folder is importable,
    as for ``celery -A``)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError("expected MODULE:ATTR", field="app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {spec}: {exc}", field="app") from None
    return found


def cmd_watch(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    tasks = _target(args.app)
    serve: Callable[..., None] | None = getattr(tasks, "serve_watch", None)
    if not callable(serve):
        raise ConfigError(
            f"{args.app} is not what commlink.contrib.celery.install() returned", field="app"
        )
    store = SqlStore(config.store_url)
    try:
        for item in config.channels:  # the workers find the channels in the store
            store.save_channel(item.channel)
    finally:
        store.close()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    options = {
        "stop": stop,
        "tick": timedelta(seconds=args.tick),
        "max_watch_threads": args.max_watch_threads,
    }
    try:
        if config.push is None:
            serve(**options)
        else:
            _serve_with_push(tasks, config.push, config.store_url, options)
    except KeyboardInterrupt:
        stop.set()
    return 0


def _serve_with_push(tasks: Any, push: PushConfig, store_url: str, options: dict[str, Any]) -> None:
    """The watch process plus the webhook endpoints of ``[push]``: a
    notification queues the channel's sync like a NOTIFY/IDLE event does."""
    from ..contrib.celery_watch import CeleryWatch
    from .push import serving_push

    watch = CeleryWatch(tasks, **options)
    store = SqlStore(store_url)
    try:
        with serving_push(push, store, watch.wakes.wake, tasks.provider_factory) as service:
            watch.hub.duties.append(service.duty)
            watch.serve()
    finally:
        store.close()
