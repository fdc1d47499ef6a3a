"""Bad input and the wrong side: every request is answered with the contract's error, never a 5xx, and nothing
already accepted is lost. (Every response in the suite also goes through `check_response`: no 5xx, error shape.)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests._support import (
    Desk,
    Integration,
    Json,
    Staff,
    assert_gapless,
    claim,
    close_code_after,
    context_bundle,
    create_conversation,
    dump,
    error_of,
    escalate,
    new_customer,
    ok,
    outcome,
    post_message,
    read,
)

MAX_BODY_BYTES = 1024 * 1024
MAX_FRAME_BYTES = 64 * 1024
UNKNOWN_ID = uuid.uuid4().hex


class Cast:
    """The people of these tests: an integration, two agents (one holds the conversation) and a supervisor."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.integration: Integration = desk.integration()
        self.holder: Staff = desk.staff("agent")
        self.other: Staff = desk.staff("agent")
        self.supervisor: Staff = desk.staff("supervisor")


@pytest.fixture(scope="module")
def cast(module_desk: Desk) -> Cast:
    return Cast(module_desk)


@pytest.fixture
async def assigned(cast: Cast) -> AsyncIterator[Json]:
    """A conversation the holder has claimed, with a few messages already accepted."""
    async with cast.desk.api(cast.integration.token) as ai, cast.desk.api(cast.holder.token) as staff:
        created = await create_conversation(ai)
        async with cast.desk.chat(created["customer_token"]) as customer:
            await customer.say("first, from the customer")
        await post_message(ai, created["id"], "second, from the AI")
        await escalate(ai, context_bundle(conversation_id=created["id"]))
        await claim(staff, created["id"])
        await post_message(staff, created["id"], "third, from the agent")
        before = await read(ai, created["id"])
        yield {**created, "messages": before["messages"]}
        # Nothing accepted is lost, whatever the test threw at the desk.
        after = await read(ai, created["id"])
        assert_gapless(after)
        assert after["messages"][: len(before["messages"])] == before["messages"]


def clients(cast: Cast) -> tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient]:
    desk = cast.desk
    return (
        desk.api(cast.integration.token),
        desk.api(cast.holder.token),
        desk.api(cast.other.token),
        desk.api(cast.supervisor.token),
    )


# --- malformed and wrong-shaped bodies ------------------------------------------------------------------------

MALFORMED = [
    pytest.param(b"{not json", id="syntax"),
    pytest.param(b'{"text": "unterminated', id="truncated"),
    pytest.param(b'{"text": "caf\xe9"}', id="latin-1"),
    pytest.param(b'{"text": "\xff\xfe\xfd"}', id="non-utf-8"),
    pytest.param(b"\xef\xbb\xbf\xff", id="bom-then-garbage"),
]


@pytest.mark.parametrize("body", MALFORMED)
async def test_malformed_json_is_400(cast: Cast, assigned: Json, body: bytes) -> None:
    ai, holder, _, _ = clients(cast)
    headers = {"Content-Type": "application/json"}
    cid = assigned["id"]
    async with ai, holder, cast.desk.api() as anonymous:
        for client, path in (
            (ai, "/api/v1/conversations"),
            (ai, "/api/v1/escalations"),
            (holder, f"/api/v1/conversations/{cid}/messages"),
            (holder, f"/api/v1/conversations/{cid}/return"),
            (holder, f"/api/v1/conversations/{cid}/resolve"),
            (holder, f"/api/v1/conversations/{cid}/transfer"),
            (anonymous, "/api/v1/auth/token"),
        ):
            extra = {"Idempotency-Key": uuid.uuid4().hex} if path.endswith("escalations") else {}
            response = await client.post(path, content=body, headers={**headers, **extra})
            error_of(response, 400, "invalid_json")
        # An empty body where one is required is not a valid request either.
        empty = await ai.post("/api/v1/conversations", content=b"", headers=headers)
        assert empty.status_code in (400, 422), empty.text
        async with cast.desk.api(cast.supervisor.token) as sup:
            error_of(
                await sup.post(f"/api/v1/conversations/{cid}/assign", content=body, headers=headers),
                400,
                "invalid_json",
            )


def _bundle_without(*keys: str, **changes: Any) -> Json:
    bundle = context_bundle(**changes)
    for key in keys:
        bundle.pop(key)
    return bundle


