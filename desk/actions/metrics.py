"""KPIs over a time window (CONTRACT.md section 8), overall and per reason code, computed from handoffs."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import col, select

from desk.store.db import Database
from desk.store.models import Event, Handoff, LearningEntry
from desk.store.types import iso, utcnow


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 3)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _kpis(handoffs: Iterable[Handoff], entries: dict[str, LearningEntry], now: datetime) -> dict[str, Any]:
    items = list(handoffs)
    waits = [(h.claimed_at - h.created_at).total_seconds() for h in items if h.claimed_at]
    resolves = [
        (h.finished_at - h.created_at).total_seconds() for h in items if h.finished_at and h.status == "resolved"
    ]
    finished = [h for h in items if h.status in ("returned", "resolved")]
    breaches = sum(
        1 for h in items if (h.claimed_at or (now if h.status == "queued" else h.finished_at) or now) > h.sla_due_at
    )
    feedback = [entries[h.id].recommendation_feedback for h in finished if h.id in entries]
    rated = [csat for h in finished if h.id in entries and (csat := entries[h.id].csat) is not None]
    return {
        "handoffs": len(items),
        "queued_now": sum(1 for h in items if h.status == "queued"),
        "claimed": len(waits),
        "returned_to_ai": sum(1 for h in items if h.status == "returned"),
        "resolved": sum(1 for h in items if h.status == "resolved"),
        "abandoned": sum(1 for h in items if h.status == "abandoned"),
        "successful_handoff_rate": _rate(len(finished), len(items)),
        "queue_wait_s": {"p50": _pct(waits, 0.5), "p90": _pct(waits, 0.9)},
        "time_to_claim_s": {"mean": round(statistics.fmean(waits), 3) if waits else None},
        "time_to_resolve_s": {"p50": _pct(resolves, 0.5), "p90": _pct(resolves, 0.9)},
        "sla_breaches": breaches,
        "abandonment_rate": _rate(sum(1 for h in items if h.status == "abandoned"), len(items)),
        "return_to_ai_rate": _rate(sum(1 for h in items if h.status == "returned"), len(finished)),
        "recommended_action_acceptance": _rate(
            sum(1 for f in feedback if f in ("used", "edited")), sum(1 for f in feedback if f is not None)
        ),
        "csat": round(statistics.fmean(rated), 2) if rated else None,
    }


AI_EVENTS = ("ai.stats", "signal.detected", "fallback.tier", "conversation.deferred", "ai.breaker_opened")


def _ai_kpis(rows: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """AI availability and the fallback engine's activity, from the events of the window."""
    counts: Counter[str] = Counter()
    signals: Counter[str] = Counter()
    tiers: Counter[str] = Counter()
    breaches = deferrals = outages = 0
    for kind, data in rows:
        if kind == "ai.stats":
            counts.update({k: int(v) for k, v in (data.get("counts") or {}).items()})
        elif kind == "signal.detected":
            signals[str(data.get("kind"))] += 1
            breaches += data.get("kind") == "guardrail"
        elif kind == "fallback.tier":
            tiers[str(data.get("tier"))] += 1
        elif kind == "conversation.deferred":
            deferrals += 1
        else:
            outages += 1
    return {
        "turns": counts["turns"],
        "answered": counts["answered"],
        "failed": counts["failed"],
        "availability": _rate(counts["answered"], counts["turns"]),
        "attempts": {k: v for k, v in sorted(counts.items()) if "." in k},
        "fallback_activations": dict(sorted(tiers.items())),
        "signals": dict(sorted(signals.items())),
        "policy_breach_incidents": breaches,
        "deferrals": deferrals,
        "breaker_openings": outages,
    }


def summary(db: Database, *, window: timedelta) -> dict[str, Any]:
    now = utcnow()
    since = now - window
    with db.read() as session:
        handoffs = list(session.exec(select(Handoff).where(col(Handoff.created_at) >= since)))
        ids = [h.id for h in handoffs]
        ai_rows = [
            (row[0], row[1])
            for row in session.execute(
                sa_select(col(Event.type), col(Event.data)).where(
                    col(Event.type).in_(AI_EVENTS), col(Event.at) >= since
                )
            )
        ]
        entries = (
            {e.handoff_id: e for e in session.exec(select(LearningEntry).where(col(LearningEntry.handoff_id).in_(ids)))}
            if ids
            else {}
        )
    by_reason: dict[str, list[Handoff]] = defaultdict(list)
    for handoff in handoffs:
        by_reason[handoff.reason_code].append(handoff)
    return {
        "window": {"from": iso(since), "to": iso(now), "seconds": int(window.total_seconds())},
        "overall": _kpis(handoffs, entries, now),
        "by_reason": {reason: _kpis(items, entries, now) for reason, items in sorted(by_reason.items())},
        "ai": _ai_kpis(ai_rows),
    }
