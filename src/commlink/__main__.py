"""``python -m commlink``: the ``commlink`` command."""

from .cli import main

raise SystemExit(main())
