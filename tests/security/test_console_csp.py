"""The console under its strict CSP, in a real Chromium: every view loads, image and text
previews (presigned GETs) display, and the browser reports no policy violation."""

from __future__ import annotations

import base64

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.test_console_browser import page, server  # noqa: F401  (the live server and the browser)
from tests.live import API_KEY, LiveServer

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
WATCH = """window.__violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"""


def test_console_runs_under_its_csp_without_violations(server: LiveServer, page: Page) -> None:  # noqa: F811
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Namespace": "demo"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        made = api.post(
            "/v1/buckets/notes/objects",
            json={
                "blobs": [
                    {
                        "property": "image",
                        "type": "image",
                        "data": base64.b64encode(PNG).decode(),
                        "content_type": "image/png",
                    },
                    {"property": "text", "type": "text", "data": "A note shown as a preview."},
                ]
            },
        )
        assert made.status_code == 200, made.text
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None)
    page.add_init_script(WATCH)
    page.goto(f"{server.url}/console")
    page.fill("#login-key", API_KEY)
    page.click("#login-form button")
    expect(page.locator(".bucket-card")).to_contain_text("notes")
    page.click(".bucket-card")
    expect(page.locator(".object img")).to_have_count(1)
    page.wait_for_function("document.querySelector('.object img').complete")
    assert page.evaluate("document.querySelector('.object img').naturalWidth") == 1  # the image really displayed
    for view in ("collections", "batches", "tasks", "search"):
        page.click(f"a[data-view={view}]")
        page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__violations") == [] and messages == []
