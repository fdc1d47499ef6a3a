"""A handoff the customer was promised survives the process that promised it: the human tier tells the customer
first and queues the conversation right after (desk/actions/fallback.py, `announce_handoff`); if the process dies
in between, the requeue sweep of any process completes it.

The crash is simulated by writing what `announce_handoff` leaves behind straight into the database of a running
desk, dated before UNFINISHED_HANDOFF_S: the one thing a test cannot do through the public interface is kill a
process between two transactions on purpose.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from desk.actions.fallback import HANDOFF
from desk.runtime import REQUEUE_SWEEP_S, UNFINISHED_HANDOFF_S
from desk.store.db import Database
from desk.store.models import FallbackState
from desk.store.types import utcnow
from tests._support import Desk, create_conversation, read

SWEEP_SLACK_S = 5.0


async def test_a_promised_handoff_left_half_done_is_completed_by_the_sweep(desk: Desk) -> None:
    integration = desk.integration()
    supervisor = desk.staff("supervisor")
    async with desk.api(integration.token) as ai, desk.api(supervisor.token) as staff:
        created = await create_conversation(ai)
        bundle = {
            "reason": {"code": "system_error", "detail": "AI webhook unreachable: timeout"},
            "priority": "high",
            "summary": "The AI timed out; the customer was told a person is coming.",
        }
        db = Database(desk.server.database_url)
        try:
            with db.write() as session:
                session.add(
                    FallbackState(
                        conversation_id=created["id"],
                        kind=HANDOFF,
                        name="system_error",
                        reason_code="system_error",
                        context={"bundle": bundle, "sla_s": 300},
                        policy_version="crashed+00000000",
                        updated_at=utcnow() - timedelta(seconds=UNFINISHED_HANDOFF_S + 1),
                    )
                )
        finally:
            db.dispose()

        deadline = asyncio.get_running_loop().time() + REQUEUE_SWEEP_S + SWEEP_SLACK_S
        while (conversation := await read(staff, created["id"]))["status"] != "queued":
            assert asyncio.get_running_loop().time() < deadline, f"the sweep did not complete it: {conversation}"
            await asyncio.sleep(0.2)  # polling a condition under a deadline
        handoff = conversation["handoff"]
        assert handoff["reason"]["code"] == "system_error"
        assert handoff["priority"] == "high"
        assert handoff["policy_version"] == "crashed+00000000"
        assert handoff["summary"] == bundle["summary"]