ESCALATION_SHAPES = [
    pytest.param(_bundle_without(reason={"detail": "no code"}), "reason.code", id="reason-code-missing"),
    pytest.param(_bundle_without(reason={"code": "bored", "confidence": 0.2}), "reason.code", id="reason-code-bad"),
    pytest.param(_bundle_without("reason"), "reason", id="reason-missing"),
    pytest.param(_bundle_without("transcript"), "transcript", id="transcript-missing"),
    pytest.param(_bundle_without(transcript="hello"), "transcript", id="transcript-not-a-list"),
    pytest.param(_bundle_without(transcript=[{"role": "robot", "text": "hi"}]), "transcript", id="transcript-role"),
    pytest.param(_bundle_without(priority="asap"), "priority", id="priority"),
    pytest.param(
        _bundle_without(reason={"code": "low_confidence", "confidence": "very"}), "reason.confidence", id="confidence"
    ),
    pytest.param(_bundle_without(customer={"email": 42}), "customer.email", id="customer-email"),
    pytest.param(_bundle_without(skills="billing"), "skills", id="skills"),
    pytest.param(
        _bundle_without(recommended_actions=[{"kind": "dance", "title": "x"}]), "recommended_actions", id="actions"
    ),
]


@pytest.mark.parametrize(("bundle", "path"), ESCALATION_SHAPES)
async def test_escalation_of_the_wrong_shape_is_422_with_fields(cast: Cast, bundle: Json, path: str) -> None:
    async with cast.desk.api(cast.integration.token) as ai:
        response = await ai.post("/api/v1/escalations", json=bundle, headers={"Idempotency-Key": uuid.uuid4().hex})
        fields = error_of(response, 422, "validation_error")["fields"]
        assert any(key == path or key.startswith(f"{path}.") for key in fields), (
            f"{path} not among the offending fields {fields}"
        )


@pytest.mark.parametrize(
    ("body", "path"),
    [
        pytest.param([], None, id="array"),
        pytest.param("a string", None, id="string"),
        pytest.param({"customer": "Ada"}, "customer", id="customer-not-object"),
        pytest.param({"customer": {"email": 42}}, "customer.email", id="customer-email"),
        pytest.param({"customer": new_customer(), "metadata": [1, 2]}, "metadata", id="metadata"),
    ],
)
async def test_conversation_of_the_wrong_shape_is_422(cast: Cast, body: object, path: str | None) -> None:
    async with cast.desk.api(cast.integration.token) as ai:
        fields = error_of(await ai.post("/api/v1/conversations", json=body), 422, "validation_error")["fields"]
        if path is not None:
            assert path in fields, fields


async def test_other_wrong_shapes_are_422(cast: Cast, assigned: Json) -> None:
    ai, holder, _, sup = clients(cast)
    cid = assigned["id"]
    async with ai, holder, sup, cast.desk.api() as anonymous:
        for client, path, body, field in (
            (holder, f"/api/v1/conversations/{cid}/messages", {}, "text"),
            (holder, f"/api/v1/conversations/{cid}/messages", {"text": 42}, "text"),
            (holder, f"/api/v1/conversations/{cid}/messages", {"text": "x", "client_id": 7}, "client_id"),
            (holder, f"/api/v1/conversations/{cid}/return", {"outcome": "done"}, "outcome"),
            (
                holder,
                f"/api/v1/conversations/{cid}/return",
                outcome(recommendation_feedback="loved it"),
                "outcome.recommendation_feedback",
            ),
            (holder, f"/api/v1/conversations/{cid}/resolve", {"outcome": {"tags": "x"}}, "outcome.tags"),
            (sup, f"/api/v1/conversations/{cid}/assign", {}, "agent_id"),
            (anonymous, "/api/v1/auth/token", {"email": "a@example.com"}, "password"),
            (ai, "/api/v1/conversations/" + cid + "/messages", {"text": ["a"]}, "text"),
        ):
            response = await client.post(path, json=body)
            if client is ai:
                # The AI is not in control here; either answer is fine as long as nothing is stored.
                assert response.status_code in (409, 422), response.text
                continue
            fields = error_of(response, 422, "validation_error")["fields"]
            assert field in fields, (path, body, fields)


