"""The OpenAPI document of the JSON API, built from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from desk.schemas import (
    AssignBody,
    ConversationCreate,
    EscalationCreate,
    LoginBody,
    MessageCreate,
    OutcomeBody,
    TransferBody,
)

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}
_ANY = {"type": "object", "additionalProperties": True}
_ERRORS = {
    str(code): {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for code, text in [
        (400, "Malformed JSON"),
        (401, "Missing or bad credentials"),
        (403, "Not allowed"),
        (404, "Not found"),
        (409, "Conflict with the current state"),
        (413, "Body too large"),
        (422, "Wrong shape"),
    ]
}


def _op(
    summary: str,
    tag: str,
    *,
    body: type[BaseModel] | None = None,
    status: int = 200,
    params: list[dict[str, Any]] | None = None,
    security: str = "bearer",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            str(status): {"description": "OK", "content": {"application/json": {"schema": _ANY}}},
            **_ERRORS,
        },
    }
    if security:
        op["security"] = [{security: []}]
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}},
        }
    if params:
        op["parameters"] = params
    return op


_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]


def document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        ConversationCreate,
        MessageCreate,
        EscalationCreate,
        LoginBody,
        OutcomeBody,
        TransferBody,
        AssignBody,
    ]
    schemas: dict[str, Any] = {"Error": _ERROR}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    idem = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}
    query = [
        {"name": "after", "in": "query", "schema": {"type": "string"}},
        {"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 30}},
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Desk API",
            "version": "1.0.0",
            "description": 'Human-handoff desk for AI agents. Errors: {"error": {code, message, fields?}}.',
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/v1/conversations": {
                "post": _op("Create a conversation (integration)", "integration", body=ConversationCreate, status=201)
            },
            "/api/v1/conversations/{id}": {"get": _op("Read a conversation", "conversations", params=_ID)},
            "/api/v1/conversations/{id}/messages": {
                "post": _op(
                    "Post a message: as the AI (integration) or as the assignee (staff)",
                    "conversations",
                    body=MessageCreate,
                    status=201,
                    params=_ID,
                )
            },
            "/api/v1/escalations": {
                "post": _op(
                    "Escalate to a human with a context bundle",
                    "integration",
                    body=EscalationCreate,
                    status=201,
                    params=[idem],
                )
            },
            "/api/v1/events": {"get": _op("Long-poll the integration's event feed", "integration", params=query)},
            "/api/v1/auth/token": {"post": _op("Staff login: a bearer token", "staff", body=LoginBody, security="")},
            "/api/v1/queue": {"get": _op("The live queue, most urgent first", "staff")},
            "/api/v1/conversations/{id}/claim": {"post": _op("Claim a queued conversation", "staff", params=_ID)},
            "/api/v1/conversations/{id}/return": {
                "post": _op("Hand control back to the AI", "staff", body=OutcomeBody, params=_ID)
            },
            "/api/v1/conversations/{id}/resolve": {"post": _op("Resolve", "staff", body=OutcomeBody, params=_ID)},
            "/api/v1/conversations/{id}/transfer": {
                "post": _op("Transfer to an agent or a skill", "staff", body=TransferBody, params=_ID)
            },
            "/api/v1/conversations/{id}/assign": {
                "post": _op("Assign (supervisors)", "staff", body=AssignBody, params=_ID)
            },
            "/api/v1/conversations/{id}/abandon": {
                "post": _op("The customer left while queued (integration)", "integration", params=_ID)
            },
            "/api/v1/metrics/summary": {
                "get": _op(
                    "KPIs over a window, overall and per reason code",
                    "staff",
                    params=[{"name": "window", "in": "query", "schema": {"type": "string", "example": "1h"}}],
                )
            },
            "/api/v1/admin/dead-letters": {
                "get": _op(
                    "Webhook dead letters, newest first (admins)",
                    "admin",
                    params=[{"name": "integration_id", "in": "query", "schema": {"type": "string"}}],
                )
            },
            "/api/v1/admin/dead-letters/{id}/replay": {
                "post": _op(
                    "Send a dead-lettered event again now, answered after the attempt (admins)", "admin", params=_ID
                )
            },
            "/api/v1/learning-log": {
                "get": _op(
                    "Learning log entries",
                    "staff",
                    params=[{"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
                )
            },
        },
    }


async def openapi_json(_request: Request) -> JSONResponse:
    return JSONResponse(document())


ROUTES = [Route("/api/v1/openapi.json", openapi_json, methods=["GET"])]
