"""``manage.py runserver``, which first sets up the demo (``demo_setup``), so
that one command runs the example on a fresh checkout."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.staticfiles.management.commands.runserver import (
    Command as RunserverCommand,
)
from django.core.management import call_command


class Command(RunserverCommand):
    help = "Set up the demo database if needed, then start the development server."

    def handle(self, *args: Any, **options: Any) -> None:
        # The auto-reloader runs this command again in a child process
        # (RUN_MAIN set); the parent has set the demo up already.
        if os.environ.get("RUN_MAIN") != "true":
            call_command("demo_setup", verbosity=options["verbosity"])
        super().handle(*args, **options)
