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


def nul_paths(data: Any, path: str = "") -> dict[str, str]:
    """Paths of strings holding NUL characters: no database stores them faithfully (PostgreSQL refuses them)."""
    found: dict[str, str] = {}
    if isinstance(data, str):
        if "\x00" in data:
            found[path or "$"] = "must not contain NUL characters"
    elif isinstance(data, dict):
        for key, value in data.items():
            child = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                found[child] = "must not contain NUL characters"
            found.update(nul_paths(value, child))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.update(nul_paths(value, f"{path}.{index}" if path else str(index)))
    return found


def validate(model: type[M], data: Any) -> M:
    if fields := nul_paths(data):
        raise ValidationFailed("Text must not contain NUL characters.", fields=fields)
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("The request body does not have the expected shape.", fields=error_fields(exc)) from exc
    rules = getattr(body, "missing_fields", None)
    if rules is not None and (fields := rules()):
        raise ValidationFailed("The request body does not have the expected shape.", fields=fields)
    return body


def error_fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"]) or "$"
        fields.setdefault(path, error["msg"])
    return fields


async def json_body(request: Request, model: type[M]) -> M:
    return validate(model, parse_json(await read_body(request)))
