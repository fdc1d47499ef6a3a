"""Webhook signatures (CONTRACT.md section 6): v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">."""

from __future__ import annotations

import hashlib
import hmac
import time

MAX_SKEW_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def signed_headers(secret: str, body: bytes, *, event_id: int | None = None) -> dict[str, str]:
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "Desk-Timestamp": str(timestamp),
        "Desk-Signature": signature(secret, timestamp, body),
    }
    if event_id is not None:
        headers["Desk-Event-Id"] = str(event_id)
    return headers


def verify(secret: str, timestamp: str, sig: str, body: bytes, *, now: float | None = None) -> bool:
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - ts) > MAX_SKEW_S:
        return False
    return hmac.compare_digest(signature(secret, ts, body), sig)
