"""AI providers as the floor sees them: the last circuit breaker change of each, and the alerts it raises.

Every desk process keeps its own breakers (desk/fallback/breaker.py) and reports their changes here. When several
processes see the same provider fail, each reports "open"; the update is conditional on the row's state being
different, so exactly one of them changes the row and raises `ai.breaker_opened` (and, later, `ai.breaker_closed`).
The row therefore says what the first process to notice a change saw, not a vote of all processes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from desk.actions._tx import Tx, transaction
from desk.errors import ValidationFailed
from desk.store.db import Database
from desk.store.models import AIProvider
from desk.store.types import utcnow

# The states of desk/fallback/breaker.py (spelled out here: actions sit below the fallback engine).
CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)
MAX_ERROR_CHARS = 200
MAX_URL_CHARS = 2000

_TABLE: Any = AIProvider.__table__  # type: ignore[attr-defined]


def record_breaker(
    db: Database,
    *,
    provider_id: str,
    integration_id: str | None,
    role: str,
    url: str,
    state: str,
    failure_rate: float | None,
    last_error: str | None,
) -> bool:
    """Record that a provider's breaker is now `state`; True when this call changed the row (and raised the alert,
    for "open" and for "closed" after open or half-open)."""
    if state not in STATES:
        raise ValidationFailed(f"Unknown breaker state {state!r}.", fields={"state": " | ".join(STATES)})
    now = utcnow()
    values: dict[str, Any] = {
        "integration_id": integration_id,
        "role": role,
        "url": url[:MAX_URL_CHARS],
        "state": state,
        "failure_rate": failure_rate,
        "last_error": last_error[:MAX_ERROR_CHARS] if last_error else None,
        "changed_at": now,
    }
    if state == OPEN:
        values["opened_at"] = now
    with transaction(db) as tx:
        # The row's lock makes a concurrent writer's WHERE see this state once this commits: one winner each change.
        changed = tx.connection.execute(
            update(_TABLE).where(_TABLE.c.id == provider_id, _TABLE.c.state != state).values(**values)
        ).rowcount
        fresh = False
        if not changed:
            # A provider seen for the first time. ON CONFLICT: another process may be inserting it right now.
            insert = (sqlite.insert if db.is_sqlite else postgresql.insert)(_TABLE)
            inserted = tx.connection.execute(
                insert.values(id=provider_id, **values)
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(_TABLE.c.id)  # rather than rowcount, which psycopg reports as -1 for this statement
            ).first()
            changed = fresh = inserted is not None
        if changed and state == OPEN:
            _alert(tx, "ai.breaker_opened", provider_id, values)
        elif changed and state == CLOSED and not fresh:  # a new row was never open: nothing to clear
            _alert(tx, "ai.breaker_closed", provider_id, values)
    return bool(changed)


def _alert(tx: Tx, event: str, provider_id: str, values: dict[str, Any]) -> None:
    provider = {"id": provider_id, "role": values["role"], "url": values["url"]}
    data = {"provider": provider, "failure_rate": values["failure_rate"], "last_error": values["last_error"]}
    tx.emit(event, None, data, staff=True, queue=True)
    tx.audit(
        event,
        actor_kind="system",
        actor_id=None,
        conversation_id=None,
        provider=provider,
        integration_id=values["integration_id"],
        failure_rate=values["failure_rate"],
        last_error=values["last_error"],
    )


def list_providers(db: Database) -> list[AIProvider]:
    """Every provider a desk process has reported on, primaries first."""
    with db.read() as session:
        rows = session.exec(select(AIProvider).order_by(col(AIProvider.role), col(AIProvider.url))).all()
    return list(rows)
