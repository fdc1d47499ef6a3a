"""Conversation states and the valid transitions between them (CONTRACT.md section 3). Pure: no I/O."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    DEFERRED = "deferred"
    RESOLVED = "resolved"
    ABANDONED = "abandoned"


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class AuthorKind(StrEnum):
    CUSTOMER = "customer"
    AI = "ai"
    AGENT = "agent"
    SYSTEM = "system"


CLOSED = frozenset({Status.RESOLVED, Status.ABANDONED})

# (from, action) -> to
TRANSITIONS: dict[tuple[Status, str], Status] = {
    (Status.BOT, "escalate"): Status.QUEUED,
    (Status.DEFERRED, "escalate"): Status.QUEUED,
    (Status.QUEUED, "claim"): Status.ASSIGNED,
    (Status.QUEUED, "assign"): Status.ASSIGNED,
    (Status.ASSIGNED, "assign"): Status.ASSIGNED,
    (Status.ASSIGNED, "transfer_agent"): Status.ASSIGNED,
    (Status.ASSIGNED, "transfer_skill"): Status.QUEUED,
    (Status.QUEUED, "transfer_skill"): Status.QUEUED,
    (Status.ASSIGNED, "return"): Status.BOT,
    (Status.ASSIGNED, "resolve"): Status.RESOLVED,
    (Status.QUEUED, "resolve"): Status.RESOLVED,
    (Status.BOT, "resolve"): Status.RESOLVED,
    (Status.DEFERRED, "resolve"): Status.RESOLVED,
    (Status.QUEUED, "abandon"): Status.ABANDONED,
}


def next_status(current: str, action: str) -> Status | None:
    """The status after `action`, or None when the action is not allowed from `current`."""
    return TRANSITIONS.get((Status(current), action))


def is_staff_manager(role: str) -> bool:
    return role in (Role.SUPERVISOR, Role.ADMIN)
