"""What the queue-page benchmark drives: staff and a full queue seeded before the server starts, escalations through
the API, agents signed in through the login form, and their pages' live sockets (`/ws/ui`).

Each socket is read as it arrives and tested against the one change being waited for (the fragments are large: the
client keeps none of them), recording when the change reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from bench.message_path import BenchError

SKILLS = ["billing", "shipping", "returns", "technical", "accounts", "sales"]
# Few urgent ones, as on a real desk: a new urgent escalation lands among the first 200, where the page shows it.
PRIORITY_WEIGHTS = {"urgent": 1, "high": 10, "normal": 60, "low": 29}
REASONS = ["low_confidence", "policy_violation", "missing_data", "user_frustration", "user_request", "other"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Tim", "Radia", "Linus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Lee"]
TURNS = [
    "Hello, I need help with {topic} on my account, please.",
    "I'm sorry to hear about {topic}. Could you give me the order or invoice number?",
    "It is 4711-0815. This is the second time this month and I am not happy about it at all.",
    "Thank you. I can see the order. Let me check what happened with {topic} there.",
    "Please hurry, I have been waiting since yesterday and nobody answered my emails.",
    "I understand. I'm bringing in a colleague from the team who can look into this for you.",
]
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
HTTP_TIMEOUT_S = 60.0
ESCALATED = 300  # conversations escalated one by one with the action; the rest of the queue copies them
CONNECT_TIMEOUT_S = 30.0


# --- staff and the integration, before the server starts ----------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    integration_token: str
    agents: list[tuple[str, str]]  # (email, password)


def seed(database_url: str, *, agents: int, queued: int, secret: str, base_url: str, rng: random.Random) -> Seeded:
    """Migrations, one integration, the agents and the queue, before the server starts.

    The first ESCALATED conversations are escalated with Desk's own action (what `POST /api/v1/escalations` runs:
    the same validation, the same transaction). The rest are copies of those rows (customer, conversation, handoff)
    with new ids and spread-out times, written in bulk: escalating 5,000 one by one takes minutes on a small machine,
    and the page and the socket read only these three tables.
    """
    from desk.actions.handoffs import escalate as escalate_action
    from desk.actions.integrations import create_integration
    from desk.actions.staff import create_user
    from desk.auth.principals import IntegrationPrincipal
    from desk.schemas import EscalationCreate
    from desk.store.db import Database
    from desk.store.migrate import upgrade

    upgrade(database_url)
    db = Database(database_url)
    try:
        integration = create_integration(db, name="bench-queue")
        principal = IntegrationPrincipal(id=integration.id, name="bench-queue")
        password = secrets.token_urlsafe(18)
        made = []
        for i in range(agents):
            email = f"agent-{i}@bench.example"
            skills = [SKILLS[i % len(SKILLS)], SKILLS[(i + 2) % len(SKILLS)]]
            create_user(db, email=email, name=f"Agent {i}", role="agent", password=password, skills=skills, capacity=5)
            made.append((email, password))
        for i in range(min(queued, ESCALATED)):
            body = EscalationCreate.model_validate(bundle(rng, i)).model_dump(mode="json", exclude_unset=False)
            escalate_action(
                db, integration=principal, bundle=body, idempotency_key=None, secret=secret, base_url=base_url
            )
        _copy_queued(db, queued - ESCALATED, rng)
    finally:
        db.dispose()
    return Seeded(integration.token, made)


def _copy_queued(db: Any, count: int, rng: random.Random) -> None:
    """`count` more queued conversations: copies of the escalated ones, queued at times over the last hour."""
    from sqlalchemy import Table, select

    from desk.domain.routing import sla_due
    from desk.ids import hash_token
    from desk.store.models import Conversation, Customer, Handoff

    customers_t: Table = Customer.__table__  # type: ignore[attr-defined]
    conversations_t: Table = Conversation.__table__  # type: ignore[attr-defined]
    handoffs_t: Table = Handoff.__table__  # type: ignore[attr-defined]
    if count <= 0:
        return
    now = datetime.now(UTC)
    with db.engine.begin() as conn:
        handoffs = [dict(r._mapping) for r in conn.execute(select(handoffs_t).where(handoffs_t.c.status == "queued"))]
        conversations = {r.id: dict(r._mapping) for r in conn.execute(select(conversations_t))}
        customers = {r.id: dict(r._mapping) for r in conn.execute(select(customers_t))}
        rows: dict[str, list[dict[str, Any]]] = {"customers": [], "conversations": [], "handoffs": []}
        for n in range(count):
            handoff = dict(handoffs[n % len(handoffs)])
            conversation = dict(conversations[handoff["conversation_id"]])
            customer = dict(customers[conversation["customer_id"]])
            queued_at = now - timedelta(seconds=rng.uniform(0, 3600))
            customer.update(id=uuid.uuid4().hex, external_id=f"copy-{n}", created_at=queued_at)
            conversation.update(
                id=uuid.uuid4().hex,
                customer_id=customer["id"],
                customer_token_hash=hash_token(secrets.token_urlsafe(24)),
                created_at=queued_at,
                updated_at=queued_at,
            )
            handoff.update(
                id=uuid.uuid4().hex,
                conversation_id=conversation["id"],
                created_at=queued_at,
                sla_due_at=sla_due(handoff["priority"], queued_at),
            )
            conversation["open_handoff_id"] = handoff["id"]
            rows["customers"].append(customer)
            rows["conversations"].append(conversation)
            rows["handoffs"].append(handoff)
        for table in (customers_t, conversations_t, handoffs_t):
            conn.execute(table.insert(), rows[table.name])


# --- escalations -----------------------------------------------------------------------


def bundle(
    rng: random.Random, i: int, *, priority: str | None = None, skills: list[str] | None = None
) -> dict[str, Any]:
    """A context bundle of realistic size: a short transcript, a summary, a classification, two recommendations."""
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    topic = rng.choice(["a double charge", "a late parcel", "a refund", "a locked account", "an invoice", "a bug"])
    return {
        "customer": {"external_id": f"bench-{i}-{uuid.uuid4().hex[:8]}", "name": name, "email": f"c{i}@example.com"},
        "channel": "web",
        "reason": {
            "code": rng.choice(REASONS),
            "detail": f"Unsure about {topic}",
            "confidence": round(rng.random(), 2),
        },
        "priority": priority or rng.choices(list(PRIORITY_WEIGHTS), weights=list(PRIORITY_WEIGHTS.values()))[0],
        "skills": skills or rng.sample(SKILLS, k=rng.choice([1, 1, 2])),
        "transcript": [
            {"role": "customer" if t % 2 == 0 else "ai", "text": TURNS[t % len(TURNS)].format(topic=topic)}
            for t in range(4 + rng.randrange(9))
        ],
        "classification": {"intent": "support", "sentiment": rng.choice(["negative", "neutral"]), "topics": [topic]},
        "summary": f"{name} contacted us about {topic}; second time this month, wants it fixed today. Order 4711-0815.",
        "recommended_actions": [
            {"kind": "reply", "title": "Apologise", "body": f"Sorry about {topic}, I'm on it.", "confidence": 0.7},
            {"kind": "link", "title": "Policy", "body": "https://example.com/policy", "confidence": 0.4},
        ],
        "metadata": {"bench": True},
    }


async def escalate(client: httpx.AsyncClient, token: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    response = await client.post("/api/v1/escalations", json=body, headers=headers)
    if response.status_code != 201:
        raise BenchError(f"POST /api/v1/escalations → {response.status_code}: {response.text[:500]}")
    answer: dict[str, Any] = response.json()
    return answer


# --- agents and their pages ---------------------------------------------------------------------------------------


@dataclass
class Agent:
    email: str
    client: httpx.AsyncClient
    csrf: str = ""

    def cookie(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.client.cookies.items())


async def sign_in(base_url: str, email: str, password: str) -> Agent:
    """The login form, as a browser uses it: its CSRF field, then POST /login, then the page's CSRF token."""
    agent = Agent(email, httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S))
    form = await agent.client.get("/login")
    found = CSRF_FIELD.search(form.text)
    if form.status_code != 200 or found is None:
        raise BenchError(f"GET /login → {form.status_code} without a CSRF field")
    answer = await agent.client.post("/login", data={"email": email, "password": password, "csrf_token": found[1]})
    if answer.status_code != 303:
        raise BenchError(f"POST /login for {email} → {answer.status_code}: {answer.text[:300]}")
    page = await agent.client.get("/desk")
    token = CSRF_META.search(page.text)
    if page.status_code != 200 or token is None:
        raise BenchError(f"GET /desk after signing in → {page.status_code}")
    agent.csrf = token[1]
    return agent


