"""The ``commlink`` command line: commands (``main``), configuration files
(``config``), terminal output (``output``) and the demo (``demo``)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``commlink`` command; returns its exit status."""
    from .main import main as run

    return run(argv)
