"""The open-loop load generator, run in its own process (asyncio on uvloop).

It reads one JSON object on standard input::

    {"label": "sqlite",
     "targets": [{"name": "relay", "kind": "relay", "staff_url": "ws://…/ws/agent", "chat_urls": [...]},
                 {"name": "desk", "kind": "desk", "staff_url": "ws://…/ws/staff", "chat_urls": [...]}],
     "rates": [250, 500, 1000], "duration": 10, "warmup": 2, "warmup_rate": 250,
     "drain_timeout": 10, "settle": 0.5}

connects every socket once, warms each target up, then for each rate measures each target in turn (so the
two paths are measured side by side, seconds apart) and prints one JSON object with the results on standard
output. Progress goes to standard error.

Open loop: message ``i`` of a phase is due at ``start + i / rate`` on a fixed clock, whatever happened to the
earlier ones, and carries that due time (``time.time_ns()``) in its text. Its latency is the arrival time at
the staff (agent) socket minus the due time, so any queueing, in the server or in this client, is included.
Messages go round robin over the conversations' customer sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench._common import summarize_ms

MARK = "bench"
CONNECT_TIMEOUT_S = 15.0
MAX_ERRORS_KEPT = 20
QUIET_NS = 1_000_000_000


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Phase:
    """One measured (or warm-up) run of one target at one rate."""

    tag: str
    rate: float
    total: int
    due_ns: list[int]
    latency_ns: list[int]
    send_lag_ns: list[int]
    ack_ns: list[int]
    client_ids: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    foreign: int = 0
    first_due_ns: int = 0
    last_arrival_ns: int = 0
    client_cpu_s: float = 0.0
    drain_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def new(cls, rate: float, duration: float) -> Phase:
        total = max(1, round(rate * duration))
        return cls(
            tag=uuid.uuid4().hex[:8],
            rate=rate,
            total=total,
            due_ns=[0] * total,
            latency_ns=[-1] * total,
            send_lag_ns=[0] * total,
            ack_ns=[-1] * total,
        )

    def error(self, text: str) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(text)


@dataclass
class Target:
    name: str
    kind: str  # "desk" or "relay"
    staff_url: str
    chat_urls: list[str]
    staff: ClientConnection | None = None
    customers: list[ClientConnection] = field(default_factory=list)
    phase: Phase | None = None
    broken: str | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    last_seq: dict[str, int] = field(default_factory=dict)  # per conversation, the highest seq seen by staff
    last_frame_ns: int = 0  # arrival of the last benchmark message, of any phase
    stray_errors: list[str] = field(default_factory=list)


def _staff_message(raw: str | bytes, kind: str) -> tuple[str, str | None, int | None] | None:
    """(text, conversation id, seq) of a customer message in a frame received on the staff side (the relay
    has neither id nor seq), or None for any other frame."""
    frame = json.loads(raw)
    if not isinstance(frame, dict):
        return None
    if kind == "relay":
        text = frame.get("text")
        return (text, None, None) if isinstance(text, str) else None
    if frame.get("type") != "event":
        return None
    event = frame.get("event")
    if not isinstance(event, dict) or event.get("type") != "message.created":
        return None
    data = event.get("data")
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return None
    seq = message.get("seq")
    conversation_id = event.get("conversation_id")
    return (
        message["text"],
        conversation_id if isinstance(conversation_id, str) else None,
        seq if isinstance(seq, int) else None,
    )


async def _read_staff(target: Target) -> None:
    assert target.staff is not None
    try:
        async for raw in target.staff:
            now = time.time_ns()
            found = _staff_message(raw, target.kind)
            if found is None or not found[0].startswith(MARK):
                continue
            target.last_frame_ns = now
            text, conversation_id, seq = found
            phase = target.phase
            if phase is None:
                continue
            if conversation_id is not None and seq is not None:
                # Each conversation's messages must reach staff in seq order, each seq once.
                if seq <= target.last_seq.get(conversation_id, 0):
                    phase.out_of_order += 1
                target.last_seq[conversation_id] = max(seq, target.last_seq.get(conversation_id, 0))
            parts = text.split(" ", 4)
            if len(parts) < 4 or parts[1] != phase.tag:
                phase.foreign += 1  # a late message of an earlier phase
                continue
            i = int(parts[2])
            if not 0 <= i < phase.total:
                continue
            if phase.latency_ns[i] >= 0:
                phase.duplicates += 1
                continue
            phase.latency_ns[i] = now - int(parts[3])
            phase.delivered += 1
            phase.last_arrival_ns = now
            if phase.delivered == phase.total:
                phase.done.set()
    except ConnectionClosed as exc:
        target.broken = f"staff socket closed: {exc}"
    finally:
        if target.broken is None:
            target.broken = "staff socket closed"
        if target.phase is not None:
            target.phase.error(target.broken)
            target.phase.done.set()


async def _read_customer(target: Target, ws: ClientConnection) -> None:
    """Drain a customer socket (Desk echoes each message and acks it); time the acks."""
    try:
        async for raw in ws:
            now = time.time_ns()
            frame = json.loads(raw)
            if not isinstance(frame, dict):
                continue
            kind = frame.get("type")
            phase = target.phase
            if kind == "ack" and phase is not None:
                i = phase.client_ids.get(str(frame.get("client_id")), -1)
                if i >= 0 and phase.ack_ns[i] < 0:
                    phase.ack_ns[i] = now - phase.due_ns[i]
            elif kind == "error":
                text = f"customer socket error frame: {raw!r}"
                if phase is not None:
                    phase.error(text)
                elif len(target.stray_errors) < MAX_ERRORS_KEPT:
                    target.stray_errors.append(text)
    except ConnectionClosed as exc:
        target.broken = target.broken or f"customer socket closed: {exc}"


async def _open(url: str) -> ClientConnection:
    # No compression and no keepalive pings: the same plain frames on both paths, and less work for the
    # client, which shares the machine with the server.
    return await connect(url, compression=None, ping_interval=None, open_timeout=CONNECT_TIMEOUT_S)


async def _connect(target: Target) -> None:
    target.staff = await _open(target.staff_url)
    target.customers = list(await asyncio.gather(*(_open(url) for url in target.chat_urls)))
    target.tasks.append(asyncio.create_task(_read_staff(target)))
    for ws in target.customers:
        target.tasks.append(asyncio.create_task(_read_customer(target, ws)))


async def _run_phase(target: Target, rate: float, duration: float, drain_timeout: float) -> Phase:
    phase = Phase.new(rate, duration)
    if target.broken:
        phase.error(target.broken)
        return phase
    customers = target.customers
    n_customers = len(customers)
    interval_ns = 1e9 / rate
    target.phase = phase
    cpu_started = time.process_time()
    start = time.time_ns() + 20_000_000
    phase.first_due_ns = start
    i = 0
    while i < phase.total and not target.broken:
        now = time.time_ns()
        due = start + int(i * interval_ns)
        if due > now:
            # uvloop timers have 1 ms resolution: a wait under 0.5 ms rounds to 0 and the loop spins briefly,
            # which keeps sends on schedule (the client's own lag is reported as client_send_lag_ms).
            await asyncio.sleep((due - now) / 1e9)
            continue
        # Send everything that is due by now, each stamped with its own due time.
        while i < phase.total and due <= now:
            client_id = str(uuid.uuid4())
            phase.client_ids[client_id] = i
            phase.due_ns[i] = due
            frame = json.dumps(
                {
                    "type": "message",
                    "client_id": client_id,
                    "text": f"{MARK} {phase.tag} {i} {due} hello, I need a hand with order {i}",
                }
            )
            try:
                await customers[i % n_customers].send(frame)
            except ConnectionClosed as exc:
                target.broken = f"customer socket closed while sending: {exc}"
                phase.error(target.broken)
                break
            phase.send_lag_ns[i] = time.time_ns() - due
            i += 1
            due = start + int(i * interval_ns)
            now = time.time_ns()
    if phase.delivered < phase.total and not target.broken:
        await _drain(target, phase, drain_timeout)
    target.phase = None
    phase.client_cpu_s = time.process_time() - cpu_started
    return phase


async def _drain(target: Target, phase: Phase, limit: float) -> None:
    """Wait for the stragglers: until all have arrived; or, after `limit` seconds, until the server has gone
    quiet (nothing for a second), so that an overloaded server's backlog does not spill into the next run;
    and at most 2 * `limit` seconds. Whatever has not arrived by then is lost."""
    started = time.time_ns()
    soft, hard = started + int(limit * 1e9), started + int(2 * limit * 1e9)
    while not phase.done.is_set() and not target.broken:
        now = time.time_ns()
        if now >= hard or (now >= soft and now - target.last_frame_ns > QUIET_NS):
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(phase.done.wait(), timeout=0.1)
    phase.drain_s = (time.time_ns() - started) / 1e9
    if phase.delivered < phase.total:
        phase.error(f"{phase.total - phase.delivered} messages not delivered within {phase.drain_s:.1f} s")


def _phase_result(phase: Phase) -> dict[str, Any]:
    latencies = [v for v in phase.latency_ns if v >= 0]
    acks = [v for v in phase.ack_ns if v >= 0]
    # Delivered messages per second, over the sending window or until the last arrival if that is later.
    span_s = max(phase.total / phase.rate, (phase.last_arrival_ns - phase.first_due_ns) / 1e9)
    achieved = phase.delivered / span_s if phase.delivered else 0.0
    return {
        "offered_rate": phase.rate,
        "achieved_rate": achieved,
        "sent": sum(1 for d in phase.due_ns if d),
        "delivered": phase.delivered,
        "lost": phase.total - phase.delivered,
        "duplicates": phase.duplicates,
        "out_of_seq_order": phase.out_of_order,
        "late_from_earlier_phase": phase.foreign,
        "latency_ms": summarize_ms(latencies),
        "client_send_lag_ms": summarize_ms(phase.send_lag_ns),
        "ack_latency_ms": summarize_ms(acks) if acks else None,
        "client_cpu_s": round(phase.client_cpu_s, 2),
        "drain_s": round(phase.drain_s, 2),
        "errors": phase.errors,
    }


def _fmt(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    return (
        f"offered {result['offered_rate']:.0f}/s achieved {result['achieved_rate']:.0f}/s "
        f"p50 {lat['p50']:.2f} p90 {lat['p90']:.2f} p99 {lat['p99']:.2f} max {lat['max']:.2f} ms "
        f"lost {result['lost']}"
    )


async def run(config: dict[str, Any]) -> dict[str, Any]:
    label = config.get("label", "")
    targets = [
        Target(name=t["name"], kind=t["kind"], staff_url=t["staff_url"], chat_urls=list(t["chat_urls"]))
        for t in config["targets"]
    ]
    duration = float(config["duration"])
    drain_timeout = float(config.get("drain_timeout", 10.0))
    settle = float(config.get("settle", 0.5))
    for target in targets:
        await _connect(target)
    sockets = ", ".join(f"{t.name}: {len(t.customers)} customers + 1 staff" for t in targets)
    _log(f"[{label}] connected {sockets}")
    await asyncio.sleep(settle)

    warmup: dict[str, Any] = {}
    if float(config.get("warmup", 0)) > 0:
        for target in targets:
            phase = await _run_phase(target, float(config["warmup_rate"]), float(config["warmup"]), drain_timeout)
            warmup[target.name] = _phase_result(phase)
            _log(f"[{label}] warm-up {target.name}: {_fmt(warmup[target.name])}")
            await asyncio.sleep(settle)

    results: list[dict[str, Any]] = []
    for rate in config["rates"]:
        row: dict[str, Any] = {"offered_rate": float(rate)}
        for target in targets:
            phase = await _run_phase(target, float(rate), duration, drain_timeout)
            row[target.name] = _phase_result(phase)
            _log(f"[{label}] {target.name:5} {_fmt(row[target.name])}")
            await asyncio.sleep(settle)
        results.append(row)

    broken = {t.name: t.broken for t in targets if t.broken}
    for target in targets:
        target.broken = "closing"
        for ws in [*target.customers, target.staff]:
            if ws is not None:
                await ws.close()
        for task in target.tasks:
            task.cancel()
        await asyncio.gather(*target.tasks, return_exceptions=True)
    return {
        "label": label,
        "warmup": warmup,
        "rates": results,
        "broken": broken,
        "stray_errors": {t.name: t.stray_errors for t in targets if t.stray_errors},
    }


def main() -> None:
    config = json.load(sys.stdin)
    result = uvloop.run(run(config))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
