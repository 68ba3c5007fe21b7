"""``manage.py demo_setup``: create the database, the demo users and records,
and sync the demo mailboxes and calendars."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from crm.demo import USERS, set_up_demo


class Command(BaseCommand):
    help = "Migrate, create the demo users and CRM records, and sync the demo mail and calendars."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        failed = []
        for report in set_up_demo():
            self.stdout.write(f"synced {report.summary()}")
            failed += [f"{report.channel_id}: {error}" for error in report.errors]
        if failed:
            raise CommandError("the demo did not sync:\n" + "\n".join(failed))
        users = ", ".join(f"{name} / {password}" for name, _, _, password in USERS)
        self.stdout.write(self.style.SUCCESS(f"demo ready; sign in as {users}"))
