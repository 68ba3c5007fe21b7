"""``manage.py commlink_sync [--channel ID ...]``: one sync pass."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import get_store
from ...runtime import build_runner, configured_channels, printable
from ...signals import relay_events

__all__ = ["Command"]


class Command(BaseCommand):
    help = "Sync every channel of COMMLINK['CHANNELS'] (or the ones named) once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--channel", action="append", default=[], help="a channel id (repeatable)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        channels = configured_channels(options["channel"])
        runner = build_runner(watch=False)
        reports = runner.run_once(channels)
        relay_events(get_store())
        failed = False
        for report in reports:
            self.stdout.write(printable(report.summary()))
            for error in report.errors:
                self.stdout.write(printable(f"  error: {error}"))
                failed = True
        if failed:
            raise CommandError("some channels had errors (see above)")
