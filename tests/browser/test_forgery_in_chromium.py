"""Cross-site request forgery in a real browser: a hostile page on another origin (the same site: 127.0.0.1 on
another port, so SameSite=Lax still sends the cookie) posts the desk's forms and opens its live socket while an
agent is signed in. The CSRF token and the Origin check refuse every attempt, and nothing changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.async_api import Browser, expect

from tests._support import Desk, context_bundle, escalate, ok
from tests.browser._support import TIMEOUT_MS, sign_in

HOSTILE = """<!doctype html><html><body>
<form id="logout" method="post" action="{desk}/logout" target="sink"></form>
<form id="claim" method="post" action="{desk}/desk/conversations/{conversation}/claim" target="sink">
  <input name="csrf_token" value="guessed">
</form>
<iframe name="sink"></iframe>
<script>
  window.results = {{socket: "pending", fetch: "pending", posts: 0}};
  var sink = document.querySelector("iframe[name=sink]");
  sink.addEventListener("load", function () {{
    window.results.posts += 1;
    if (window.results.posts === 1) document.getElementById("logout").submit();
  }});
  document.getElementById("claim").submit();
  fetch("{desk}/desk/conversations/{conversation}/claim", {{
    method: "POST", credentials: "include", mode: "no-cors",
    headers: {{"Content-Type": "application/x-www-form-urlencoded"}}, body: "x=1"
  }}).then(function () {{ window.results.fetch = "sent"; }}, function () {{ window.results.fetch = "failed"; }});
  var socket = new WebSocket("{ws}/ws/ui");
  socket.onopen = function () {{ window.results.socket = "open"; }};
  socket.onmessage = function (event) {{ window.results.socket = "message: " + event.data.slice(0, 80); }};
  socket.onclose = function () {{ if (window.results.socket === "pending") window.results.socket = "refused"; }};
</script>
</body></html>"""


@contextmanager
def hostile_site(page_html: str) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page_html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_hostile_page_cannot_act_for_a_signed_in_agent(desk: Desk, chromium: Browser) -> None:
    agent = desk.staff("agent")
    async with desk.api(desk.integration().token) as ai:
        conversation_id = (await escalate(ai, context_bundle()))["conversation_id"]
    context = await chromium.new_context()
    try:
        page = await context.new_page()
        await sign_in(page, desk.server.url, agent.email)
        html = HOSTILE.format(desk=desk.server.url, ws=desk.server.ws_url, conversation=conversation_id)
        with hostile_site(html) as hostile:
            evil = await context.new_page()
            await evil.goto(hostile)
            # Both forms answered (the desk's answers may not even be framed: frame-ancestors 'none'), the fetch
            # went out, and the socket closed without ever opening.
            done = "r => r.socket !== 'pending' && r.fetch !== 'pending' && r.posts >= 2"
            await evil.wait_for_function(f"({done})(window.results)", timeout=TIMEOUT_MS)
            results = await evil.evaluate("window.results")
            assert results["socket"] == "refused", results

        # Still signed in, the conversation still waiting for whoever claims it properly.
        status = await page.request.get(f"{desk.server.url}/session")
        assert status.status == 204
        async with desk.api(agent.token) as api:
            conversation = ok(await api.get(f"/api/v1/conversations/{conversation_id}"))
        assert conversation["status"] == "queued"
        await page.reload()
        await expect(page.locator(f"#queue-item-{conversation_id}")).to_be_visible(timeout=TIMEOUT_MS)
    finally:
        await context.close()
