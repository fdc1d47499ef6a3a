"""Browser-facing safety: security headers with a strict CSP, the session's CSRF token, same-origin checks.

The pages authenticate with the session cookie, so every state-changing page route checks a per-session CSRF token
(a hidden form field, or the `X-CSRF-Token` header that static/desk.js adds to htmx requests), and the `/ws/ui`
handshake checks that the Origin, when the browser sends one, is this desk.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_CSRF_KEY = "csrf"
_SESSION_KEY = "sid"


def content_security_policy(host: str, frame_ancestors: str = "'none'") -> str:
    # No 'unsafe-inline' and no 'unsafe-eval': templates have no inline scripts, handlers or style attributes.
    sockets = f"ws://{host} wss://{host}" if host else "ws: wss:"
    return (
        "default-src 'self'; "
        f"connect-src 'self' {sockets}; "
        "img-src 'self' data:; "
        "style-src 'self'; "
        "script-src 'self'; "
        "object-src 'none'; "
        "base-uri 'none'; "
        "form-action 'self'; "
        f"frame-ancestors {frame_ancestors}"
    )


def page_headers(conn: HTTPConnection, *, frame_ancestors: str = "'none'") -> dict[str, str]:
    """`frame_ancestors`: who may frame the page ("'none'" for the desk; the customer chat lets widget hosts)."""
    return {
        "Content-Security-Policy": content_security_policy(conn.headers.get("host", ""), frame_ancestors),
        "X-Content-Type-Options": "nosniff",
        **({"X-Frame-Options": "DENY"} if frame_ancestors == "'none'" else {}),  # for browsers before CSP 2
        # Customer chat URLs carry their token: never leak them in a Referer.
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def csrf_token(conn: HTTPConnection) -> str:
    """The session's CSRF token, created on first use."""
    token = conn.session.get(_CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        conn.session[_CSRF_KEY] = token
    return token


def session_csrf(conn: HTTPConnection) -> str:
    """The CSRF token the session already has ("" if none), for sockets, which cannot set cookies."""
    token = conn.session.get(_CSRF_KEY)
    return token if isinstance(token, str) else ""


def start_session(conn: HTTPConnection, session_id: str, csrf: str) -> None:
    """Rotate the cookie on login: nothing from before survives, the session id and the CSRF token are new."""
    conn.session.clear()
    conn.session[_SESSION_KEY] = session_id
    conn.session[_CSRF_KEY] = csrf


def session_id(conn: HTTPConnection) -> str:
    """The server-side session the cookie names ("" if none)."""
    if "session" not in conn.scope:
        return ""
    value = conn.session.get(_SESSION_KEY)
    return value if isinstance(value, str) else ""


def csrf_ok(conn: HTTPConnection, form: Mapping[str, str]) -> bool:
    expected = conn.session.get(_CSRF_KEY)
    given = conn.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD) or ""
    if not isinstance(expected, str) or not expected:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


def same_origin(conn: HTTPConnection, public_url: str, allowed: tuple[str, ...] = ()) -> bool:
    """True when the Origin header is absent (non-browser clients) or is allowed: this desk (its Host, or its
    public URL) or one of `allowed` (DESK_ALLOWED_ORIGINS)."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    if parts.netloc.lower() == conn.headers.get("host", "").lower():
        return True
    if f"{parts.scheme}://{parts.netloc}".lower() in allowed:
        return True
    public = urlsplit(public_url)
    return (parts.scheme, parts.netloc.lower()) == (public.scheme, public.netloc.lower())