async def test_nul_and_odd_text_is_stored_or_refused_never_a_500(cast: Cast, assigned: Json) -> None:
    async with cast.desk.api(cast.holder.token) as holder:
        for text in ("nul \u0000 byte", "emoji \U0001f600 and rtl \u202e", "", " " * 10, "x" * 100_000):
            response = await holder.post(f"/api/v1/conversations/{assigned['id']}/messages", json={"text": text})
            assert response.status_code in (200, 201, 413, 422), response.text
        async with cast.desk.chat(assigned["customer_token"]) as customer:
            await customer.send({"type": "message", "client_id": str(uuid.uuid4()), "text": "nul \u0000 too"})
            frame = await customer.until(lambda f: f.get("type") in ("ack", "error"), "ack or error")
            assert frame["type"] in ("ack", "error")


# --- size limits ----------------------------------------------------------------------------------------------


async def test_body_over_one_mib_is_413(cast: Cast, assigned: Json) -> None:
    big = b'{"text": "' + b"a" * MAX_BODY_BYTES + b'"}'
    headers = {"Content-Type": "application/json"}
    async with cast.desk.api(cast.holder.token) as holder, cast.desk.api(cast.integration.token) as ai:
        url = f"/api/v1/conversations/{assigned['id']}/messages"
        error_of(await holder.post(url, content=big, headers=headers), 413, "body_too_large")

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 64 * 1024):
                yield big[start : start + 64 * 1024]

        # Without a Content-Length the limit still holds.
        error_of(await holder.post(url, content=chunks(), headers=headers), 413, "body_too_large")
        padding = "p" * MAX_BODY_BYTES
        error_of(
            await ai.post(
                "/api/v1/escalations",
                json=context_bundle(summary=padding),
                headers={"Idempotency-Key": uuid.uuid4().hex},
            ),
            413,
            "body_too_large",
        )
        # Just under the limit is not refused for its size.
        response = await holder.post(url, json={"text": "b" * (MAX_BODY_BYTES - 1000)})
        assert response.status_code != 413, response.text


@pytest.mark.parametrize("side", ["chat", "staff"])
async def test_websocket_frame_over_64_kib_closes_1009(cast: Cast, assigned: Json, side: str) -> None:
    token = assigned["customer_token"] if side == "chat" else cast.holder.token
    url = f"{cast.desk.server.ws_url}/ws/{side}?token={token}"
    # Random text does not compress, so the frame is large on the wire too.
    text = os.urandom(MAX_FRAME_BYTES).hex()
    async with connect(url, compression=None, proxy=None, max_size=None) as ws:
        await ws.send(dump({"type": "message", "client_id": str(uuid.uuid4()), "text": text}))
        assert await close_code_after(ws) == 1009
    if side == "chat":
        async with cast.desk.chat(assigned["customer_token"]) as customer:
            ack = await customer.say("after the big frame")
            assert ack["seq"] == assigned["messages"][-1]["seq"] + 1


# --- credentials, roles and the wrong side --------------------------------------------------------------------


async def test_missing_or_bad_credentials_are_401(cast: Cast, assigned: Json) -> None:
    cid = assigned["id"]
    requests = [
        ("GET", f"/api/v1/conversations/{cid}", None),
        ("POST", "/api/v1/conversations", {"customer": new_customer()}),
        ("POST", f"/api/v1/conversations/{cid}/messages", {"text": "hi"}),
        ("POST", "/api/v1/escalations", context_bundle()),
        ("GET", "/api/v1/events?after=0&wait=0", None),
        ("GET", "/api/v1/queue", None),
        ("POST", f"/api/v1/conversations/{cid}/claim", None),
        ("POST", f"/api/v1/conversations/{cid}/return", outcome()),
        ("POST", f"/api/v1/conversations/{cid}/resolve", outcome()),
        ("POST", f"/api/v1/conversations/{cid}/transfer", {"to_skill": "billing"}),
        ("POST", f"/api/v1/conversations/{cid}/assign", {"agent_id": cast.other.id}),
        ("GET", "/api/v1/learning-log", None),
    ]
    credentials: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer dski_not-a-real-token"},
        {"Authorization": "Bearer dsks_not-a-real-token"},
        {"Authorization": f"Bearer {cast.integration.token}x"},
        {"Authorization": f"Bearer {cast.holder.token[:-2]}"},
        {"Authorization": f"Bearer {assigned['customer_token']}"},
        {"Authorization": f"Basic {cast.holder.token}"},
    ]
    async with cast.desk.api() as anonymous:
        for headers in credentials:
            for method, path, body in requests:
                extra = {"Idempotency-Key": uuid.uuid4().hex} if path.endswith("escalations") else {}
                response = await anonymous.request(method, path, json=body, headers={**headers, **extra})
                error_of(response, 401, "unauthorized")