async def claim_from_page(agent: Agent, conversation_id: str) -> None:
    """What the queue page's Claim button sends."""
    response = await agent.client.post(
        f"/desk/conversations/{conversation_id}/claim",
        headers={"HX-Request": "true", "X-CSRF-Token": agent.csrf},
    )
    if response.status_code != 200:
        raise BenchError(f"claim of {conversation_id} → {response.status_code}: {response.text[:300]}")


Predicate = Callable[[bytes], bool]


@dataclass
class PageSocket:
    """One agent's open desk page: its `/ws/ui` socket, and when the awaited change reached it."""

    ws: ClientConnection
    skill: str | None
    frames: int = 0
    bytes: int = 0
    waiting_for: Predicate | None = None
    arrived_ns: int | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, predicate: Predicate) -> None:
        self.arrived_ns, self.waiting_for = None, predicate
        self.arrived.clear()

    async def read(self) -> None:
        # Raw bytes, not decoded text: 50 pages of ~200 KB per change is a lot of decoding for a client that shares
        # the machine's two cores with the server; the marks looked for are ASCII.
        with contextlib.suppress(ConnectionClosed):
            while True:
                raw = await self.ws.recv(decode=False)
                now = time.perf_counter_ns()
                data = raw if isinstance(raw, bytes) else raw.encode()
                self.frames += 1
                self.bytes += len(data)
                if self.waiting_for is not None and self.waiting_for(data):
                    self.arrived_ns, self.waiting_for = now, None
                    self.arrived.set()


async def open_page(ws_base: str, origin: str, agent: Agent, skill: str | None) -> PageSocket:
    url = f"{ws_base}/ws/ui" + (f"?skill={skill}" if skill else "")
    ws = await connect(
        url,
        additional_headers=Headers({"Cookie": agent.cookie()}),
        origin=Origin(origin),
        open_timeout=CONNECT_TIMEOUT_S,
        max_size=None,
        compression=None,
        ping_interval=None,
        proxy=None,
    )
    first = await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT_S)
    if 'id="queue"' not in (first if isinstance(first, str) else first.decode()):
        raise BenchError(f"the first frame of {url} holds no queue")
    return PageSocket(ws, skill)
