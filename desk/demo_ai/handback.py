"""Carrying on after a human hands control back (`control.returned`): post the AI's resume message.

Event deliveries are at least once, so the same event may arrive twice. `SeenEvents` drops repeats within this
process, and the message is posted with a `client_id` derived from the event id, so Desk stores it once even if
this process restarted between two deliveries. The delivery is acknowledged before the post is made, so Desk
will not redeliver when the post fails: transient failures (network, 5xx, 429) are retried here instead.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from desk.demo_ai.brain import resume_text

__all__ = ["RETRY_DELAYS_S", "SeenEvents", "post_resume", "resume_client_id"]

log = logging.getLogger("desk.demo_ai")

RETRY_DELAYS_S: tuple[float, ...] = (0.5, 2.0, 5.0)
REQUEST_TIMEOUT_S = 10.0
_CLIENT_ID_NAMESPACE = uuid.UUID("6f1c1f0e-4c1b-4d5e-9f59-7c2f4c1f8a11")


class SeenEvents:
    """The ids of the most recent `limit` events, oldest forgotten first."""

    def __init__(self, limit: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def add(self, event_id: str) -> bool:
        """Remember `event_id`; False when it was already there."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return True

    def forget(self, event_id: str) -> None:
        self._ids.pop(event_id, None)


def resume_client_id(event_id: str) -> str:
    return str(uuid.uuid5(_CLIENT_ID_NAMESPACE, f"control.returned:{event_id}"))


async def post_resume(
    *,
    desk_url: str,
    token: str,
    event_id: str,
    conversation_id: str,
    data: Mapping[str, Any],
    seen: SeenEvents,
    retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
) -> None:
    outcome = data.get("outcome")
    outcome = outcome if isinstance(outcome, Mapping) else {}
    note = data.get("note_for_ai", outcome.get("note_for_ai"))
    body = {
        "text": resume_text(note if isinstance(note, str) else None, outcome),
        "client_id": resume_client_id(event_id),
    }
    url = f"{desk_url.rstrip('/')}/api/v1/conversations/{conversation_id}/messages"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
        for attempt, delay in enumerate([0.0, *retry_delays_s]):
            await asyncio.sleep(delay)
            try:
                response = await client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                log.warning("resume post for %s failed (attempt %d): %s", conversation_id, attempt + 1, exc)
                continue
            if response.is_success:
                return
            if response.status_code < 500 and response.status_code != 429:
                # 409 not_in_control: a person took the conversation again; nothing left for the AI to say.
                log.warning(
                    "resume post for %s refused: %d %s",
                    conversation_id,
                    response.status_code,
                    response.text[:200],
                )
                return
            log.warning("resume post for %s got %d (attempt %d)", conversation_id, response.status_code, attempt + 1)
    # If Desk ever delivers this event again, let that delivery try again.
    seen.forget(event_id)
    log.error("gave up posting the resume message for %s", conversation_id)
