"""API errors: every failure is ``{"error": {"status", "code", "message"}}`` with a fitting
HTTP status (docs/serve.md lists the codes)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ApiError"]


class ApiError(Exception):
    """An error a request gets back: ``status`` (HTTP), ``code`` (stable, for programs),
    ``message`` (one line, for people), extra ``headers`` (``Retry-After``,
    ``WWW-Authenticate``)."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, dict[str, object]]:
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}
