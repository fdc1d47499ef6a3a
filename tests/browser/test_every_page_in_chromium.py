"""Every page in Chromium, with hostile text in every field: no script from user content runs (no dialog, no
`window.__pwned`, no element it would have made), no CSP violation, no error; and the layout holds at laptop and
tablet widths (no sideways scrolling)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Dialog, Page

from tests._support import Desk
from tests.browser._support import TIMEOUT_MS, sign_in
from tests.web._seeded import seed
from tests.web.test_every_page import pages

WIDTHS = {"laptop": (1366, 768), "tablet": (768, 1024)}


def watch(page: Page, problems: list[str]) -> None:
    """Record dialogs (dismissed), console errors (CSP violations are console errors) and uncaught errors."""

    async def on_dialog(dialog: Dialog) -> None:
        problems.append(f"dialog {dialog.message!r} on {page.url}")
        await dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error on {page.url}: {message.text}")

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error on {page.url}: {error}"))


async def test_hostile_text_stays_inert_and_pages_fit(sqlite_desk: Desk, chromium: Browser, artifacts: Path) -> None:
    seeded = await seed(sqlite_desk)
    problems: list[str] = []
    for width_name, (width, height) in WIDTHS.items():
        context = await chromium.new_context(viewport={"width": width, "height": height})
        try:
            page = await context.new_page()
            watch(page, problems)
            await sign_in(page, sqlite_desk.server.url, seeded.admin.email)
            for path in pages(seeded):
                await page.goto(sqlite_desk.server.url + path)
                await page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
                pwned = await page.evaluate("window.__pwned || null")
                assert pwned is None, f"{path}: a payload ran ({pwned})"
                injected = await page.locator("img[src=x], svg[onload], [hx-get='/logout']").count()
                assert injected == 0, f"{path}: user content became markup"
                overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, f"{path} at {width_name} width scrolls sideways by {overflow}px"
            await page.screenshot(path=str(artifacts / f"hostile-workspace-{width_name}.png"))
        finally:
            await context.close()
    assert not problems, "\n".join(problems)
