"""The OpenAPI document describes the contract's JSON API; `/healthz` answers for load balancers."""

from __future__ import annotations

import re

import pytest

from tests._support import Desk, ok

CONTRACT_PATHS = {
    ("post", "/api/v1/conversations"),
    ("get", "/api/v1/conversations/{}"),
    ("post", "/api/v1/conversations/{}/messages"),
    ("post", "/api/v1/escalations"),
    ("get", "/api/v1/events"),
    ("post", "/api/v1/auth/token"),
    ("get", "/api/v1/queue"),
    ("post", "/api/v1/conversations/{}/claim"),
    ("post", "/api/v1/conversations/{}/return"),
    ("post", "/api/v1/conversations/{}/resolve"),
    ("post", "/api/v1/conversations/{}/transfer"),
    ("post", "/api/v1/conversations/{}/assign"),
    ("get", "/api/v1/learning-log"),
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_openapi_document_lists_the_contract(desk: Desk) -> None:
    async with desk.api() as anonymous:
        health = await anonymous.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        response = await anonymous.get("/api/v1/openapi.json")
        document = ok(response)
        assert response.headers["content-type"].startswith("application/json")
    assert str(document["openapi"]).startswith("3."), document.get("openapi")
    assert document["info"]["title"]
    documented = {
        (method.lower(), re.sub(r"\{[^}]+\}", "{}", path))
        for path, operations in document["paths"].items()
        for method in operations
        if method.lower() in {"get", "post", "put", "patch", "delete"}
    }
    missing = CONTRACT_PATHS - documented
    assert not missing, f"the OpenAPI document lacks {sorted(missing)}"
