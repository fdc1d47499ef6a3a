"""The admin pages: staff accounts, integrations and webhook dead letters (admins), canned replies (supervisors and
admins)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from desk.web.pages import admin_canned, admin_integrations, admin_users, admin_webhooks

ROUTES: list[BaseRoute] = [
    *admin_users.ROUTES,
    *admin_integrations.ROUTES,
    *admin_webhooks.ROUTES,
    *admin_canned.ROUTES,
]
