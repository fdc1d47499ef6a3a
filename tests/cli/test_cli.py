"""The `desk` command line: migrate, user and integration enrolment, learning-log export."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests._support import (
    PASSWORD,
    Desk,
    ServerPool,
    claim,
    context_bundle,
    create_user,
    desk_cli,
    escalate,
    login,
    ok,
    outcome,
    post_message,
)

NOTE_FOR_AI = "Customer prefers email; refund done, do not offer it again."


async def test_user_create_reads_the_password_from_stdin(database_url: str, server: ServerPool) -> None:
    desk_cli(database_url, "migrate")
    desk_cli(database_url, "migrate")  # idempotent
    refused = desk_cli(
        database_url,
        "user",
        "create",
        "--email",
        "grace@example.com",
        "--name",
        "Grace",
        "--role",
        "agent",
        "--password",
        "in-argv",
        stdin="in-argv\n",
        check=False,
    )
    assert refused.returncode != 0, refused.stdout
    empty = desk_cli(
        database_url,
        "user",
        "create",
        "--email",
        "grace@example.com",
        "--name",
        "Grace",
        "--role",
        "agent",
        stdin="",
        check=False,
    )
    assert empty.returncode != 0, "an empty password was accepted"

    user = create_user(
        database_url,
        email="grace@example.com",
        name="Grace",
        role="supervisor",
        skills=("billing", "tech"),
        capacity=3,
    )
    assert set(user) >= {"id", "email", "role"}
    result = desk_cli(
        database_url,
        "user",
        "create",
        "--email",
        "ada@example.com",
        "--name",
        "Ada",
        "--role",
        "admin",
        stdin=PASSWORD + "\n",
    )
    assert PASSWORD not in result.stdout + result.stderr

    duplicate = desk_cli(
        database_url,
        "user",
        "create",
        "--email",
        "grace@example.com",
        "--name",
        "Grace",
        "--role",
        "agent",
        stdin=PASSWORD + "\n",
        check=False,
    )
    assert duplicate.returncode != 0
    assert "Traceback" not in duplicate.stderr

    running = server(database_url)
    session = login(running, "grace@example.com", PASSWORD)
    assert session["user"]["id"] == user["id"]
    assert session["user"]["role"] == "supervisor"


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(["--role", "overlord"], id="unknown-role"),
        pytest.param(["--role", "agent", "--capacity", "-1"], id="negative-capacity"),
        pytest.param(["--role", "agent", "--capacity", "many"], id="capacity-not-a-number"),
        pytest.param(["--role", "agent", "--email"], id="email-without-value"),
    ],
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_user_create_refuses_bad_arguments(database_url: str, bad: list[str]) -> None:
    desk_cli(database_url, "migrate")
    args = ["user", "create", "--email", "x@example.com", "--name", "X", *bad]
    refused = desk_cli(database_url, *args, stdin=PASSWORD + "\n", check=False)
    assert refused.returncode != 0, refused.stdout
    assert "Traceback" not in refused.stderr, refused.stderr


async def test_integration_create(desk: Desk) -> None:
    first = desk_cli(desk.database_url, "integration", "create", "--name", "Support bot")
    created = json.loads(first.stdout)
    assert created["token"].startswith("dski_")
    assert len(created["webhook_secret"]) >= 32
    second = json.loads(
        desk_cli(
            desk.database_url,
            "integration",
            "create",
            "--name",
            "CRM",
            "--webhook-url",
            "https://crm.example.com/hook",
        ).stdout
    )
    assert second["token"] != created["token"]
    assert second["id"] != created["id"]
    async with desk.api(created["token"]) as ai:
        ok(await ai.get("/api/v1/events", params={"after": 0, "wait": 0}))


async def test_learning_export(desk: Desk, tmp_path: Path) -> None:
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        handoff = await escalate(ai, context_bundle())
        cid = handoff["conversation_id"]
        await claim(staff, cid)
        await post_message(staff, cid, "Done, refunded.")
        ok(await staff.post(f"/api/v1/conversations/{cid}/return", json=outcome(note_for_ai=NOTE_FOR_AI)))

    lines = desk_cli(desk.database_url, "learning", "export", "--format", "jsonl").stdout.splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    assert len(entries) == 1, lines
    assert cid in json.dumps(entries[0])
    assert NOTE_FOR_AI in json.dumps(entries[0])
    assert "low_confidence" in json.dumps(entries[0])

    text = desk_cli(desk.database_url, "learning", "export", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1, text
    assert NOTE_FOR_AI in rows[0].values()
    assert cid in rows[0].values()

    since_all = desk_cli(desk.database_url, "learning", "export", "--since", "2000-01-01", "--format", "jsonl")
    assert len([line for line in since_all.stdout.splitlines() if line.strip()]) == 1
    future = desk_cli(desk.database_url, "learning", "export", "--since", "2999-01-01", "--format", "jsonl")
    assert future.stdout.strip() == ""

    bad = desk_cli(desk.database_url, "learning", "export", "--format", "xml", check=False)
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr
