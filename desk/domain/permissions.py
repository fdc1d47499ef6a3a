"""Who may do what to a conversation (docs/internals.md, "Who may see what"). Pure: no I/O."""

from __future__ import annotations

from desk.domain.states import Status, is_staff_manager


def staff_may_view(*, role: str, user_id: str, status: str, assignee_id: str | None, held_before: bool) -> bool:
    if is_staff_manager(role):
        return True
    return status == Status.QUEUED or assignee_id == user_id or held_before


def staff_may_reply(*, user_id: str, assignee_id: str | None) -> bool:
    return assignee_id == user_id


def staff_may_note(*, role: str, user_id: str, assignee_id: str | None) -> bool:
    return assignee_id == user_id or is_staff_manager(role)


def staff_may_finish(*, role: str, user_id: str, assignee_id: str | None) -> bool:
    """Return to the AI, resolve or transfer."""
    return assignee_id == user_id or is_staff_manager(role)


def staff_may_assign(*, role: str) -> bool:
    return is_staff_manager(role)


def staff_receives(*, role: str, user_id: str, for_staff: bool, queue_scope: bool, agent_id: str | None) -> bool:
    """Whether a staff socket gets an event: managers get all; agents the queue and their own conversations."""
    if not for_staff:
        return False
    return is_staff_manager(role) or queue_scope or agent_id == user_id
