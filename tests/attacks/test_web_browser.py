"""The issue's own web attacks in a real browser (Debian's headless Chromium via Selenium): an operator
is logged in to the console, then opens a page served from another port of the same host. That page
tries to confirm an alert "arrested" (a cross-origin fetch and an auto-submitted form, both of which carry
the SameSite=Strict cookie, since another port is the same site) and to frame the console."""

from __future__ import annotations

import http.server
import threading
import time

import pytest
from browserhelpers import chromium, log_in, needs_chromium
from conftest import free_port

from attacks.test_web import PASSWORD, Site

pytestmark = needs_chromium


def _serve(html: str) -> tuple[http.server.HTTPServer, int]:
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    port = free_port()
    srv = http.server.HTTPServer(("127.0.0.1", port), Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, port


@pytest.fixture
def logged_in(tmp_path):
    site = Site(tmp_path)
    d = chromium()
    try:
        d.get(site.origin + "/login")
        log_in(d, "alice", PASSWORD)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not d.execute_script(
                "return location.pathname === '/' && document.getElementById('operator').textContent"):
            time.sleep(0.2)
        yield site, d
    finally:
        d.quit()
        site.close()


def test_a_page_on_another_port_cannot_confirm_an_alert(logged_in):
    site, d = logged_in
    a, b = site.alerts[0]["alert_id"], site.alerts[1]["alert_id"]
    url = f"{site.origin}/api/alerts/{{}}/decision"
    srv, port = _serve(f"""<!doctype html><body>
<form id="f" method="POST" action="{url.format(b)}" enctype="text/plain" target="sink">
<input name='{{"decision":"confirm","action":"arrested","x":"' value='"}}'></form>
<iframe name="sink"></iframe>
<script>
fetch("{url.format(a)}", {{method: "POST", credentials: "include", mode: "no-cors",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{decision: "confirm", action: "arrested"}})}})
  .finally(() => {{ document.title = "fetched"; document.getElementById("f").submit(); }});
</script></body>""")
    try:
        d.get(f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and d.title != "fetched":
            time.sleep(0.1)
        time.sleep(1.5)  # the form post
        assert d.title == "fetched"
        assert site.is_open(a) and site.is_open(b), "a page on another port decided an alert"
    finally:
        srv.shutdown()


def test_a_page_on_another_port_cannot_frame_the_console(logged_in):
    site, d = logged_in
    srv, port = _serve(f'<!doctype html><iframe id="c" src="{site.origin}/" width="800" height="600"></iframe>')
    try:
        d.get(f"http://127.0.0.1:{port}/")
        time.sleep(2.0)
        d.switch_to.frame(d.find_element("id", "c"))
        framed = d.find_elements("id", "operator") + d.find_elements("id", "login")
        d.switch_to.default_content()
        assert not framed, "the console rendered inside another site's page"
    finally:
        srv.shutdown()
