"""``manage.py commlink_watch``: the long-running sync process.

Syncs channels when due, holds push connections (IMAP IDLE/NOTIFY, EWS
streaming), syncs at once the channels the push views flag, relays host
events from the outbox and keeps webhook subscriptions alive. Stops on
SIGTERM or Ctrl-C (or after ``--seconds``).
"""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...runtime import build_runner, configured_channels, watch_duties

__all__ = ["Command"]


class Command(BaseCommand):
    help = "Keep the channels of COMMLINK['CHANNELS'] in sync until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval", type=float, default=300.0, help="seconds between regular syncs"
        )
        parser.add_argument(
            "--tick", type=float, default=5.0, help="seconds between checks for work"
        )
        parser.add_argument("--no-watch", action="store_true", help="poll only, no push")
        parser.add_argument(
            "--seconds", type=float, default=None, help="stop after this many seconds"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        configured_channels()
        tick = timedelta(seconds=options["tick"])
        runner = build_runner(
            watch=not options["no_watch"], interval=timedelta(seconds=options["interval"])
        )
        runner.hub.duties.extend(watch_duties(runner, tick))
        timer = None
        if options["seconds"] is not None:
            timer = threading.Timer(options["seconds"], runner.stop)
            timer.daemon = True
            timer.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        self.stdout.write("commlink: watching; stop with Ctrl-C")
        try:
            runner.serve(tick=tick)
        except KeyboardInterrupt:
            runner.stop()
        finally:
            if timer is not None:
                timer.cancel()
