"""A warm-up through the browser: submitted with the form, followed live on the job page (server-sent
events), published, and its weights downloaded and checked against the sha256 the page shows;
and a running job canceled from its page."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.helpers.payloads import warmup_on_cpu
from tests.helpers.ui import Zoo, shoot

pytestmark = pytest.mark.ui

PROGRESS = "document.querySelector('progress')"
# What the waits read: -1 until the page has drawn its progress bar (a wait that reads a missing
# element raises a TypeError instead of trying again).
STEP = f"({PROGRESS}?.value ?? -1)"


def test_submit_a_warmup_watch_it_finish_and_download_the_weights(page: Page, tmp_path: Path) -> None:
    page.goto("/")
    page.get_by_role("link", name="Warm up").click()
    page.get_by_label("Model name").fill("ui-gru")
    page.get_by_label("Cell").select_option("gru")
    page.get_by_label("Hidden size").fill("4")
    page.get_by_label("Sequence length (T)").fill("12")
    page.get_by_label("Sequences (N)").fill("16")
    page.get_by_label("Steps").fill("25")
    page.get_by_label("Batch Size").fill("8")
    page.get_by_label("Device").select_option("cpu")
    page.get_by_role("button", name="Queue the warm-up").click()

    expect(page).to_have_url(re.compile(r"#/jobs/[0-9a-f-]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Warm-up job")
    expect(page.locator(".status")).to_have_text("Status: succeeded")
    expect(page.locator(".step-text")).to_have_text("1 of 1")  # the last phase, exporting, is done
    assert page.evaluate(f"{PROGRESS}.value === {PROGRESS}.max")
    expect(page.locator("svg.chart path.series")).to_have_attribute("data-points", "25")  # the whole history
    expect(page.get_by_role("button", name="Cancel the job")).to_be_disabled()
    shoot(page, "job-finished", phone=True)

    page.get_by_role("link", name="ui-gru v1").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("ui-gru v1")
    row = page.locator('tr[data-file="weights.safetensors"]')
    shown = row.locator("td.sha").inner_text().strip()
    with page.expect_download() as download:
        row.get_by_role("link", name=re.compile("Download")).click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "weights.safetensors"
    assert re.fullmatch(r"[0-9a-f]{64}", shown) and hashlib.sha256(saved.read_bytes()).hexdigest() == shown


def test_a_running_job_updates_live_and_can_be_canceled(page: Page, zoo: Zoo) -> None:
    job_id = zoo.server.http.post("/v1/warmups", json=warmup_on_cpu("ui-cancel", steps=300)).json()["id"]  # tens of seconds
    try:
        page.goto(f"/#/jobs/{job_id}")
        # Functions, not expressions: Playwright evaluates an expression with eval, which the CSP forbids.
        page.wait_for_function(f"() => {STEP} >= 2")
        seen = page.evaluate(STEP)
        page.wait_for_function(f"() => {STEP} > {seen}")  # moved with no reload: the event stream
        expect(page.locator(".status")).to_have_text("Status: running")
        expect(page.locator(".status")).to_have_attribute("aria-live", "polite")
        done = re.compile(r"^\d+% done: step \d+ of 300$")
        expect(page.locator('[aria-live="polite"]', has_text=done)).to_have_count(1)
        # The curve has a point for every step so far, those before the page opened included.
        curve = "document.querySelector('svg.chart path.series')"
        assert page.evaluate(f"Number({curve}.dataset.points) === {STEP} && {STEP} >= 2")
        shoot(page, "job-live", phone=True)

        page.get_by_role("button", name="Cancel the job").click()
        expect(page.locator(".status")).to_have_text("Status: canceled")
        expect(page.get_by_role("button", name="Cancel the job")).to_be_disabled()
        assert zoo.server.http.get(f"/v1/jobs/{job_id}").json()["status"] == "canceled"
    finally:  # whatever failed above, the job must not publish ui-cancel into the other tests' zoo
        zoo.server.http.post(f"/v1/jobs/{job_id}/cancel")
        ended = zoo.server.wait_for(job_id, lambda job: job["status"] not in ("queued", "running"))
        assert ended["status"] == "canceled", ended
