"""Random identifiers and bearer tokens: opaque, at least 128 bits, never sequential."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

INTEGRATION_PREFIX = "dski_"
STAFF_PREFIX = "dsks_"
CUSTOMER_PREFIX = "dskc_"


def new_id() -> str:
    return uuid.uuid4().hex


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