async def test_customer_token_opens_nothing_but_its_own_conversation(cast: Cast, assigned: Json) -> None:
    async with cast.desk.api(assigned["customer_token"]) as as_customer:
        error_of(await as_customer.get(f"/api/v1/conversations/{assigned['id']}"), 401, "unauthorized")
        error_of(
            await as_customer.post(f"/api/v1/conversations/{assigned['id']}/messages", json={"text": "x"}),
            401,
            "unauthorized",
        )


async def test_unknown_ids_are_404(cast: Cast) -> None:
    ai, holder, _, sup = clients(cast)
    async with ai, holder, sup:
        for client in (ai, holder, sup):
            for bogus in (UNKNOWN_ID, "not-an-id", "1"):
                error_of(await client.get(f"/api/v1/conversations/{bogus}"), 404, "not_found")
        error_of(await ai.post(f"/api/v1/conversations/{UNKNOWN_ID}/messages", json={"text": "x"}), 404, "not_found")
        error_of(
            await ai.post(
                "/api/v1/escalations",
                json=context_bundle(conversation_id=UNKNOWN_ID),
                headers={"Idempotency-Key": uuid.uuid4().hex},
            ),
            404,
            "not_found",
        )
        for action, body in (
            ("claim", None),
            ("messages", {"text": "x"}),
            ("return", outcome()),
            ("resolve", outcome()),
            ("transfer", {"to_skill": "billing"}),
        ):
            error_of(await holder.post(f"/api/v1/conversations/{UNKNOWN_ID}/{action}", json=body), 404, "not_found")
        error_of(
            await sup.post(f"/api/v1/conversations/{UNKNOWN_ID}/assign", json={"agent_id": cast.other.id}),
            404,
            "not_found",
        )
        # An unknown id inside a body: not found, or a validation error naming the field.
        handoff = await escalate(ai, context_bundle())
        cid = handoff["conversation_id"]
        for action, body, field in (
            ("assign", {"agent_id": UNKNOWN_ID}, "agent_id"),
            ("transfer", {"to_agent_id": UNKNOWN_ID}, "to_agent_id"),
        ):
            response = await sup.post(f"/api/v1/conversations/{cid}/{action}", json=body)
            assert response.status_code in (404, 422), response.text
            if response.status_code == 422:
                assert field in response.json()["error"]["fields"], response.text
        assert (await read(sup, cid))["status"] == "queued"
    async with cast.desk.api() as anonymous:
        assert (await anonymous.get(f"/chat/dskc_{UNKNOWN_ID}")).status_code == 404
        assert (await anonymous.get("/api/v1/no-such-endpoint")).status_code == 404


async def test_wrong_role_and_wrong_assignee_are_403(cast: Cast, assigned: Json) -> None:
    ai, holder, other, sup = clients(cast)
    cid = assigned["id"]
    async with ai, holder, other, sup:
        error_of(
            await holder.post(f"/api/v1/conversations/{cid}/assign", json={"agent_id": cast.other.id}), 403, "forbidden"
        )
        # Another agent may not read it (404, they may not know it exists), nor act on it (403 or 404).
        error_of(await other.get(f"/api/v1/conversations/{cid}"), 404, "not_found")
        for action, body in (
            ("assign", {"agent_id": cast.other.id}),
            ("messages", {"text": "not mine"}),
            ("messages", {"text": "not my note", "internal": True}),
            ("return", outcome()),
            ("resolve", outcome()),
            ("transfer", {"to_agent_id": cast.other.id}),
        ):
            response = await other.post(f"/api/v1/conversations/{cid}/{action}", json=body)
            assert response.status_code in (403, 404), response.text
            assert response.json()["error"]["code"] in ("forbidden", "not_found"), response.text
        # A supervisor sees it, and may add notes but not reply in the agent's place.
        error_of(await sup.post(f"/api/v1/conversations/{cid}/messages", json={"text": "sup reply"}), 403, "forbidden")
        await post_message(sup, cid, "supervisor note", internal=True)
        # Integrations have no business in the staff API.
        for response in (
            await ai.get("/api/v1/queue"),
            await ai.post(f"/api/v1/conversations/{cid}/claim"),
            await ai.get("/api/v1/learning-log"),
        ):
            assert response.status_code in (401, 403), response.text
        conversation = await read(sup, cid)
        texts = dump(conversation["messages"])
        for text in ("not mine", "not my note", "sup reply"):
            assert text not in texts
        assert conversation["status"] == "assigned"


