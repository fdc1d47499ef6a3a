"""Browser sessions of staff, kept on the server.

The cookie (signed by the session middleware) carries a random session id; the database keeps only its hash, the
user and the expiry. Deleting the row signs the browser out everywhere the cookie was copied, and the
`staff.signed_out` event it writes closes that session's open sockets in every process.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import col

from desk.actions._tx import transaction
from desk.actions.staff import principal
from desk.auth.principals import StaffPrincipal
from desk.ids import hash_token
from desk.store.db import Database
from desk.store.models import StaffSession, User
from desk.store.types import utcnow

SESSION_TTL = timedelta(hours=12)
MAX_SESSION_ID_CHARS = 100


@dataclass(frozen=True)
class NewSession:
    id: str  # goes into the cookie, never stored
    csrf: str


def session_key(session_id: str) -> str:
    """What the database and the `staff.signed_out` event know a session by."""
    return hash_token(session_id)


def start_session(db: Database, *, user: StaffPrincipal) -> NewSession:
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    with transaction(db) as tx:
        # Expired sessions of everyone go at each login: the table stays the size of who is signed in.
        tx.connection.execute(delete(StaffSession).where(col(StaffSession.expires_at) <= now))
        row = StaffSession(
            id_hash=session_key(session_id), user_id=user.id, csrf=csrf, created_at=now, expires_at=now + SESSION_TTL
        )
        tx.session.add(row)
        tx.audit("user.sign_in", actor_kind="staff", actor_id=user.id, conversation_id=None)
    return NewSession(id=session_id, csrf=csrf)


def staff_for_session(db: Database, session_id: str) -> StaffPrincipal | None:
    if not session_id or len(session_id) > MAX_SESSION_ID_CHARS:
        return None
    with db.read() as session:
        row = session.get(StaffSession, session_key(session_id))
        if row is None or row.expires_at <= utcnow():
            return None
        user = session.get(User, row.user_id)
    return principal(user) if user is not None and user.active else None


def end_session(db: Database, *, session_id: str) -> None:
    key = session_key(session_id)
    with transaction(db) as tx:
        row = tx.session.get(StaffSession, key)
        if row is None:
            return
        tx.session.delete(row)
        tx.audit("user.sign_out", actor_kind="staff", actor_id=row.user_id, conversation_id=None)
        tx.emit("staff.signed_out", None, {"user_id": row.user_id, "session": key, "why": "signed_out"}, staff=False)
