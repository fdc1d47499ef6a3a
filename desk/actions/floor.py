"""What the supervisor's floor shows: staff and their load, the queue by skill with SLA risk, the day's tiles, and
the conversations with the desk now (queued and assigned), each a few indexed SQL reads.

The day's counts (claimed, returned to the AI, abandoned since 00:00 UTC) come from the audit log, whose `at`
column is indexed: the handoffs table has no index on `claimed_at` or `finished_at`, and counting them would scan
every handoff ever made.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlmodel import Session, col

from desk.actions.providers import list_providers
from desk.auth.principals import StaffPrincipal
from desk.domain.states import Status, is_staff_manager
from desk.errors import Forbidden
from desk.store.db import Database
from desk.store.models import AuditEntry, Conversation, Customer, Handoff, User
from desk.store.queue import QUEUE_ORDER
from desk.store.types import utcnow

AT_RISK_SHARE = 0.25  # less than a quarter of the SLA left
NO_SKILL = ""  # the group of handoffs that ask for no particular skill
WAITING_SHOWN = 50
LIVE_SHOWN = 200
TODAY_ACTIONS = {"handoff.claimed": "claimed", "control.returned": "returned", "conversation.abandoned": "abandoned"}


@dataclass(frozen=True)
class StaffLoad:
    id: str
    name: str
    role: str
    skills: list[str]
    capacity: int
    load: int


@dataclass
class SkillQueue:
    skill: str
    waiting: int = 0
    oldest_since: datetime | None = None
    breached: int = 0
    at_risk: int = 0


@dataclass(frozen=True)
class Tiles:
    queued_now: int
    longest_wait_since: datetime | None
    claimed_today: int
    returned_today: int
    abandoned_today: int


@dataclass(frozen=True)
class OnFloor:
    """A conversation with the desk: waiting in the queue, or assigned to someone."""

    conversation_id: str
    status: str
    customer_name: str | None
    priority: str
    reason_code: str
    skills: list[str]
    since: datetime
    sla_due_at: datetime
    risk: str
    agent_id: str | None = None
    agent_name: str | None = None


@dataclass(frozen=True)
class FloorData:
    at: datetime
    staff: list[StaffLoad]
    skills: list[SkillQueue]
    tiles: Tiles
    waiting: list[OnFloor]
    live: list[OnFloor]
    more_waiting: int = 0
    providers: list[ProviderHealth] = field(default_factory=list)


@dataclass(frozen=True)
class ProviderHealth:
    """An AI provider's circuit breaker as last recorded: "closed" is healthy, "open" an outage the desk is routing
    around, "half_open" a trial call deciding."""

    role: str
    url: str
    state: str
    since: datetime
    failure_rate: float | None
    last_error: str | None

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc or self.url


def sla_risk(created_at: datetime, due_at: datetime, now: datetime) -> str:
    """ "breached" past the deadline, "at_risk" with under a quarter of the SLA left, else "ok"."""
    if now >= due_at:
        return "breached"
    if (due_at - now) < (due_at - created_at) * AT_RISK_SHARE:
        return "at_risk"
    return "ok"


def read_floor(db: Database, viewer: StaffPrincipal) -> FloorData:
    if not is_staff_manager(viewer.role):
        raise Forbidden("Only supervisors and admins see the floor.")
    now = utcnow()
    with db.read() as session:
        staff = _staff_loads(session)
        skills, queued_now, oldest = _queue_by_skill(session, now)
        today = _today_counts(session, now)
        waiting = _waiting(session, now)
        live = _live(session)
    tiles = Tiles(queued_now, oldest, today["claimed"], today["returned"], today["abandoned"])
    providers = [
        ProviderHealth(p.role, p.url, p.state, p.changed_at, p.failure_rate, p.last_error) for p in list_providers(db)
    ]
    more = max(0, queued_now - len(waiting))
    return FloorData(now, staff, skills, tiles, waiting, live, more_waiting=more, providers=providers)


def _staff_loads(session: Session) -> list[StaffLoad]:
    loads = dict(
        session.execute(
            select(col(Conversation.assignee_id), func.count())
            .where(col(Conversation.status) == Status.ASSIGNED, col(Conversation.assignee_id).is_not(None))
            .group_by(col(Conversation.assignee_id))
        ).all()
    )
    users = session.execute(select(User).where(col(User.active)).order_by(col(User.name), col(User.id))).scalars()
    return [StaffLoad(u.id, u.name, u.role, list(u.skills), u.capacity, int(loads.get(u.id, 0))) for u in users]


def _queue_by_skill(session: Session, now: datetime) -> tuple[list[SkillQueue], int, datetime | None]:
    """Per skill: how many wait, since when, how many are past or near their SLA. Skills live in a JSON list, so
    the grouping happens here, over four narrow columns of the queued handoffs (the status index finds them)."""
    rows = session.execute(
        select(col(Handoff.skills), col(Handoff.created_at), col(Handoff.sla_due_at)).where(
            col(Handoff.status) == "queued"
        )
    ).all()
    groups: dict[str, SkillQueue] = defaultdict(lambda: SkillQueue(""))
    oldest: datetime | None = None
    for skills, created_at, due_at in rows:
        risk = sla_risk(created_at, due_at, now)
        oldest = created_at if oldest is None or created_at < oldest else oldest
        for skill in skills or [NO_SKILL]:
            group = groups[skill]
            group.skill = skill
            group.waiting += 1
            group.oldest_since = created_at if group.oldest_since is None else min(group.oldest_since, created_at)
            group.breached += risk == "breached"
            group.at_risk += risk == "at_risk"
    ordered = sorted(groups.values(), key=lambda g: (-g.breached, -g.at_risk, -g.waiting, g.skill))
    return ordered, len(rows), oldest


def _today_counts(session: Session, now: datetime) -> dict[str, int]:
    midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    rows = session.execute(
        select(col(AuditEntry.action), func.count())
        .where(col(AuditEntry.at) >= midnight, col(AuditEntry.action).in_(list(TODAY_ACTIONS)))
        .group_by(col(AuditEntry.action))
    ).all()
    counts = dict.fromkeys(TODAY_ACTIONS.values(), 0)
    for action, count in rows:
        counts[TODAY_ACTIONS[action]] = int(count)
    return counts


_ON_FLOOR_COLUMNS = (
    col(Handoff.conversation_id),
    col(Customer.name),
    col(Handoff.priority),
    col(Handoff.reason_code),
    col(Handoff.skills),
    col(Handoff.created_at),
    col(Handoff.sla_due_at),
)


def _waiting(session: Session, now: datetime) -> list[OnFloor]:
    """The first queued conversations in queue order (narrow columns: the bundles' JSON stays unread)."""
    rows = session.execute(
        select(*_ON_FLOOR_COLUMNS)
        .join(Conversation, col(Conversation.id) == col(Handoff.conversation_id))
        .join(Customer, col(Customer.id) == col(Conversation.customer_id))
        .where(col(Handoff.status) == "queued")
        .order_by(*QUEUE_ORDER)
        .limit(WAITING_SHOWN)
    ).all()
    return [
        OnFloor(cid, Status.QUEUED, name, priority, reason, list(skills), created, due, sla_risk(created, due, now))
        for cid, name, priority, reason, skills, created, due in rows
    ]


def _live(session: Session) -> list[OnFloor]:
    """Assigned conversations, most urgent first, with who holds them. Once someone holds a conversation its queue
    SLA no longer applies: no risk is shown."""
    rows = session.execute(
        select(*_ON_FLOOR_COLUMNS, col(Handoff.claimed_at), col(User.id), col(User.name))
        .join(Conversation, col(Conversation.open_handoff_id) == col(Handoff.id))
        .join(Customer, col(Customer.id) == col(Conversation.customer_id))
        .join(User, col(User.id) == col(Conversation.assignee_id))
        .where(col(Handoff.status) == "claimed", col(Conversation.status) == Status.ASSIGNED)
        .order_by(*QUEUE_ORDER)
        .limit(LIVE_SHOWN)
    ).all()
    return [
        OnFloor(cid, Status.ASSIGNED, name, priority, reason, list(skills), claimed or created, due, "", uid, uname)
        for cid, name, priority, reason, skills, created, due, claimed, uid, uname in rows
    ]
