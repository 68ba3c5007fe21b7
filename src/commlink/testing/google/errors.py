"""Errors the local Google API server answers with, in Google's JSON shape."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "error_body"]

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    410: "GONE",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An error response: HTTP status, Google ``reason`` and message."""

    def __init__(
        self, status: int, reason: str, message: str, retry_after: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


def error_body(error: ApiError) -> dict[str, Any]:
    return {
        "error": {
            "code": error.status,
            "message": error.message,
            "errors": [{"message": error.message, "domain": "global", "reason": error.reason}],
            "status": _STATUS.get(error.status, "UNKNOWN"),
        }
    }
