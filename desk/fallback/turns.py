"""The AI turn (CONTRACT.md section 6): for each customer message while the AI is in control, POST a signed
`turn` to the integration's webhook and act on the answer: post the reply, escalate with the AI's bundle, or, when
the AI fails or times out, fall down the ladder to a human with a bundle the desk builds itself.

This is the first rung of the fallback engine; retries, breakers and deterministic flows build on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from desk.actions import conversations, handoffs
from desk.actions.reads import recent_messages
from desk.auth.principals import IntegrationPrincipal
from desk.errors import DeskError
from desk.schemas import TurnReply
from desk.store.db import Database
from desk.store.models import Conversation, Integration
from desk.store.shapes import message_json
from desk.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

HISTORY_MAX = 50
FALLBACK_TEXT = "Sorry, I'm having trouble answering right now. Let me bring in a person from our team."


@dataclass(frozen=True)
class TurnTarget:
    integration: IntegrationPrincipal
    url: str
    secret: str


def _target(db: Database, conversation_id: str) -> TurnTarget | None:
    with db.read() as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None or conversation.integration_id is None:
            return None
        integration = session.get(Integration, conversation.integration_id)
    if integration is None or not integration.webhook_url or not integration.active:
        return None
    return TurnTarget(
        IntegrationPrincipal(integration.id, integration.name),
        integration.webhook_url,
        integration.webhook_secret,
    )


Call = Callable[..., Awaitable[Any]]  # Runtime.call: runs fn(db, ...) off the event loop
Transient = Callable[[dict[str, Any]], Awaitable[None]]  # Runtime.transient: an ephemeral frame (typing)
AI_AUTHOR = {"kind": "ai", "name": "Assistant"}


class TurnDispatcher:
    def __init__(
        self,
        call: Call,
        http: httpx.AsyncClient,
        *,
        secret: str,
        base_url: str,
        timeout_s: float,
        transient: Transient | None = None,
    ):
        self.call = call
        self.http = http
        self.transient = transient
        self.secret = secret
        self.base_url = base_url
        self.timeout_s = timeout_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, conversation_id: str, message: dict[str, Any]) -> None:
        task = asyncio.create_task(self._turn(conversation_id, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def _turn(self, conversation_id: str, message: dict[str, Any]) -> None:
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        self._users[conversation_id] = self._users.get(conversation_id, 0) + 1
        try:
            async with lock:  # one turn at a time per conversation, in message order
                await self._run_turn(conversation_id, message)
        except Exception:
            log.exception("turn failed for %s", conversation_id)
        finally:
            self._users[conversation_id] -= 1
            if self._users[conversation_id] == 0:
                del self._users[conversation_id]
                self._locks.pop(conversation_id, None)

    async def _run_turn(self, conversation_id: str, message: dict[str, Any]) -> None:
        target = await self.call(_target, conversation_id)
        if target is None:
            return
        history = await self.call(recent_messages, conversation_id, HISTORY_MAX)
        body = json.dumps(
            {
                "type": "turn",
                "conversation_id": conversation_id,
                "message": message,
                "history": [message_json(m) for m in history],
            },
            separators=(",", ":"),
        ).encode()
        if self.transient is not None:
            # The customer sees "The assistant is typing…" while the AI thinks.
            await self.transient({"conversation_id": conversation_id, "to": "customer", "author": AI_AUTHOR})
        try:
            response = await self.http.post(
                target.url, content=body, headers=signed_headers(target.secret, body), timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            await self._fall_back(target, conversation_id, f"AI webhook unreachable: {type(exc).__name__}")
            return
        if response.status_code == 202:
            return  # an async AI posts through the API later
        if response.status_code != 200:
            await self._fall_back(target, conversation_id, f"AI webhook answered {response.status_code}")
            return
        try:
            reply = TurnReply.model_validate_json(response.content)
        except ValidationError:
            await self._fall_back(target, conversation_id, "AI webhook answered malformed JSON")
            return
        await self._act(target, conversation_id, reply)

    async def _act(self, target: TurnTarget, conversation_id: str, reply: TurnReply) -> None:
        bundle = None
        if reply.escalate is not None:
            bundle = reply.escalate.model_dump(mode="json", exclude_none=True)
            if bundle.get("reason", {}).get("confidence") is None and reply.confidence is not None:
                bundle.setdefault("reason", {})["confidence"] = reply.confidence
        await self._answer(target, conversation_id, reply.reply, bundle)

    async def _fall_back(self, target: TurnTarget, conversation_id: str, detail: str) -> None:
        log.warning("AI turn failed for %s: %s", conversation_id, detail)
        bundle = {
            "reason": {"code": "system_error", "detail": detail},
            "priority": "high",
            "summary": f"The AI could not answer ({detail}). The customer is waiting for a reply.",
        }
        await self._answer(target, conversation_id, FALLBACK_TEXT, bundle)

    async def _answer(
        self, target: TurnTarget, conversation_id: str, text: str | None, bundle: dict[str, Any] | None
    ) -> None:
        """Say `text` as the AI, then, with a bundle, put the conversation in the queue."""
        try:
            if text:
                await self.call(
                    conversations.post_message, conversation_id=conversation_id, author=target.integration, text=text
                )
            if bundle is not None:
                await self.call(
                    handoffs.escalate,
                    integration=target.integration,
                    bundle={**bundle, "conversation_id": conversation_id},
                    idempotency_key=None,
                    secret=self.secret,
                    base_url=self.base_url,
                )
        except DeskError as exc:
            # e.g. a human took over while the AI was thinking: its late answer is dropped, never forced in.
            log.info("AI answer for %s not applied: %s", conversation_id, exc.message)
