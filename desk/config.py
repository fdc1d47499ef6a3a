"""Settings read from the environment (CONTRACT.md section 1, docs/internals.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_WS_FRAME_BYTES = 64 * 1024


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./desk.db"
    redis_url: str | None = None
    secret_key: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""
    policy_file: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Overrides the policy's per-attempt AI time limit when set (DESK_TURN_TIMEOUT_S); unset: the policy's.
    turn_timeout_s: float | None = None
    # Browser origins, besides the desk's own, whose pages may open the staff sockets and post the desk's forms.
    allowed_origins: tuple[str, ...] = ()
    # Sites that may embed the customer chat (widget.js frames /chat/...): "*" for any, or a list of origins.
    widget_origins: tuple[str, ...] = ("*",)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    return Settings(
        database_url=env.get("DESK_DATABASE_URL", "sqlite:///./desk.db"),
        redis_url=env.get("DESK_REDIS_URL") or None,
        # Unset: generated on first run and kept in the database, so every process and host shares it.
        secret_key=env.get("DESK_SECRET_KEY", ""),
        host=env.get("DESK_HOST", "127.0.0.1"),
        port=int(env.get("DESK_PORT", "8000")),
        public_url=env.get("DESK_PUBLIC_URL", ""),
        policy_file=env.get("DESK_POLICY_FILE") or None,
        max_body_bytes=int(env.get("DESK_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))),
        turn_timeout_s=float(env["DESK_TURN_TIMEOUT_S"]) if env.get("DESK_TURN_TIMEOUT_S") else None,
        allowed_origins=_origins(env.get("DESK_ALLOWED_ORIGINS", "")),
        widget_origins=_origins(env.get("DESK_WIDGET_ORIGINS", "*")) or ("*",),
    )


def _origins(value: str) -> tuple[str, ...]:
    return tuple(origin.strip().rstrip("/").lower() for origin in value.split(",") if origin.strip())
