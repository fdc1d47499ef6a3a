"""Event delivery to integration webhooks, from the durable event rows (CONTRACT.md section 6).

One process at a time delivers for an integration: it holds a lease (a conditional update on the integration row)
that it renews while it works, backoffs included. Events go out one by one in id order, so they arrive in order per
conversation. What happens next depends on the answer:

- a 2xx: delivered; the cursor moves on.
- no answer (timeout, refused connection...), 408, 429 or 5xx: the same event is retried after an exponential
  backoff with full jitter, or after the answer's `Retry-After` (seconds, capped), so every event is delivered at
  least once. Receivers deduplicate by `Desk-Event-Id`.
- any other answer, 3xx included (redirects are not followed: a webhook URL that moved is the admin's to fix, and
  following one would send signed events somewhere nobody configured): the receiver refused this event for good.
  It is dead-lettered (a `DeadLetter` row) and the cursor moves on, in one transaction, so a crash can neither
  skip an event unrecorded nor record it twice. Admins see dead letters and replay them one by one
  (`Deliverer.replay`), outside the in-order loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import anyio.to_thread
import httpx
from sqlalchemy import or_, select, update
from sqlmodel import Session, col

from desk.actions import dead_letters
from desk.auth.principals import StaffPrincipal
from desk.ids import new_id
from desk.realtime.pump import EventPump, Subscription
from desk.store.db import Database
from desk.store.events import EventRecord, fetch_for_integration
from desk.store.models import DeadLetter, Integration
from desk.store.types import utcnow
from desk.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

Run = Callable[..., Awaitable[Any]]  # run(fn, *args): fn(*args) off the event loop

LEASE_S = 30
DELIVERY_TIMEOUT_S = 10.0
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 300.0
RETRY_AFTER_MAX_S = 120.0
SCAN_S = 5.0
MAX_ERROR_CHARS = 500
RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Attempt:
    """What one POST of an event came to. `status` is None when there was no answer at all."""

    status: int | None
    error: str
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retried(self) -> bool:
        return self.status is None or self.status in RETRIED_STATUSES or self.status >= 500

    @classmethod
    def of(cls, response: httpx.Response) -> Attempt:
        status = response.status_code
        error = f"answered {status} {response.reason_phrase}".strip()
        if 300 <= status < 400:
            error += f": redirects are not followed (Location: {response.headers.get('location', 'none')})"
        return cls(status, error[:MAX_ERROR_CHARS], retry_after_s(response.headers.get("retry-after")))


def retry_after_s(header: str | None) -> float | None:
    """A `Retry-After` in seconds, capped; None for anything else (the HTTP-date form included: backoff applies)."""
    if header is None or not header.strip().isdigit():
        return None
    return min(float(header.strip()), RETRY_AFTER_MAX_S)


def backoff_s(failures: int) -> float:
    """Full jitter: anywhere between 0 and the exponential bound, so receivers that recover are not stampeded."""
    return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(failures - 1, 30)))


class Deliverer:
    def __init__(self, db: Database, http: httpx.AsyncClient, pump: EventPump, *, run: Run | None = None) -> None:
        self.db = db
        # Where the database work runs: the runtime's database thread, so that on SQLite deliveries queue behind
        # the desk's writes instead of contending with them for the write lock (and the GIL).
        self._run: Run = run or anyio.to_thread.run_sync
        self.http = http
        self.pump = pump
        self.owner = uuid.uuid4().hex
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._scan_forever())

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._workers.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        await self._run(self._release_all)

    async def replay(self, dead_letter_id: str, *, by: StaffPrincipal) -> int | None:
        """Send one dead-lettered event again now, signed afresh; the receiver's status (None: no answer).

        Admins only (the action checks). It is not retried and does not wait for the in-order loop: the receiver
        may get it after later events of its conversation, which is why it carries its original `Desk-Event-Id`.
        """
        target = await self._run(partial(dead_letters.replay, self.db, dead_letter_id=dead_letter_id, by=by))
        attempt = await self._send(target.url, target.secret, target.event)
        await self._run(partial(dead_letters.mark_replayed, self.db, dead_letter_id, attempt.status, by=by))
        return attempt.status

    async def _scan_forever(self) -> None:
        while True:
            try:
                for integration_id in await self._run(self._with_webhooks):
                    worker = self._workers.get(integration_id)
                    if worker is None or worker.done():
                        self._workers[integration_id] = asyncio.create_task(self._work(integration_id))
            except Exception:
                log.exception("webhook scan failed")
            await asyncio.sleep(SCAN_S)  # new integrations are rare: no need to look on every event

    def _with_webhooks(self) -> list[str]:
        with self.db.read() as session:
            rows = session.execute(
                select(col(Integration.id)).where(col(Integration.webhook_url).is_not(None), col(Integration.active))
            )
            return [row[0] for row in rows]

    def _lease(self, integration_id: str) -> tuple[str, str, int] | None:
        """Take or renew the lease; returns (url, secret, cursor) while we hold it."""
        now = utcnow()
        with self.db.write() as session:
            won = session.execute(
                update(Integration)
                .where(Integration.id == integration_id)  # type: ignore[arg-type]
                .where(
                    or_(
                        Integration.delivery_lease_owner.is_(None),  # type: ignore[union-attr]
                        Integration.delivery_lease_owner == self.owner,  # type: ignore[arg-type]
                        Integration.delivery_lease_until < now,  # type: ignore[arg-type, operator]
                    )
                )
                .values(delivery_lease_owner=self.owner, delivery_lease_until=now + timedelta(seconds=LEASE_S))
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if not won:
                return None
            row = session.get(Integration, integration_id, populate_existing=True)
            if row is None or not row.webhook_url:
                return None
            return row.webhook_url, row.webhook_secret, row.delivered_event_id

    def _move_cursor(self, session: Session, integration_id: str, event_id: int) -> bool:
        """In the caller's transaction; False when another process has taken the lease meanwhile."""
        moved: int = session.execute(
            update(Integration)
            .where(Integration.id == integration_id, Integration.delivery_lease_owner == self.owner)  # type: ignore[arg-type]
            .values(delivered_event_id=event_id)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        return moved > 0

    def _advance(self, integration_id: str, event_id: int) -> bool:
        with self.db.write() as session:
            return self._move_cursor(session, integration_id, event_id)

    def _dead_letter(self, integration_id: str, event_id: int, attempt: Attempt) -> bool:
        with self.db.write() as session:
            if not self._move_cursor(session, integration_id, event_id):
                return False  # the new lease holder sends it again, and records it if it is refused again
            session.add(
                DeadLetter(
                    id=new_id(),
                    integration_id=integration_id,
                    event_id=event_id,
                    status_code=attempt.status,
                    error=attempt.error,
                )
            )
            return True

    def _release_all(self) -> None:
        with self.db.write() as session:
            session.execute(
                update(Integration)
                .where(Integration.delivery_lease_owner == self.owner)  # type: ignore[arg-type]
                .values(delivery_lease_owner=None, delivery_lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def _pending(self, integration_id: str, after: int) -> list[EventRecord]:
        with self.db.read() as session:
            return fetch_for_integration(session, integration_id, after, limit=100)

    async def _work(self, integration_id: str) -> None:
        # Woken only by this integration's events, so a busy desk does not cost every integration a query.
        wake = self.pump.subscribe(
            Subscription(
                accepts=lambda e: e.for_integration and e.integration_id == integration_id,
                accepts_transient=lambda _frame: False,
            )
        )
        try:
            await self._deliver(integration_id, wake)
        finally:
            self.pump.unsubscribe(wake)

    async def _deliver(self, integration_id: str, wake: Subscription) -> None:
        failures = 0
        while True:
            lease = await self._run(self._lease, integration_id)
            if lease is None:
                return
            leased_at = time.monotonic()
            url, secret, cursor = lease
            events = await self._run(self._pending, integration_id, cursor)
            if not events:
                with suppress(TimeoutError):  # renew the lease now and then, even when idle
                    await asyncio.wait_for(wake.queue.get(), LEASE_S / 3)
                while not wake.queue.empty():
                    wake.queue.get_nowait()
                wake.lagged = False
                continue
            for event in events:
                if time.monotonic() - leased_at > LEASE_S / 3:
                    break  # slow receivers: renew the lease before it can lapse mid-batch
                attempt = await self._send(url, secret, event)
                if attempt.delivered or not attempt.retried:
                    failures = 0
                    if attempt.delivered:
                        moved = await self._run(self._advance, integration_id, event.id)
                    else:
                        log.info("webhook event %s dead-lettered for integration %s", event.id, integration_id)
                        moved = await self._run(self._dead_letter, integration_id, event.id, attempt)
                    if not moved:
                        return  # lost the lease: its new holder carries on from the cursor
                    continue
                failures += 1
                delay = attempt.retry_after_s if attempt.retry_after_s is not None else backoff_s(failures)
                await self._pause(integration_id, delay)
                break  # re-take the lease, then retry this same event

    async def _pause(self, integration_id: str, delay_s: float) -> None:
        """Sleep, renewing the lease in slices so a long backoff never lets it lapse to another process."""
        deadline = time.monotonic() + delay_s
        while (remaining := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(remaining, LEASE_S / 3))
            if deadline - time.monotonic() > 0 and await self._run(self._lease, integration_id) is None:
                return

    async def _send(self, url: str, secret: str, event: EventRecord) -> Attempt:
        body = event.body.encode()
        try:
            response = await self.http.post(
                url,
                content=body,
                headers=signed_headers(secret, body, event_id=event.id),
                timeout=DELIVERY_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            log.info("webhook delivery of event %s failed: %s", event.id, type(exc).__name__)
            return Attempt(None, f"no answer: {type(exc).__name__}")
        attempt = Attempt.of(response)
        if not attempt.delivered:
            log.info("webhook delivery of event %s answered %s", event.id, response.status_code)
        return attempt
