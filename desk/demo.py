"""`desk demo`: the server with demo staff, the built-in demo AI as a real webhook integration, and a chat link.

The demo AI is mounted in the same server at /demo-ai but talks to Desk only over HTTP, through the contract:
Desk posts it turns and events, and it answers or posts back through the JSON API with its integration token.
It is the integration's primary provider and, at /demo-ai/backup/webhook, its backup; the page at /demo-ai/
switches both between healthy, slow, flaky and down, so a new user can watch each tier of the fallback ladder.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from desk.actions.conversations import create_conversation
from desk.actions.integrations import Credentials, create_integration, find_by_name, rotate_credentials
from desk.actions.staff import create_user
from desk.auth.principals import IntegrationPrincipal
from desk.config import Settings
from desk.demo_ai.app import build_demo_ai
from desk.demo_ai.modes import HEALTHY, Modes
from desk.errors import Conflict
from desk.serve import serve
from desk.store.db import Database

DEMO_PASSWORD = "demo-password"  # noqa: S105  (printed on start; demo data only)
DEMO_AI_NAME = "Demo AI"


@dataclass(frozen=True)
class DemoStaff:
    email: str
    name: str
    role: str
    skills: tuple[str, ...]


STAFF = (
    DemoStaff("ada@demo.desk", "Ada Lovelace", "agent", ("billing", "general")),
    DemoStaff("grace@demo.desk", "Grace Hopper", "agent", ("technical", "general")),
    DemoStaff("sam@demo.desk", "Sam Supervisor", "supervisor", ()),
    DemoStaff("admin@demo.desk", "Alex Admin", "admin", ()),
)


def seed(db: Database, settings: Settings) -> Credentials:
    for person in STAFF:
        with suppress(Conflict):  # seeded by an earlier run
            create_user(
                db,
                email=person.email,
                name=person.name,
                role=person.role,
                password=DEMO_PASSWORD,
                skills=list(person.skills),
                capacity=3,
            )
    webhook = f"{settings.base_url}/demo-ai/webhook"
    backup = f"{settings.base_url}/demo-ai/backup/webhook"
    existing = find_by_name(db, DEMO_AI_NAME)
    if existing is None:
        return create_integration(db, name=DEMO_AI_NAME, webhook_url=webhook, fallback_webhook_url=backup)
    # The token is stored only as a hash: a new run gets fresh credentials for its demo AI.
    return rotate_credentials(db, integration_id=existing.id, webhook_url=webhook, fallback_webhook_url=backup)


def _new_chat_route(db: Database, settings: Settings, credentials: Credentials) -> Route:
    integration = IntegrationPrincipal(credentials.id, DEMO_AI_NAME)

    async def new_chat(request: Request) -> Response:
        runtime = request.app.state.runtime
        _, token = await runtime.call(
            create_conversation,
            integration=integration,
            customer={"name": "Demo customer"},
            channel="web",
            metadata={"demo": True},
            secret=settings.secret_key,
        )
        return RedirectResponse(f"/chat/{token}", status_code=303)

    return Route("/demo/chat", new_chat, methods=["GET"])


def banner(settings: Settings, ai_mode: str = HEALTHY) -> str:
    base = settings.base_url
    lines = [
        "",
        "Desk demo is running.",
        f"  Agent desk:      {base}/login",
        f"  Floor:           {base}/floor   (supervisors and admins: live floor, learning log, admin pages)",
        f"  Customer chat:   {base}/demo/chat   (opens a new conversation with the demo AI)",
        f"  API docs:        {base}/api/v1/openapi.json",
        f"  Demo AI:         {base}/demo-ai/   (now {ai_mode}; make it slow, flaky or down to see each fallback tier)",
        "",
        "  Logins (password for all: " + DEMO_PASSWORD + "):",
        *[f"    {p.role:<10} {p.email}" for p in STAFF],
        "",
        "  Try in the chat: 'what are your opening hours?', then 'I want to talk to a person'.",
        "  Claim it in the desk, reply, then hand back to the AI with a note: the AI picks up from your note.",
        "  Stop with Ctrl+C.",
        "",
    ]
    return "\n".join(lines)


def run_demo(settings: Settings, *, ai_mode: str = HEALTHY) -> None:
    """`ai_mode`: how the demo AI starts (desk/demo_ai/modes.py); ValueError for an unknown one."""
    modes = Modes(ai_mode)
    db = Database(settings.database_url)
    credentials = seed(db, settings)
    db.dispose()
    demo_ai = build_demo_ai(settings.base_url, credentials.token, credentials.webhook_secret, modes=modes)
    routes = [Mount("/demo-ai", app=demo_ai), _new_chat_route(db, settings, credentials)]
    serve(settings, extra_routes=routes, banner=banner(settings, modes.mode))
