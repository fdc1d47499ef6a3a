"""Event delivery to integration webhooks, from the durable event rows.

One process at a time delivers for an integration: it holds a lease (a conditional update on the integration row)
that it renews while it works. Events go out one by one in id order, so they arrive in order per conversation;
a timeout or non-2xx answer is retried with exponential backoff and jitter, and the cursor only moves after a 2xx,
so every event is delivered at least once. Receivers deduplicate by `Desk-Event-Id`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from contextlib import suppress
from datetime import timedelta

import anyio.to_thread
import httpx
from sqlalchemy import or_, select, update
from sqlmodel import col

from desk.realtime.pump import EventPump, Subscription
from desk.store.db import Database
from desk.store.events import EventRecord, fetch_for_integration
from desk.store.models import Integration
from desk.store.types import utcnow
from desk.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

LEASE_S = 30
DELIVERY_TIMEOUT_S = 10.0
BACKOFF_MAX_S = 300.0
SCAN_S = 5.0


class Deliverer:
    def __init__(self, db: Database, http: httpx.AsyncClient, pump: EventPump) -> None:
        self.db = db
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
        await anyio.to_thread.run_sync(self._release_all)

    async def _scan_forever(self) -> None:
        while True:
            try:
                for integration_id in await anyio.to_thread.run_sync(self._with_webhooks):
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

    def _advance(self, integration_id: str, event_id: int) -> None:
        with self.db.write() as session:
            session.execute(
                update(Integration)
                .where(Integration.id == integration_id, Integration.delivery_lease_owner == self.owner)  # type: ignore[arg-type]
                .values(delivered_event_id=event_id)
                .execution_options(synchronize_session=False)
            )

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
            lease = await anyio.to_thread.run_sync(self._lease, integration_id)
            if lease is None:
                return
            url, secret, cursor = lease
            events = await anyio.to_thread.run_sync(self._pending, integration_id, cursor)
            if not events:
                with suppress(TimeoutError):  # renew the lease now and then, even when idle
                    await asyncio.wait_for(wake.queue.get(), LEASE_S / 3)
                while not wake.queue.empty():
                    wake.queue.get_nowait()
                wake.lagged = False
                continue
            for event in events:
                if await self._send(url, secret, event):
                    failures = 0
                    await anyio.to_thread.run_sync(self._advance, integration_id, event.id)
                    continue
                failures += 1
                delay = min(BACKOFF_MAX_S, 0.5 * 2 ** min(failures, 12)) * random.uniform(0.5, 1.0)
                await asyncio.sleep(min(delay, LEASE_S / 2))
                break  # re-take the lease, then retry this same event

    async def _send(self, url: str, secret: str, event: EventRecord) -> bool:
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
            return False
        if 200 <= response.status_code < 300:
            return True
        log.info("webhook delivery of event %s answered %s", event.id, response.status_code)
        return False
