"""Every page of the desk, with hostile text in every field it shows: served with the strict CSP, no markup or
script came out of user content, every form control is labelled, and nothing user-supplied survived unescaped."""

from __future__ import annotations

from tests._support import Desk
from tests.web._seeded import XSS, Seeded, seed
from tests.web.test_pages import Browser, assert_no_inline_code, browser, tags_of

LABELLED_BY_ITSELF = {"hidden", "submit", "button", "reset", "image"}


def pages(seeded: Seeded) -> list[str]:
    return [
        "/desk",
        f"/desk/conversations/{seeded.queued_id}",
        f"/desk/conversations/{seeded.assigned_id}",
        f"/desk/conversations/{seeded.finished_id}",
        "/floor",
        "/learning",
        "/admin/users",
        "/admin/integrations",
        "/admin/webhooks",
        "/admin/canned-replies",
        f"/chat/{seeded.customer_token}",
        f"/chat/{seeded.customer_token}?embed=1",
    ]


def assert_labelled(page: str, path: str) -> None:
    tags = tags_of(page)
    label_targets = {attrs.get("for") for tag, attrs in tags if tag == "label"}
    for tag, attrs in tags:
        if tag not in ("input", "select", "textarea") or attrs.get("type") in LABELLED_BY_ITSELF:
            continue
        named = attrs.get("aria-label") or attrs.get("aria-labelledby") or attrs.get("title")
        assert named or attrs.get("id") in label_targets, f"{path}: <{tag} {attrs}> has no label"


async def test_every_page_is_safe_and_labelled(desk: Desk) -> None:
    seeded = await seed(desk)
    async with browser(desk.server, seeded.admin) as as_admin:
        for path in pages(seeded):
            await check_page(as_admin, path)


async def check_page(as_admin: Browser, path: str) -> None:
    response = await as_admin.get(path)
    assert response.status_code == 200, f"{path}: {response.status_code}"
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "script-src 'self'" in csp
    page = response.text
    assert '<html lang="en">' in page
    assert_no_inline_code(page)
    assert_labelled(page, path)
    for payload in XSS:
        if "<" in payload:
            assert payload not in page, f"{path}: {payload!r} came out unescaped"
    assert "\u202e" not in page, f"{path}: a bidi override reached the page"
