"""Reading request bodies: size limit (413), strict UTF-8 JSON (400), schema (422 with `fields`)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from desk.errors import BodyTooLarge, InvalidJSON, ValidationFailed

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request) -> bytes:
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJSON("The request body is not valid UTF-8.") from exc
    if not text.strip():
        raise InvalidJSON("The request body is empty; JSON was expected.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}.") from exc


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("The request body does not have the expected shape.", fields=error_fields(exc)) from exc


def error_fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"]) or "$"
        fields.setdefault(path, error["msg"])
    return fields


async def json_body(request: Request, model: type[M], *, optional: bool = False) -> M:
    raw = await read_body(request)
    if optional and not raw.strip():
        return model()
    return validate(model, parse_json(raw))
