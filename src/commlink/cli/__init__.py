"""The ``commlink`` command line: commands (``main``), configuration files
(``config``), terminal output (``output``) and the demo (``demo``)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["command", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``commlink`` command; returns its exit status."""
    from .main import main as run

    return run(argv)


def command() -> int:
    """The ``commlink`` executable (and ``python -m commlink``): ``main`` in
    a process of its own, whose garbage collector it sets up for syncing
    (``commlink.tune_gc``). A host calling ``main`` keeps its own settings."""
    from ..runtime import tune_gc

    tune_gc()
    return main()
