"""HTML form bodies of the page routes: size-limited, strictly UTF-8, one value per field."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.requests import Request

from desk.errors import ValidationFailed
from desk.schemas import MAX_TEXT, Outcome
from desk.web.bodies import error_fields, read_body

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 50


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form (what browsers and htmx send); an empty dict for any other body."""
    raw = await read_body(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        return {}
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ValidationFailed("The form could not be read.", fields={"$": "not a UTF-8 urlencoded form"}) from None
    return dict(pairs)


def message_text(form: dict[str, str]) -> str:
    """The text of a reply or note: required, at most MAX_TEXT characters; kept as typed (not stripped)."""
    text = form.get("text", "")
    if not text.strip():
        raise ValidationFailed("Write something first.", fields={"text": "required"})
    if len(text) > MAX_TEXT:
        raise ValidationFailed(f"At most {MAX_TEXT} characters.", fields={"text": "too long"})
    return text.replace("\r\n", "\n")


def client_id(form: dict[str, str]) -> str | None:
    value = form.get("client_id", "").strip()
    return value[:100] or None


def outcome(form: dict[str, str]) -> dict[str, Any]:
    """The outcome of a handoff from the outcome form: tags are comma-separated; blank fields are left out."""
    data: dict[str, Any] = {
        key: form[key].replace("\r\n", "\n")
        for key in ("resolution", "recommendation_feedback", "note_for_ai")
        if form.get(key, "").strip()
    }
    data["tags"] = [tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()]
    try:
        return Outcome.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        fields = error_fields(exc)
        detail = "; ".join(f"{path}: {message}" for path, message in fields.items())
        raise ValidationFailed(f"Check the outcome ({detail}).", fields=fields) from None


MAX_INSERTED = 20
MAX_SKILL_CHARS = 64
MAX_ID_CHARS = 64
MAX_SEARCH_CHARS = 200


def inserted_recommendations(form: dict[str, str]) -> list[int]:
    """The recommended actions the workspace inserted into a reply: indices, comma-separated ("0" or "0,2")."""
    raw = [part.strip() for part in form.get("recommendation", "").split(",") if part.strip()]
    if len(raw) > MAX_INSERTED or not all(part.isascii() and part.isdigit() and len(part) <= 3 for part in raw):
        raise ValidationFailed("That recommended action is unknown.", fields={"recommendation": "not an index"})
    return [int(part) for part in raw]


def transfer_target(form: dict[str, str]) -> tuple[str | None, str | None]:
    """(to_agent_id, to_skill): exactly one of them, as the transfer form sends it."""
    agent_id = form.get("to_agent_id", "").strip() or None
    skill = form.get("to_skill", "").strip() or None
    if (agent_id is None) == (skill is None):
        message = "Choose a colleague or a skill to transfer to (one of them)."
        raise ValidationFailed(message, fields={"to_agent_id": "give exactly one of to_agent_id and to_skill"})
    if agent_id is not None and len(agent_id) > MAX_ID_CHARS:
        raise ValidationFailed("No such active staff member.", fields={"to_agent_id": "unknown or inactive"})
    if skill is not None and len(skill) > MAX_SKILL_CHARS:
        raise ValidationFailed(f"A skill has at most {MAX_SKILL_CHARS} characters.", fields={"to_skill": "too long"})
    return agent_id, skill
