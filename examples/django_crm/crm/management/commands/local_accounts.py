"""``manage.py local_accounts``: run local Google sign-in and Gmail servers
until stopped, so the accounts page can connect a mailbox in development."""

from __future__ import annotations

import signal
import threading
from typing import Any

from crm_site.local_google import ACCOUNT
from django.conf import settings
from django.core.management.base import BaseCommand

from crm.local_accounts import LocalAccounts


class Command(BaseCommand):
    help = "Run local Google sign-in and Gmail API servers for the accounts page (Ctrl-C stops)."

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with LocalAccounts(settings.DATA_DIR) as local:
            self.stdout.write(
                f"Google sign-in at {local.oauth.root_url}, Gmail API at {local.api.base_url} "
                f"for {ACCOUNT}.\n"
                "Start (or restart) runserver now, sign in as bob and connect bob-gmail "
                "on the accounts page. Ctrl-C stops the servers."
            )
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
        self.stdout.write("stopped")
