"""The queue's outlook for the deferral tier: how long it is, who could take a conversation now, how fast claims
come. Read when the ladder reaches the human tier, never on the healthy path."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlmodel import col, select

from desk.domain.states import Role
from desk.store.db import Database
from desk.store.models import User
from desk.store.queue import claim_rate, queue_length
from desk.store.types import utcnow

CLAIMING_ROLES = (Role.AGENT.value, Role.SUPERVISOR.value, Role.ADMIN.value)


@dataclass(frozen=True)
class Outlook:
    queue_length: int
    eligible_online: int
    claim_rate: float | None  # claims per second lately


def queue_outlook(db: Database, *, skills: Sequence[str], online: Collection[str]) -> Outlook:
    """`online`: ids of staff with the desk open. Eligible: active, and with one of `skills` (any, without)."""
    with db.read() as session:
        length = queue_length(session)
        rate = claim_rate(session, utcnow())
        eligible = 0
        if online:
            users = session.exec(
                select(User).where(col(User.id).in_(list(online)), col(User.active), col(User.role).in_(CLAIMING_ROLES))
            )
            wanted = set(skills)
            eligible = sum(1 for user in users if not wanted or wanted & set(user.skills))
    return Outlook(length, eligible, rate)
