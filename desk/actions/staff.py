"""Staff accounts and their bearer tokens. Passwords never leave this module unhashed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select

from desk.actions._tx import transaction
from desk.auth.passwords import hash_password, needs_rehash, verify_password
from desk.auth.principals import StaffPrincipal
from desk.domain.states import Role
from desk.domain.text import undisguised
from desk.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from desk.ids import STAFF_PREFIX, hash_token, new_id, new_token
from desk.store.db import Database
from desk.store.models import StaffSession, StaffToken, User
from desk.store.types import iso, utcnow

STAFF_TOKEN_TTL = timedelta(hours=12)
MIN_PASSWORD_CHARS = 8
MAX_CAPACITY = 100


def principal(user: User) -> StaffPrincipal:
    return StaffPrincipal(id=user.id, name=user.name, role=user.role, email=user.email)


def create_user(
    db: Database,
    *,
    email: str,
    name: str,
    role: str,
    password: str,
    skills: list[str],
    capacity: int,
    by: StaffPrincipal | None = None,
) -> User:
    if role not in {r.value for r in Role}:
        raise ValidationFailed("Unknown role.", fields={"role": "must be agent, supervisor or admin"})
    if not 0 <= capacity <= MAX_CAPACITY:
        raise ValidationFailed("Capacity out of range.", fields={"capacity": f"0 to {MAX_CAPACITY} conversations"})
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValidationFailed("Password too short.", fields={"password": f"at least {MIN_PASSWORD_CHARS} characters"})
    email = email.strip().lower()
    # Staff names go into what customers read ("Ada joined the conversation"): nothing in them may disguise them.
    name = undisguised(name).strip()
    if not name:
        raise ValidationFailed("A name is required.", fields={"name": "must not be empty"})
    password_hash = hash_password(password)
    with transaction(db) as tx:
        if tx.session.exec(select(User).where(User.email == email)).first() is not None:
            raise Conflict("A staff member with this email exists.", code="email_taken")
        user = User(
            id=new_id(),
            email=email,
            name=name,
            role=role,
            skills=skills,
            capacity=capacity,
            password_hash=password_hash,
        )
        tx.session.add(user)
        tx.audit(
            "user.create",
            actor_kind="staff" if by else "operator",
            actor_id=by.id if by else None,
            conversation_id=None,
            user_id=user.id,
            role=role,
        )
    return user


def verify_credentials(db: Database, *, email: str, password: str) -> StaffPrincipal:
    """Check a password (argon2: slow, call it off the event loop); upgrade its hash if parameters changed."""
    with db.read() as session:
        user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    if needs_rehash(user.password_hash):
        upgraded = hash_password(password)
        with transaction(db) as tx:
            stored = tx.session.get(User, user.id)
            if stored is not None:
                stored.password_hash = upgraded
                tx.session.add(stored)
    return principal(user)


def login(db: Database, *, email: str, password: str) -> tuple[str, dict[str, Any]]:
    """Check a password and issue a staff bearer token (the API's login)."""
    user = verify_credentials(db, email=email, password=password)
    token = new_token(STAFF_PREFIX)
    expires = utcnow() + STAFF_TOKEN_TTL
    with transaction(db) as tx:
        tx.session.add(StaffToken(token_hash=hash_token(token), user_id=user.id, expires_at=expires))
        tx.audit("user.login", actor_kind="staff", actor_id=user.id, conversation_id=None)
    return token, {
        "token": token,
        "expires_at": iso(expires),
        "user": {"id": user.id, "name": user.name, "role": user.role},
    }


def staff_for_token(db: Database, token: str) -> StaffPrincipal | None:
    if not token.startswith(STAFF_PREFIX):
        return None
    with db.read() as session:
        row = session.get(StaffToken, hash_token(token))
        if row is None or row.expires_at <= utcnow():
            return None
        user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return principal(user)


def staff_by_id(db: Database, user_id: str) -> StaffPrincipal | None:
    with db.read() as session:
        user = session.get(User, user_id)
    return principal(user) if user is not None and user.active else None


# --- managing staff (admins) ---------------------------------------------------------------------------------------


def _require_admin(by: StaffPrincipal | None) -> None:
    """`by` None is the operator at the command line."""
    if by is not None and by.role != Role.ADMIN:
        raise Forbidden("Only admins manage staff accounts.")


def _actor(by: StaffPrincipal | None) -> dict[str, Any]:
    return {"actor_kind": "staff", "actor_id": by.id} if by else {"actor_kind": "operator", "actor_id": None}


def list_users(db: Database) -> list[User]:
    with db.read() as session:
        return list(session.exec(select(User).order_by(col(User.active).desc(), col(User.name), col(User.id))).all())


def update_user(
    db: Database,
    *,
    by: StaffPrincipal | None,
    user_id: str,
    name: str | None = None,
    role: str | None = None,
    skills: list[str] | None = None,
    capacity: int | None = None,
) -> User:
    _require_admin(by)
    if role is not None and role not in {r.value for r in Role}:
        raise ValidationFailed("Unknown role.", fields={"role": "must be agent, supervisor or admin"})
    if capacity is not None and not 0 <= capacity <= MAX_CAPACITY:
        raise ValidationFailed("Capacity out of range.", fields={"capacity": f"0 to {MAX_CAPACITY} conversations"})
    if name is not None and not undisguised(name).strip():
        raise ValidationFailed("A name is required.", fields={"name": "must not be empty"})
    with transaction(db) as tx:
        user = tx.session.get(User, user_id)
        if user is None:
            raise NotFound("No such staff member.")
        if by is not None and user.id == by.id and role is not None and role != Role.ADMIN:
            raise Conflict("You cannot take away your own admin role.", code="own_role")
        changes: dict[str, Any] = {}
        name = undisguised(name).strip() if name is not None else None
        for key, value in (("name", name), ("role", role), ("skills", skills), ("capacity", capacity)):
            if value is not None and getattr(user, key) != value:
                setattr(user, key, value)
                changes[key] = value
        tx.session.add(user)
        if changes:
            tx.audit("user.update", **_actor(by), conversation_id=None, user_id=user.id, **changes)
            # Open pages re-check who this is: a new role changes what their sockets may receive.
            tx.emit("staff.changed", None, {"user_id": user.id}, staff=False)
        return user


def deactivate_user(db: Database, *, by: StaffPrincipal | None, user_id: str) -> User:
    """Sign them out everywhere at once: sessions and bearer tokens go, and their open sockets close."""
    _require_admin(by)
    if by is not None and user_id == by.id:
        raise Conflict("You cannot deactivate yourself.", code="own_account")
    with transaction(db) as tx:
        user = tx.session.get(User, user_id)
        if user is None:
            raise NotFound("No such staff member.")
        user.active = False
        tx.session.add(user)
        tx.connection.execute(delete(StaffToken).where(col(StaffToken.user_id) == user_id))
        tx.connection.execute(delete(StaffSession).where(col(StaffSession.user_id) == user_id))
        tx.audit("user.deactivate", **_actor(by), conversation_id=None, user_id=user_id)
        tx.emit("staff.signed_out", None, {"user_id": user_id, "session": None, "why": "deactivated"}, staff=False)
        return user


def reactivate_user(db: Database, *, by: StaffPrincipal | None, user_id: str) -> User:
    _require_admin(by)
    with transaction(db) as tx:
        user = tx.session.get(User, user_id)
        if user is None:
            raise NotFound("No such staff member.")
        user.active = True
        tx.session.add(user)
        tx.audit("user.reactivate", **_actor(by), conversation_id=None, user_id=user_id)
        return user
