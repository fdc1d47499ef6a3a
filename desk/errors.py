"""Errors are values with codes; the web layer maps them to HTTP answers and WebSocket frames in one place."""

from __future__ import annotations

from typing import Any


class DeskError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields is not None:
            error["fields"] = self.fields
        return {"error": error}


class InvalidJSON(DeskError):
    status = 400
    code = "invalid_json"


class ValidationFailed(DeskError):
    status = 422
    code = "validation_error"


class Unauthorized(DeskError):
    status = 401
    code = "unauthorized"


class Forbidden(DeskError):
    status = 403
    code = "forbidden"


class NotFound(DeskError):
    status = 404
    code = "not_found"


class Conflict(DeskError):
    status = 409
    code = "conflict"


class BodyTooLarge(DeskError):
    status = 413
    code = "body_too_large"
