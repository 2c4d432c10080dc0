"""The web console in a real headless Chromium (Debian's), driven by Playwright: sign in, drop a
file on a bucket, watch its batch complete tier by tier, see the DAG and the tasks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.live import API_KEY, LiveServer, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots land here; STRATAFLOW_SCREENSHOTS keeps them somewhere else to look at (docs/img/ holds a few).
SHOTS = os.environ.get("STRATAFLOW_SCREENSHOTS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("console") / "data")
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as api:
        assert api.post("/v1/namespaces", json={"namespace_name": "demo"}).status_code == 200
        api.headers["X-Namespace"] = "demo"
        schema = {
            "properties": {
                "text": {"type": "text"},
                "image": {"type": "image"},
                "filename": {"type": "string"},
                "path": {"type": "string"},
            }
        }
        assert api.post("/v1/buckets", json={"bucket_name": "notes", "bucket_schema": schema}).status_code == 200
        made = api.post(
            "/v1/collections",
            json={
                "collection_name": "notes-text",
                "source": {"type": "bucket", "bucket_ids": ["notes"]},
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": "text"},
                    "field_passthrough": [{"source_path": "filename"}],
                    "parameters": {
                        "extractor_type": "text_extractor",
                        "split_by": "paragraphs",
                        "chunk_size": 1,
                        "model": "wordllama",
                    },
                },
            },
        )
        assert made.status_code == 200, made.text
    yield live
    live.stop()


@pytest.fixture()
def page(tmp_path: Path) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 820})
        yield context.new_page()
        browser.close()


def shot(page: Page, tmp_path: Path, name: str) -> None:
    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def drop_file(page: Page, selector: str, name: str, text: str, mime: str) -> None:
    """A real drop event carrying a File, as a person dragging from their desktop produces."""
    page.evaluate(
        """([selector, name, text, mime]) => {
        const data = new DataTransfer();
        data.items.add(new File([text], name, {type: mime}));
        const zone = document.querySelector(selector);
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
    }""",
        [selector, name, text, mime],
    )


def test_sign_in_drop_a_file_and_watch_its_batch(server: LiveServer, page: Page, tmp_path: Path) -> None:
    page.goto(f"{server.url}/console")
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#login-key", "sk_wrong_key_000000000000000000")
    page.click("#login-form button")
    expect(page.locator("#login-error")).to_contain_text("Invalid or revoked API key")
    page.fill("#login-key", API_KEY)
    page.click("#login-form button")
    expect(page.locator(".bucket-card")).to_contain_text("notes")
    assert page.evaluate("sessionStorage.getItem('strataflow.apiKey')") == API_KEY
    assert page.evaluate("localStorage.length") == 0  # the key never outlives the tab
    shot(page, tmp_path, "1-buckets")

    page.click(".bucket-card")
    expect(page.locator("#dropzone")).to_be_visible()
    drop_file(
        page, "#dropzone", "glaciers.txt", "Glaciers carve valleys.\n\nMeltwater feeds the rivers below.", "text/plain"
    )
    expect(page.locator("#uploads")).to_contain_text("uploaded")
    panel = page.locator("#batch-live .batch-panel")
    expect(panel).to_have_attribute("data-status", "COMPLETED", timeout=60_000)
    expect(panel.locator(".tier")).to_contain_text("notes-text")
    expect(panel.locator(".tier")).to_contain_text("1 / 1 rows · 2 documents")
    expect(page.locator(".object")).to_contain_text("glaciers.txt")
    expect(page.locator(".object .textpeek")).to_contain_text("Glaciers carve valleys.")  # preview via presigned GET
    shot(page, tmp_path, "2-bucket-after-batch")

    # The same file again: the SHA-256 matches, nothing is uploaded twice.
    drop_file(
        page, "#dropzone", "glaciers.txt", "Glaciers carve valleys.\n\nMeltwater feeds the rivers below.", "text/plain"
    )
    expect(page.locator("#uploads")).to_contain_text("already there")

    page.click("a[data-view=collections]")
    expect(page.locator("#dag .node")).to_have_count(2)
    expect(page.locator("#dag")).to_contain_text("2 documents")
    expect(page.locator("#dag svg.edges path")).to_have_count(1)
    shot(page, tmp_path, "3-collections-dag")

    page.click("a[data-view=batches]")
    expect(page.locator("tbody tr")).to_have_count(1)
    page.click("tbody tr")
    expect(page.locator(".batch-panel")).to_have_attribute("data-status", "COMPLETED")
    # Tier buttons and the audit view: a finished tier can be healed; here nothing is missing.
    expect(page.locator(".batch-panel .tier button[data-action=heal]")).to_be_visible()
    page.click("button:has-text('Audit')")
    expect(page.locator("#batch-audit")).to_contain_text("Audit: nothing lost")
    expect(page.locator("#batch-audit")).to_contain_text("Every row has its documents.")
    page.click(".batch-panel .tier button[data-action=heal]")
    expect(page.locator("#toast")).to_contain_text("Nothing to heal")

    page.click("a[data-view=tasks]")
    expect(page.locator("tbody")).to_contain_text("api_buckets_batches_process")
    expect(page.locator("tbody")).to_contain_text("COMPLETED")
    shot(page, tmp_path, "4-tasks")

    page.click("a[data-view=search]")
    page.fill("#search-query", "meltwater feeding rivers")
    page.press("#search-query", "Enter")
    expect(page.locator(".hit").first).to_contain_text("Meltwater feeds the rivers below.")
    expect(page.locator(".hit").first.locator(".lineage")).to_contain_text("obj_")
    shot(page, tmp_path, "5-search")

    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('strataflow.apiKey')") is None


def test_the_taxonomy_tree_and_what_each_document_was_assigned(server: LiveServer, page: Page, tmp_path: Path) -> None:
    """A path hierarchy applied to documents: the console draws its tree and, per document, the path
    it was assigned and the score."""
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Namespace": "demo"}
    api = httpx.Client(base_url=server.url, headers=headers, timeout=30)
    made = []
    for name in ("footage/2024/q3", "footage/2023"):
        answer = api.post("/v1/collections/notes-text/documents", json={"text": "a clip", "filename": name})
        assert answer.status_code == 200, answer.text
        made.append(answer.json()["document_id"])
    taxonomy = api.post(
        "/v1/taxonomies",
        json={"taxonomy_name": "folders", "config": {"taxonomy_type": "hierarchical", "path_field": "filename"}},
    ).json()
    tid = taxonomy["taxonomy_id"]
    attached = api.patch("/v1/collections/notes-text", json={"taxonomy_applications": [{"taxonomy_id": tid}]})
    assert attached.status_code == 200, attached.text
    task = api.post("/v1/collections/notes-text/apply-taxonomy", json={"taxonomy_id": tid}).json()["task_id"]
    for _ in range(600):
        status = api.get(f"/v1/tasks/{task}").json()["status"]
        if status not in ("PENDING", "PROCESSING"):
            break
        page.wait_for_timeout(100)
    assert status == "COMPLETED"

    page.goto(f"{server.url}/console")
    page.fill("#login-key", API_KEY)
    page.click("#login-form button")
    page.click("a[data-view=taxonomies]")
    page.click(f"a[href='#/taxonomy/{tid}']")
    tree = page.locator("main .card").first
    expect(tree).to_contain_text("footage")
    expect(tree.locator("div", has_text="q3")).to_have_attribute("style", "padding-left:3rem")  # depth 2
    rows = page.locator("tbody tr")
    expect(rows.filter(has_text="footage › 2024 › q3")).to_have_count(1)
    expect(rows.filter(has_text="footage › 2023")).to_contain_text("1.000")
    shot(page, tmp_path, "6-taxonomy")
    # What this test made goes, so the other test of this module sees its own namespace as it left it.
    for document_id in made:
        assert api.delete(f"/v1/collections/notes-text/documents/{document_id}").status_code == 200
    assert api.patch("/v1/collections/notes-text", json={"taxonomy_applications": []}).status_code == 200
    assert api.delete(f"/v1/taxonomies/{tid}").status_code == 200
    api.close()
