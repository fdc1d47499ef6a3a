"""Staff accounts and their bearer tokens. Passwords never leave this module unhashed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import select

from desk.actions._tx import transaction
from desk.auth.passwords import hash_password, needs_rehash, verify_password
from desk.auth.principals import StaffPrincipal
from desk.domain.states import Role
from desk.errors import Conflict, Unauthorized, ValidationFailed
from desk.ids import STAFF_PREFIX, hash_token, new_id, new_token
from desk.store.db import Database
from desk.store.models import StaffToken, User
from desk.store.types import iso, utcnow

STAFF_TOKEN_TTL = timedelta(hours=12)
MIN_PASSWORD_CHARS = 8
MAX_CAPACITY = 100


def principal(user: User) -> StaffPrincipal:
    return StaffPrincipal(id=user.id, name=user.name, role=user.role, email=user.email)


def create_user(
    db: Database, *, email: str, name: str, role: str, password: str, skills: list[str], capacity: int
) -> User:
    if role not in {r.value for r in Role}:
        raise ValidationFailed("Unknown role.", fields={"role": "must be agent, supervisor or admin"})
    if not 0 <= capacity <= MAX_CAPACITY:
        raise ValidationFailed("Capacity out of range.", fields={"capacity": f"0 to {MAX_CAPACITY} conversations"})
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValidationFailed("Password too short.", fields={"password": f"at least {MIN_PASSWORD_CHARS} characters"})
    email = email.strip().lower()
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
            actor_kind="operator",
            actor_id=None,
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
