"""Local Microsoft servers for tests: a Microsoft Graph subset and an EWS
SOAP subset, each following the documented wire format closely enough that
the real clients (httpx for Graph, exchangelib for EWS) talk to them."""

from __future__ import annotations

from typing import Any

__all__ = ["EwsServer", "GraphServer"]


def __getattr__(name: str) -> Any:
    if name == "GraphServer":
        from .graph import GraphServer

        return GraphServer
    if name == "EwsServer":
        from .ews import EwsServer

        return EwsServer
    raise AttributeError(name)
