"""A local Google API server (Gmail, Calendar) for tests and benchmarks."""

from __future__ import annotations

from .server import GoogleApiServer

__all__ = ["GoogleApiServer"]