async def test_conflicts_are_409(cast: Cast, assigned: Json) -> None:
    ai, holder, other, _ = clients(cast)
    cid = assigned["id"]
    async with ai, holder, other:
        error_of(await other.post(f"/api/v1/conversations/{cid}/claim"), 409, "already_assigned")
        ok(await holder.post(f"/api/v1/conversations/{cid}/claim"))
        error_of(
            await ai.post(f"/api/v1/conversations/{cid}/messages", json={"text": "AI butting in"}),
            409,
            "not_in_control",
        )
        created = await create_conversation(ai)
        error_of(await holder.post(f"/api/v1/conversations/{created['id']}/claim"), 409, "not_queued")
        conversation = await read(ai, cid)
        assert "AI butting in" not in dump(conversation)


async def test_login_failures_look_the_same(cast: Cast) -> None:
    async with cast.desk.api() as anonymous:
        wrong_password = await anonymous.post(
            "/api/v1/auth/token", json={"email": cast.holder.email, "password": "wrong password"}
        )
        unknown_email = await anonymous.post(
            "/api/v1/auth/token", json={"email": "nobody@example.com", "password": "wrong password"}
        )
        error_of(wrong_password, 401, "invalid_credentials")
        error_of(unknown_email, 401, "invalid_credentials")
        assert wrong_password.json() == unknown_email.json()
        assert wrong_password.headers.get("content-type") == unknown_email.headers.get("content-type")

        # Same timing: an unknown email costs a password hash too, so it cannot be told apart by the clock.
        durations: dict[str, list[float]] = {"known": [], "unknown": []}
        for _ in range(7):
            for kind, email in (("known", cast.holder.email), ("unknown", f"nobody-{uuid.uuid4().hex}@example.com")):
                started = time.perf_counter()
                response = await anonymous.post("/api/v1/auth/token", json={"email": email, "password": "wrong!!1"})
                durations[kind].append(time.perf_counter() - started)
                assert response.status_code == 401
        known, unknown = statistics.median(durations["known"]), statistics.median(durations["unknown"])
        assert min(known, unknown) / max(known, unknown) > 0.3, f"median known {known:.4f}s, unknown {unknown:.4f}s"


async def test_concurrent_garbage_does_not_lose_accepted_messages(cast: Cast, assigned: Json) -> None:
    cid = assigned["id"]
    async with cast.desk.api(cast.holder.token) as holder:
        url = f"/api/v1/conversations/{cid}/messages"
        requests = []
        for index in range(10):
            requests.append(holder.post(url, json={"text": f"good {index}", "client_id": uuid.uuid4().hex}))
            requests.append(holder.post(url, content=b"{bad", headers={"Content-Type": "application/json"}))
            requests.append(holder.post(url, json={"text": None}))
        responses = await asyncio.gather(*requests)
        accepted = [r for r in responses if r.status_code in (200, 201)]
        assert len(accepted) == 10
        conversation = await read(holder, cid)
        texts = [m["text"] for m in conversation["messages"]]
        assert sorted(t for t in texts if t.startswith("good ")) == sorted(f"good {i}" for i in range(10))
        assert_gapless(conversation)


async def test_odd_queries_and_headers_are_refused_cleanly(cast: Cast) -> None:
    ai, _, _, sup = clients(cast)
    async with ai, sup, cast.desk.api() as anonymous:
        for params in ({"after": "abc"}, {"after": "0", "wait": "soon"}, {"after": "-5", "wait": "0"}):
            response = await ai.get("/api/v1/events", params=params)
            assert response.status_code in (200, 400, 422), response.text
        response = await ai.get("/api/v1/events", params={"after": "0", "wait": "-1"})
        assert response.status_code in (200, 422), response.text
        response = await sup.get("/api/v1/learning-log", params={"since": "last tuesday"})
        assert response.status_code in (400, 422), response.text
        for key in ("k" * 5000, "ключ-🙂", "-"):
            response = await ai.post(
                "/api/v1/escalations", json=context_bundle(), headers={b"Idempotency-Key": key.encode()}
            )
            assert response.status_code in (201, 400, 422), response.text
        for client, path in (
            (anonymous, "/chat/%00"),
            (anonymous, "/chat/" + "x" * 5000),
            (anonymous, "/ws/chat"),
            (ai, "/api/v1/conversations/%00"),
        ):
            response = await client.get(path)
            assert response.status_code in (400, 404, 405, 426), (path, response.status_code)
