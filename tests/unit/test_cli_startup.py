"""``commlink --help`` and ``--version`` load no database, model or provider code."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "sqlalchemy",
    "attr",
    "icalendar",
    "commlink.stores",
    "commlink.providers",
    "commlink.sync",
)

_PROBE = """
import sys
from commlink.cli.main import main
try:
    main([{arg!r}])
except SystemExit:
    pass
print(sorted(m for m in sys.modules if m.split('.')[0] in {{'sqlalchemy', 'attr', 'icalendar'}}
             or m.startswith(('commlink.stores', 'commlink.providers', 'commlink.sync'))))
"""


def test_help_and_version_import_nothing_heavy() -> None:
    for arg in ("--help", "--version"):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE.format(arg=arg)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip().splitlines()[-1] == "[]", (arg, HEAVY, out[-500:])


def test_every_command_is_listed_in_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "commlink", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in (
        "demo",
        "check",
        "sync",
        "watch",
        "connect",
        "status",
        "timeline",
        "skipped",
        "db",
    ):
        assert command in out
