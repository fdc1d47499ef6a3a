"""Conversations and their messages: create, post (customer, AI, agent), internal notes, abandon."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from desk.actions._tx import Tx, transaction
from desk.auth.principals import CustomerPrincipal, IntegrationPrincipal, StaffPrincipal
from desk.domain import permissions
from desk.domain.states import CLOSED, AuthorKind, Status
from desk.errors import Conflict, Forbidden, NotFound
from desk.ids import CUSTOMER_PREFIX, hash_token, new_id
from desk.store.db import Database
from desk.store.models import Conversation, Customer, Message, Note, built, table_of
from desk.store.shapes import message_json, note_json
from desk.store.types import utcnow

AI_NAME = "Assistant"


def customer_token_for(conversation_id: str, secret: str) -> str:
    """Derived, not stored: the desk can hand it out again (e.g. on a later escalation); only its hash is kept."""
    mac = hmac.new(secret.encode(), f"customer:{conversation_id}".encode(), hashlib.sha256).hexdigest()
    return f"{CUSTOMER_PREFIX}{mac}"


@dataclass(frozen=True)
class Posted:
    message: Message
    status: str
    integration_id: str | None
    created: bool


def new_conversation(
    tx: Tx,
    *,
    integration_id: str | None,
    customer: dict[str, Any],
    channel: str,
    metadata: dict[str, Any],
    secret: str,
) -> tuple[Conversation, Customer, str]:
    person = Customer(
        id=new_id(),
        integration_id=integration_id,
        external_id=customer.get("external_id"),
        name=customer.get("name"),
        email=customer.get("email"),
        locale=customer.get("locale"),
        attributes=customer.get("attributes") or {},
    )
    conversation_id = new_id()
    token = customer_token_for(conversation_id, secret)
    conversation = Conversation(
        id=conversation_id,
        integration_id=integration_id,
        customer_id=person.id,
        channel=channel,
        meta=metadata,
        customer_token_hash=hash_token(token),
    )
    tx.session.add(person)
    tx.session.flush()  # no ORM relationships, so the unit of work does not order these inserts for us
    tx.session.add(conversation)
    tx.session.flush()
    tx.emit("conversation.created", conversation, {"channel": channel, "customer": {"name": person.name}})
    return conversation, person, token


def create_conversation(
    db: Database,
    *,
    integration: IntegrationPrincipal | None,
    customer: dict[str, Any],
    channel: str,
    metadata: dict[str, Any],
    secret: str,
) -> tuple[Conversation, str]:
    with transaction(db) as tx:
        conversation, _, token = new_conversation(
            tx,
            integration_id=integration.id if integration else None,
            customer=customer,
            channel=channel,
            metadata=metadata,
            secret=secret,
        )
        tx.audit(
            "conversation.create",
            actor_kind="integration" if integration else "system",
            actor_id=integration.id if integration else None,
            conversation_id=conversation.id,
        )
    return conversation, token


@dataclass(frozen=True)
class SeqState:
    """The conversation as the hot path sees it, read back from the very UPDATE that took the `seq`."""

    id: str
    last_seq: int
    status: str
    assignee_id: str | None
    integration_id: str | None
    customer_name: str | None


_CONVERSATIONS = table_of(Conversation)
_CUSTOMERS = table_of(Customer)
_MESSAGES = table_of(Message)
# The customer's name, read back by the statements that take a seq (a customer's message carries it).
CUSTOMER_NAME = (
    select(_CUSTOMERS.c.name).where(_CUSTOMERS.c.id == _CONVERSATIONS.c.customer_id).scalar_subquery().label("name")
)
_TAKE_SEQ = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("cid"))
    .values(last_seq=_CONVERSATIONS.c.last_seq + bindparam("count"), updated_at=bindparam("now"))
    .returning(
        _CONVERSATIONS.c.last_seq,
        _CONVERSATIONS.c.status,
        _CONVERSATIONS.c.assignee_id,
        _CONVERSATIONS.c.integration_id,
        CUSTOMER_NAME,
    )
)
_INSERT_MESSAGE = insert(_MESSAGES)


def next_seq(tx: Tx, conversation_id: str, count: int = 1) -> SeqState:
    """Take the next `seq` (or the next `count`, the last of which `last_seq` is), locking the conversation row
    until commit: seqs are gap-free and in commit order.

    One statement, in SQL rather than through the ORM: this is the per-message hot path.
    """
    tx.flush()  # pending ORM changes to the conversation go first
    row = tx.connection.execute(_TAKE_SEQ, {"cid": conversation_id, "now": utcnow(), "count": count}).first()
    if row is None:
        raise NotFound("No such conversation.")
    return SeqState(conversation_id, row[0], row[1], row[2], row[3], row[4])


def append_message(
    tx: Tx,
    conversation: SeqState,
    *,
    kind: AuthorKind,
    text: str,
    author_id: str | None = None,
    author_name: str | None = None,
    client_id: str | None = None,
    at: Any = None,
    imported: bool = False,
) -> Message:
    """Write a message whose `seq` the caller took with `next_seq`, and its `message.created` event."""
    message = built(
        Message,
        id=new_id(),
        conversation_id=conversation.id,
        seq=conversation.last_seq,
        author_kind=AuthorKind(kind).value,
        author_id=author_id,
        author_name=author_name,
        text=text,
        client_id=client_id,
        created_at=at or utcnow(),
    )
    tx.connection.execute(_INSERT_MESSAGE, [message.model_dump()])
    tx.emit(
        "message.created",
        conversation,
        {"message": message_json(message), "status": conversation.status},
        integration=kind == AuthorKind.CUSTOMER and conversation.status == Status.BOT and not imported,
        customer=True,
        queue=conversation.status == Status.QUEUED,
    )
    return message


def system_message(tx: Tx, conversation_id: str, text: str) -> Message:
    conversation = next_seq(tx, conversation_id)
    return append_message(tx, conversation, kind=AuthorKind.SYSTEM, text=text)


def post_message(
    db: Database,
    *,
    conversation_id: str,
    author: CustomerPrincipal | IntegrationPrincipal | StaffPrincipal,
    text: str,
    client_id: str | None = None,
) -> Posted:
    """Post as the customer, the AI (integration) or the assignee. A repeated `client_id` returns the first."""
    try:
        return _post_message(db, conversation_id=conversation_id, author=author, text=text, client_id=client_id)
    except IntegrityError:
        # A repeated client_id (a resend, or two concurrent sends): the insert hit the unique index and the whole
        # transaction, seq included, rolled back. Answer with the message stored the first time. Checking first
        # instead would cost every message a query for the rare resend.
        with db.read() as session:
            message = session.exec(
                select(Message).where(Message.conversation_id == conversation_id, Message.client_id == client_id)
            ).first()
            conversation = session.get(Conversation, conversation_id)
        if message is None or conversation is None:
            raise
        return Posted(message, conversation.status, conversation.integration_id, created=False)


def _post_message(
    db: Database,
    *,
    conversation_id: str,
    author: CustomerPrincipal | IntegrationPrincipal | StaffPrincipal,
    text: str,
    client_id: str | None,
) -> Posted:
    with transaction(db) as tx:
        conversation = next_seq(tx, conversation_id)
        if isinstance(author, CustomerPrincipal):
            kind, author_id, name = AuthorKind.CUSTOMER, None, conversation.customer_name
            if conversation.status in CLOSED:
                conversation = _reopen(tx, conversation)
        elif isinstance(author, IntegrationPrincipal):
            if conversation.integration_id != author.id:
                raise NotFound("No such conversation.")
            if conversation.status != Status.BOT:
                raise Conflict("A human holds this conversation.", code="not_in_control")
            kind, author_id, name = AuthorKind.AI, None, AI_NAME
        else:
            if not permissions.staff_may_reply(user_id=author.id, assignee_id=conversation.assignee_id):
                raise Forbidden("Only the assignee can reply in this conversation.")
            kind, author_id, name = AuthorKind.AGENT, author.id, author.name
        message = append_message(
            tx, conversation, kind=kind, text=text, author_id=author_id, author_name=name, client_id=client_id
        )
        return Posted(message, conversation.status, conversation.integration_id, created=True)
    raise AssertionError("unreachable")  # pragma: no cover


def _reopen(tx: Tx, conversation: SeqState) -> SeqState:
    """A customer writing again after the end reopens the conversation with the AI."""
    tx.connection.execute(
        update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == conversation.id).values(status=Status.BOT)
    )
    return replace(conversation, status=Status.BOT.value)


def add_note(
    db: Database, *, conversation_id: str, author: StaffPrincipal, text: str, client_id: str | None = None
) -> Note:
    with transaction(db) as tx:
        conversation = tx.session.get(Conversation, conversation_id)
        if conversation is None:
            raise NotFound("No such conversation.")
        if not permissions.staff_may_note(role=author.role, user_id=author.id, assignee_id=conversation.assignee_id):
            raise Forbidden("Only the assignee or a supervisor can add notes here.")
        if client_id is not None:
            existing = tx.session.exec(
                select(Note).where(Note.conversation_id == conversation_id, Note.client_id == client_id)
            ).first()
            if existing is not None:
                return existing
        note = Note(
            id=new_id(),
            conversation_id=conversation_id,
            author_id=author.id,
            author_name=author.name,
            text=text,
            client_id=client_id,
        )
        tx.session.add(note)
        tx.emit(
            "note.created",
            conversation,
            {"note": note_json(note)},
            queue=conversation.status == Status.QUEUED,
        )
    return note
