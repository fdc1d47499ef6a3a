"""Queue order and SLA targets. Pure: no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


PRIORITY_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}

SLA_S = {Priority.URGENT: 120, Priority.HIGH: 300, Priority.NORMAL: 900, Priority.LOW: 3600}

# The failure modes a handoff can name (CONTRACT.md section 4), and the priorities, as request bodies spell them.
ReasonCode = Literal[
    "low_confidence",
    "policy_violation",
    "missing_data",
    "system_error",
    "user_frustration",
    "user_request",
    "other",
]
PriorityName = Literal["low", "normal", "high", "urgent"]


def sla_due(priority: str, queued_at: datetime) -> datetime:
    return queued_at + timedelta(seconds=SLA_S[Priority(priority)])
