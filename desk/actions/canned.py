"""Canned replies: short texts agents insert into the composer with `/`. Supervisors and admins keep the list."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from desk.actions._tx import transaction
from desk.auth.principals import StaffPrincipal
from desk.domain.states import is_staff_manager
from desk.errors import Forbidden, NotFound, ValidationFailed
from desk.ids import new_id
from desk.store.db import Database
from desk.store.models import CannedReply
from desk.store.types import utcnow

MAX_TITLE_CHARS = 120
MAX_BODY_CHARS = 4000
LIST_LIMIT = 500


@dataclass(frozen=True)
class Canned:
    id: str
    title: str
    body: str


def _public(row: CannedReply) -> Canned:
    return Canned(id=row.id, title=row.title, body=row.body)


def _checked(title: str, body: str) -> tuple[str, str]:
    title, body = title.strip(), body.strip()
    fields: dict[str, str] = {}
    if not title or len(title) > MAX_TITLE_CHARS:
        fields["title"] = f"1 to {MAX_TITLE_CHARS} characters"
    if not body or len(body) > MAX_BODY_CHARS:
        fields["body"] = f"1 to {MAX_BODY_CHARS} characters"
    if "\x00" in title or "\x00" in body:
        fields["body" if "\x00" in body else "title"] = "must not contain NUL characters"
    if fields:
        raise ValidationFailed("This canned reply is not valid.", fields=fields)
    return title, body


def _require_manager(by: StaffPrincipal) -> None:
    if not is_staff_manager(by.role):
        raise Forbidden("Only supervisors and admins edit canned replies.")


def list_canned(db: Database, *, search: str = "") -> list[Canned]:
    """Every canned reply, by title; `search` keeps those whose title or body contains it (any case)."""
    with db.read() as session:
        query = select(CannedReply).order_by(col(CannedReply.title), col(CannedReply.id)).limit(LIST_LIMIT)
        rows = session.exec(query).all()
    needle = search.strip().casefold()
    return [_public(r) for r in rows if not needle or needle in r.title.casefold() or needle in r.body.casefold()]


def create_canned(db: Database, *, by: StaffPrincipal, title: str, body: str) -> Canned:
    _require_manager(by)
    title, body = _checked(title, body)
    with transaction(db) as tx:
        row = CannedReply(id=new_id(), title=title, body=body, created_by=by.id)
        tx.session.add(row)
        tx.audit("canned.create", actor_kind="staff", actor_id=by.id, conversation_id=None, canned_id=row.id)
        return _public(row)


def update_canned(db: Database, *, by: StaffPrincipal, canned_id: str, title: str, body: str) -> Canned:
    _require_manager(by)
    title, body = _checked(title, body)
    with transaction(db) as tx:
        row = tx.session.get(CannedReply, canned_id)
        if row is None:
            raise NotFound("No such canned reply.")
        row.title, row.body, row.updated_at = title, body, utcnow()
        tx.session.add(row)
        tx.audit("canned.update", actor_kind="staff", actor_id=by.id, conversation_id=None, canned_id=row.id)
        return _public(row)


def delete_canned(db: Database, *, by: StaffPrincipal, canned_id: str) -> None:
    _require_manager(by)
    with transaction(db) as tx:
        row = tx.session.get(CannedReply, canned_id)
        if row is None:
            raise NotFound("No such canned reply.")
        tx.session.delete(row)
        tx.audit("canned.delete", actor_kind="staff", actor_id=by.id, conversation_id=None, canned_id=canned_id)
