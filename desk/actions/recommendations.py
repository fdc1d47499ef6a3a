"""What agents do with the AI's recommended actions: each is "used", "edited" or "ignored" (by its index).

The workspace inserts a recommendation into the reply box and tells the reply which ones it inserted; the reply
and the usage are written in one transaction, so a message the customer saw always counts. A message that is
exactly the inserted text (whitespace aside) used it; anything else edited it. Whatever was never inserted by the
time the handoff is finished was ignored (`settled`, called from the finishing path). The usage lives on the
handoff (`handoffs.recommendation_usage`) and is copied into its learning entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from desk.actions._tx import transaction
from desk.actions.conversations import Posted, append_message, next_seq, post_message
from desk.auth.principals import StaffPrincipal
from desk.domain import permissions
from desk.domain.states import AuthorKind
from desk.errors import Forbidden
from desk.store.db import Database
from desk.store.models import Conversation, Handoff

USED, EDITED, IGNORED = "used", "edited", "ignored"
# When one recommendation is inserted into several replies, the strongest use wins.
_STRENGTH = {IGNORED: 0, EDITED: 1, USED: 2}


def text_of(action: dict[str, Any]) -> str:
    """What inserting a recommendation puts into the reply box (the workspace's `data-insert`)."""
    return str(action.get("body") or action.get("title") or "")


def _plain(text: str) -> str:
    return " ".join(text.split())


def judged(actions: Sequence[dict[str, Any]], inserted: Sequence[int], sent: str) -> dict[str, str]:
    """How a sent reply used the recommendations inserted into it: unchanged → used, changed → edited."""
    known = [i for i in dict.fromkeys(inserted) if 0 <= i < len(actions)]
    unchanged = _plain(sent) == _plain(" ".join(text_of(actions[i]) for i in known))
    return {str(i): USED if unchanged else EDITED for i in known}


def merged(before: dict[str, str], now: dict[str, str]) -> dict[str, str]:
    result = dict(before)
    for key, value in now.items():
        if _STRENGTH.get(value, 0) >= _STRENGTH.get(result.get(key, IGNORED), 0):
            result[key] = value
    return result


def settled(actions: Sequence[dict[str, Any]], usage: dict[str, str]) -> dict[str, str]:
    """The final usage when a handoff is finished: every recommendation never inserted was ignored."""
    return {str(i): usage.get(str(i), IGNORED) for i in range(len(actions))}


def suggested_feedback(actions: Sequence[dict[str, Any]], usage: dict[str, str]) -> str:
    """The outcome form's `recommendation_feedback` as the usage suggests it; the agent confirms or changes it."""
    if not actions:
        return ""
    values = set(usage.values())
    return USED if USED in values else EDITED if EDITED in values else IGNORED


def post_reply(
    db: Database,
    *,
    conversation_id: str,
    author: StaffPrincipal,
    text: str,
    client_id: str | None,
    inserted: Sequence[int] = (),
) -> Posted:
    """The assignee's reply (as `conversations.post_message`), recording the use of the recommendations in it."""
    if not inserted:
        return post_message(db, conversation_id=conversation_id, author=author, text=text, client_id=client_id)
    try:
        return _post_reply(db, conversation_id, author, text, client_id, inserted)
    except IntegrityError:
        # A resend of a stored reply (same client_id): its usage was recorded with it the first time, and
        # post_message answers with the stored message.
        return post_message(db, conversation_id=conversation_id, author=author, text=text, client_id=client_id)


def _post_reply(
    db: Database,
    conversation_id: str,
    author: StaffPrincipal,
    text: str,
    client_id: str | None,
    inserted: Sequence[int],
) -> Posted:
    with transaction(db) as tx:
        state = next_seq(tx, conversation_id)  # locks the conversation row: usage updates are serial too
        if not permissions.staff_may_reply(user_id=author.id, assignee_id=state.assignee_id):
            raise Forbidden("Only the assignee can reply in this conversation.")
        message = append_message(
            tx,
            state,
            kind=AuthorKind.AGENT,
            text=text,
            author_id=author.id,
            author_name=author.name,
            client_id=client_id,
        )
        conversation = tx.session.get(Conversation, conversation_id)
        handoff_id = conversation.open_handoff_id if conversation else None
        handoff = tx.session.get(Handoff, handoff_id) if handoff_id else None
        if handoff is not None:
            now = judged(handoff.recommended_actions, inserted, text)
            if now:
                handoff.recommendation_usage = merged(handoff.recommendation_usage, now)
                tx.session.add(handoff)
        return Posted(message, state.status, state.integration_id, created=True)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class Progress:
    """What the workspace shows of an open handoff beyond its public JSON: the usage so far, and the last `seq`
    before it (where the AI's part of the conversation ends)."""

    usage: dict[str, str]
    start_seq: int | None


def progress_of(db: Database, handoff_id: str) -> Progress:
    with db.read() as session:
        handoff = session.get(Handoff, handoff_id)
        if handoff is None:
            return Progress({}, None)
        return Progress(dict(handoff.recommendation_usage), handoff.start_seq)
