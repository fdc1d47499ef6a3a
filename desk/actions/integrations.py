"""Integrations (AI agents, CRM automations): created by operators (the CLI) or admins (the admin pages),
authenticated by a bearer token stored only as a hash: the token and the webhook secret are shown once, when they
are made."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlmodel import col, select

from desk.actions._tx import Tx, transaction
from desk.auth.principals import IntegrationPrincipal, StaffPrincipal
from desk.domain.states import Role
from desk.errors import Forbidden, NotFound, ValidationFailed
from desk.ids import INTEGRATION_PREFIX, hash_token, new_id, new_token
from desk.store.db import Database
from desk.store.models import Integration

MAX_NAME_CHARS = 200
MAX_URL_CHARS = 2000


@dataclass(frozen=True)
class Credentials:
    id: str
    token: str
    webhook_secret: str


@dataclass(frozen=True)
class IntegrationInfo:
    """An integration as the admin pages show it: never its token or webhook secret."""

    id: str
    name: str
    webhook_url: str | None
    fallback_webhook_url: str | None
    active: bool
    created_at: datetime


def _info(row: Integration) -> IntegrationInfo:
    return IntegrationInfo(row.id, row.name, row.webhook_url, row.fallback_webhook_url, row.active, row.created_at)


def _require_admin(by: StaffPrincipal | None) -> None:
    """`by=None` is the operator at the command line, who may do anything."""
    if by is not None and by.role != Role.ADMIN:
        raise Forbidden("Only admins manage integrations.")


def _audit(tx: Tx, action: str, by: StaffPrincipal | None, integration_id: str) -> None:
    kind, actor_id = ("staff", by.id) if by else ("operator", None)
    tx.audit(action, actor_kind=kind, actor_id=actor_id, conversation_id=None, integration_id=integration_id)


def check_webhook_url(value: str | None, field: str = "webhook_url") -> str | None:
    """A webhook URL must be absolute http(s); blank means none."""
    value = (value or "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if len(value) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(
            "Webhook URLs must be http:// or https:// addresses.",
            fields={field: f"an http or https URL of at most {MAX_URL_CHARS} characters"},
        )
    return value


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise ValidationFailed("A name is required.", fields={"name": f"1 to {MAX_NAME_CHARS} characters"})
    return name


def create_integration(
    db: Database,
    *,
    name: str,
    webhook_url: str | None = None,
    fallback_webhook_url: str | None = None,
    by: StaffPrincipal | None = None,
) -> Credentials:
    _require_admin(by)
    name = _checked_name(name)
    webhook_url = check_webhook_url(webhook_url)
    fallback_webhook_url = check_webhook_url(fallback_webhook_url, "fallback_webhook_url")
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
        _audit(tx, "integration.create", by, integration.id)
    return Credentials(id=integration.id, token=token, webhook_secret=secret)


def _get(tx: Tx, integration_id: str) -> Integration:
    integration = tx.session.get(Integration, integration_id)
    if integration is None:
        raise NotFound("No such integration.")
    return integration


def rotate_credentials(
    db: Database,
    *,
    integration_id: str,
    webhook_url: str | None = None,
    fallback_webhook_url: str | None = None,
    by: StaffPrincipal | None = None,
) -> Credentials:
    """A new token and webhook secret; the old ones stop working at once. A webhook URL given replaces the old."""
    _require_admin(by)
    webhook_url = check_webhook_url(webhook_url)
    fallback_webhook_url = check_webhook_url(fallback_webhook_url, "fallback_webhook_url")
    token = new_token(INTEGRATION_PREFIX)
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction(db) as tx:
        integration = _get(tx, integration_id)
        integration.token_hash = hash_token(token)
        integration.webhook_secret = secret
        if webhook_url is not None:
            integration.webhook_url = webhook_url
        if fallback_webhook_url is not None:
            integration.fallback_webhook_url = fallback_webhook_url
        tx.session.add(integration)
        _audit(tx, "integration.rotate", by, integration_id)
    return Credentials(id=integration_id, token=token, webhook_secret=secret)


def list_integrations(db: Database) -> list[IntegrationInfo]:
    with db.read() as session:
        rows = session.exec(select(Integration).order_by(col(Integration.active).desc(), col(Integration.name)))
        return [_info(row) for row in rows]


def get_integration(db: Database, integration_id: str) -> IntegrationInfo:
    with db.read() as session:
        row = session.get(Integration, integration_id)
    if row is None:
        raise NotFound("No such integration.")
    return _info(row)


def set_webhooks(
    db: Database,
    *,
    by: StaffPrincipal,
    integration_id: str,
    webhook_url: str | None,
    fallback_webhook_url: str | None,
) -> IntegrationInfo:
    """Replace both webhook URLs (blank: none)."""
    _require_admin(by)
    webhook_url = check_webhook_url(webhook_url)
    fallback_webhook_url = check_webhook_url(fallback_webhook_url, "fallback_webhook_url")
    with transaction(db) as tx:
        integration = _get(tx, integration_id)
        integration.webhook_url, integration.fallback_webhook_url = webhook_url, fallback_webhook_url
        tx.session.add(integration)
        _audit(tx, "integration.webhooks", by, integration_id)
        return _info(integration)


def set_active(db: Database, *, by: StaffPrincipal, integration_id: str, active: bool) -> IntegrationInfo:
    """Deactivated: its token is refused at once, and it gets no more turns or webhook deliveries."""
    _require_admin(by)
    with transaction(db) as tx:
        integration = _get(tx, integration_id)
        integration.active = active
        tx.session.add(integration)
        action = "integration.reactivate" if active else "integration.deactivate"
        _audit(tx, action, by, integration_id)
        return _info(integration)


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
