"""Integrations (AI agents, CRM automations): created by operators, authenticated by a hashed bearer token."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlmodel import select

from desk.actions._tx import transaction
from desk.auth.principals import IntegrationPrincipal
from desk.ids import INTEGRATION_PREFIX, hash_token, new_id, new_token
from desk.store.db import Database
from desk.store.models import Integration


@dataclass(frozen=True)
class Credentials:
    id: str
    token: str
    webhook_secret: str


def create_integration(
    db: Database, *, name: str, webhook_url: str | None = None, fallback_webhook_url: str | None = None
) -> Credentials:
    token = new_token(INTEGRATION_PREFIX)
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction(db) as tx:
        integration = Integration(
            id=new_id(),
            name=name,
            token_hash=hash_token(token),
            webhook_url=webhook_url,
            fallback_webhook_url=fallback_webhook_url,
            webhook_secret=secret,
        )
        tx.session.add(integration)
        tx.audit(
            "integration.create",
            actor_kind="operator",
            actor_id=None,
            conversation_id=None,
            integration_id=integration.id,
        )
    return Credentials(id=integration.id, token=token, webhook_secret=secret)


def rotate_credentials(db: Database, *, integration_id: str, webhook_url: str | None = None) -> Credentials:
    token = new_token(INTEGRATION_PREFIX)
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction(db) as tx:
        integration = tx.session.get(Integration, integration_id)
        if integration is None:
            raise LookupError(integration_id)
        integration.token_hash = hash_token(token)
        integration.webhook_secret = secret
        if webhook_url is not None:
            integration.webhook_url = webhook_url
        tx.session.add(integration)
        tx.audit(
            "integration.rotate",
            actor_kind="operator",
            actor_id=None,
            conversation_id=None,
            integration_id=integration_id,
        )
    return Credentials(id=integration_id, token=token, webhook_secret=secret)


def integration_for_token(db: Database, token: str) -> IntegrationPrincipal | None:
    if not token.startswith(INTEGRATION_PREFIX):
        return None
    with db.read() as session:
        row = session.exec(select(Integration).where(Integration.token_hash == hash_token(token))).first()
    if row is None or not row.active:
        return None
    return IntegrationPrincipal(id=row.id, name=row.name)


def find_by_name(db: Database, name: str) -> Integration | None:
    with db.read() as session:
        return session.exec(select(Integration).where(Integration.name == name)).first()
