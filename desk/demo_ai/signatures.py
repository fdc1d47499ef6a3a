"""Webhook signatures (CONTRACT.md section 6), checked the way any receiver of Desk's webhooks should.

`Desk-Signature: v1=<hex HMAC-SHA256 of "<Desk-Timestamp>.<raw body>">`. Several comma-separated `v1=`
values are accepted so a sender can rotate secrets; a timestamp further than `TOLERANCE_S` from now is
refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["TOLERANCE_S", "sign", "verify"]

TOLERANCE_S = 300


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The `Desk-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    if not timestamp or not signature or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode()
    candidates = [part.strip() for part in signature.split(",")]
    # Compare every candidate so the time taken does not reveal which one matched.
    matched = [hmac.compare_digest(expected, c.encode()) for c in candidates if c.startswith("v1=")]
    return any(matched)
