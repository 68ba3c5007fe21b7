"""``python -m commlink``: the ``commlink`` command."""

from .cli import command

raise SystemExit(command())
