"""Staff passwords: argon2id at OWASP's parameters, upgraded on login, never stored or accepted in the clear."""

from __future__ import annotations

import sqlalchemy as sa
from argon2 import PasswordHasher

from tests._support import PASSWORD, Desk, ServerPool, create_user, error_of, login, sync_api

OWASP = "$argon2id$v=19$m=19456,t=2,p=1$"


def stored_hash(database_url: str, email: str) -> str:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            value = connection.execute(sa.text("SELECT password_hash FROM users WHERE email = :e"), {"e": email})
            return str(value.scalar_one())
    finally:
        engine.dispose()


def set_hash(database_url: str, email: str, password_hash: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE users SET password_hash = :h WHERE email = :e"), {"h": password_hash, "e": email}
            )
    finally:
        engine.dispose()


def test_hash_is_argon2id_at_owasp_parameters_and_upgraded_on_login(database_url: str, server: ServerPool) -> None:
    desk = Desk(server(database_url))
    create_user(database_url, email="old@example.com", name="Old Hash", role="agent")
    assert stored_hash(database_url, "old@example.com").startswith(OWASP)

    # A hash made with weaker, older parameters still logs in, and is re-hashed at the current ones.
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    set_hash(database_url, "old@example.com", weak)
    answer = login(desk.server, "old@example.com", PASSWORD)
    assert answer["user"]["name"] == "Old Hash"
    upgraded = stored_hash(database_url, "old@example.com")
    assert upgraded.startswith(OWASP)
    assert PasswordHasher().verify(upgraded, PASSWORD)


def test_wrong_password_and_unknown_email_answer_alike(database_url: str, server: ServerPool) -> None:
    desk = Desk(server(database_url))
    create_user(database_url, email="known@example.com", name="Known", role="agent")
    with sync_api(desk.server) as client:
        wrong = client.post("/api/v1/auth/token", json={"email": "known@example.com", "password": "not it at all"})
        unknown = client.post("/api/v1/auth/token", json={"email": "nobody@example.com", "password": PASSWORD})
    assert error_of(wrong, 401, "invalid_credentials") == error_of(unknown, 401, "invalid_credentials")
    assert PASSWORD not in stored_hash(database_url, "known@example.com")
