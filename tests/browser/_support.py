"""What the browser tests share: signing in through the login page, and how long to wait for the live page."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests._support import PASSWORD

TIMEOUT_MS = 10_000


async def sign_in(page: Page, base: str, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#login-email", email)
    await page.fill("#login-password", password)
    await page.click("button[type=submit]")
    await expect(page.locator("#queue")).to_be_visible(timeout=TIMEOUT_MS)
