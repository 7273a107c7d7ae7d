"""Each page of the browser UI renders what the API holds, and the zoo's filters and sorting work."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.helpers.ui import Zoo, shoot

pytestmark = pytest.mark.ui


def expect_models(page: Page, expected: list[str]) -> None:
    """Waits until the zoo lists exactly these models, in this order."""
    expect(page.locator("table.zoo tbody th[scope=row] > a")).to_have_text(expected)


def api_names(zoo: Zoo, query: str) -> list[str]:
    return [m["name"] for m in zoo.server.http.get(f"/v1/models?{query}").json()["items"]]


def test_the_zoo_lists_filters_and_sorts(page: Page, zoo: Zoo) -> None:
    everyone = api_names(zoo, "")  # the seeded models, and those the job tests may have added
    assert {"tiny-brc", "tiny-gru", "uploaded-lstm"} <= set(everyone)
    page.goto("/")
    expect(page.get_by_role("heading", name="The zoo")).to_be_visible()
    expect_models(page, everyone)
    expect(page.get_by_role("status").first).to_have_text(f"{len(everyone)} models")
    shoot(page, "zoo", phone=True)

    grus = api_names(zoo, "cell=gru")
    assert "tiny-gru" in grus and "tiny-brc" not in grus
    page.get_by_label("Cell").select_option("gru")
    expect_models(page, grus)
    assert "cell=gru" in page.url  # the filters live in the address: a reload or a shared link keeps them
    page.reload()
    expect(page.get_by_label("Cell")).to_have_value("gru")
    expect_models(page, grus)
    page.get_by_role("button", name="Clear filters").click()
    expect_models(page, everyone)

    page.get_by_label("Task").select_option("denoising")
    expect_models(page, ["tiny-brc"])
    page.get_by_label("Task").select_option("")
    page.get_by_label("Tag").fill("copy")
    expect_models(page, ["tiny-gru"])
    page.get_by_label("Tag").fill("")
    page.get_by_label("Hidden size").fill("6")
    expect_models(page, ["tiny-brc"])
    page.get_by_label("Hidden size").fill("")
    top = max(m["latest"]["metrics"]["vaa_after"] or 0 for m in zoo.server.http.get("/v1/models").json()["items"])
    page.get_by_label("VAA after ≥").fill(str(top))
    expected = api_names(zoo, f"vaa_after_min={top}")
    assert 1 <= len(expected) < len(everyone)
    expect_models(page, expected)
    page.get_by_label("VAA after ≥").fill("")
    page.get_by_label("Search").fill("uploaded as they are")  # the description
    expect_models(page, ["uploaded-lstm"])
    page.get_by_label("Search").fill("nothing-like-this")
    expect(page.get_by_role("status").first).to_have_text("No model matches these filters.")

    page.goto("/#/?sort=-vaa_after")
    expect(page.get_by_role("columnheader", name=re.compile("VAA after"))).to_have_attribute("aria-sort", "descending")
    expect_models(page, api_names(zoo, "sort=-vaa_after"))
    page.get_by_role("button", name=re.compile("^Name")).click()
    expect(page.get_by_role("columnheader", name=re.compile("^Name"))).to_have_attribute("aria-sort", "ascending")
    page.get_by_role("button", name=re.compile("^Name")).click()
    expect(page.get_by_role("columnheader", name=re.compile("^Name"))).to_have_attribute("aria-sort", "descending")
    expect_models(page, everyone[::-1])
    expect(page.get_by_label("Sort by")).to_have_value("-name")  # the control phones use (no table header there)
    page.get_by_label("Sort by").select_option("vaa_after")
    expect_models(page, api_names(zoo, "sort=vaa_after"))


def test_the_model_page_shows_versions_aliases_card_files_and_snippets(page: Page, zoo: Zoo) -> None:
    page.goto("/")
    page.get_by_role("link", name="tiny-gru").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("tiny-gru")
    expect(page.locator("table.versions tbody tr")).to_have_count(2)
    expect(page.locator(".aliases")).to_have_text("latest → v2")
    card = page.locator(".card-body")
    expect(card.get_by_role("heading", name="tiny-gru v2")).to_be_visible()  # markdown rendered, not shown raw
    expect(card.locator("table")).to_contain_text("VAA after warm-up")
    expect(card.get_by_role("heading", name="Numbers", level=4)).to_be_visible()  # "##" under the page's h2
    expect(card.locator("pre", has_text='"cell": "gru"')).to_have_count(1)  # the spec's fenced block
    weights = zoo.server.http.get("/v1/models/tiny-gru/versions/2").json()["sha256"]
    expect(page.locator('tr[data-file="weights.safetensors"] td.sha')).to_have_text(weights)
    pytorch = page.locator("figure.snippet", has_text="PyTorch (warmzoo)").locator("code")
    expect(pytorch).to_contain_text(f"{zoo.url}/v1/models/tiny-gru/versions/2/files/weights.safetensors")
    expect(pytorch).to_contain_text(weights)
    expect(pytorch).to_contain_text("from warmzoo.models.weights import network_from_weights")
    plain = page.locator("figure.snippet", has_text="Plain PyTorch").locator("code")
    expect(plain).to_contain_text("from modeling import load")
    expect(page.locator("figure.snippet", has_text="ONNX Runtime").locator("code")).to_contain_text("ort.InferenceSession")
    shoot(page, "model", phone=True)


def test_the_version_page_plots_the_warmup(page: Page, zoo: Zoo) -> None:
    version = zoo.server.http.get("/v1/models/tiny-gru/versions/2").json()
    page.goto("/#/models/tiny-gru")
    page.get_by_role("link", name="v2", exact=True).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("tiny-gru v2")
    history = version["metrics"]["vaa_star_history"]
    curve = page.locator("svg.chart path.series")
    expect(curve).to_have_attribute("data-points", str(len(history)))
    expect(page.get_by_role("img", name=re.compile("VAA\\* of tiny-gru v2"))).to_be_visible()
    shown = {m: float(page.locator(f'[data-metric="{m}"]').inner_text()) for m in ("vaa_before", "vaa_after")}
    for metric, value in shown.items():
        assert value == pytest.approx(version["metrics"][metric], rel=1e-3)
    shoot(page, "version", phone=True)


def test_the_markdown_renderer_escapes_html_and_drops_unsafe_links(page: Page) -> None:
    page.goto("/")
    source = '# Hi <b>\n\n<img src=x onerror=alert(1)> *ok* `<i>` [bad](javascript:alert) [good](https://arxiv.org/abs/2106.01001)'
    html = page.evaluate("s => import('/ui/static/js/markdown.js').then(m => m.renderMarkdown(s))", source)
    assert html == (
        "<h1>Hi &lt;b&gt;</h1>\n<p>&lt;img src=x onerror=alert(1)&gt; <em>ok</em> <code>&lt;i&gt;</code> bad "
        '<a href="https://arxiv.org/abs/2106.01001" rel="noopener">good</a></p>'
    )


def test_an_uploaded_version_says_it_has_no_warmup(page: Page) -> None:
    page.goto("/#/models/uploaded-lstm/versions/1")
    expect(page.get_by_text("No warm-up recorded")).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(0)


def test_compare_two_versions_from_the_model_page(page: Page) -> None:
    page.goto("/#/models/tiny-gru")
    compare = page.get_by_role("button", name=re.compile("Compare selected"))
    page.get_by_label("Compare v1").check()
    expect(compare).to_be_disabled()
    page.get_by_label("Compare v2").check()
    compare.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Compare versions")
    expect(page.locator("table.compare thead th")).to_have_count(2)
    expect(page.locator("svg.chart path.series")).to_have_count(2)
    page.get_by_label("Add a version").fill("tiny-brc:1")
    page.get_by_role("button", name="Add").click()
    expect(page.locator("table.compare thead th")).to_have_count(3)
    expect(page.locator(".legend li")).to_have_text(["tiny-gru v1", "tiny-gru v2", "tiny-brc v1"])
    shoot(page, "compare")


def test_the_submit_form_shows_the_apis_message_at_the_field(page: Page) -> None:
    page.goto("/#/submit")
    hidden = page.get_by_label("Hidden size")
    hidden.fill("0")
    page.get_by_role("button", name="Queue the warm-up").click()
    expect(page.get_by_role("alert")).to_contain_text("spec.hidden_size")
    expect(hidden).to_have_attribute("aria-invalid", "true")
    expect(hidden).to_be_focused()
    expect(page.locator('[data-field="spec.hidden_size"] .field-error')).to_contain_text("greater than or equal to 1")
    shoot(page, "submit-error", phone=True)


def test_keyboard_users_can_skip_to_the_content(page: Page) -> None:
    page.goto("/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    assert page.evaluate("location.hash") in ("", "#/")  # the router's address is left alone


def test_the_jobs_page_filters_by_status_and_the_version_says_what_the_warmup_did(page: Page, zoo: Zoo) -> None:
    page.goto("/#/jobs")
    expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    # The session's zoo: its seeded warm-ups and whatever the other UI tests queued before this one.
    jobs = zoo.server.http.get("/v1/jobs", params={"limit": 100}).json()["items"]
    expect(page.locator("tr[data-job]")).to_have_count(len(jobs))
    page.get_by_label("Status").select_option("failed")
    expect(page.get_by_text("No jobs.")).to_be_visible()
    page.get_by_label("Status").select_option("succeeded")
    expect(page.locator('tr[data-status="succeeded"]')).to_have_count(sum(j["status"] == "succeeded" for j in jobs))
    page.get_by_label("Whose").select_option("mine")
    expect(page.get_by_text("No job was submitted from this browser yet.")).to_be_visible()
    version = zoo.server.http.get("/v1/models/tiny-gru/versions/1").json()
    page.goto("/#/models/tiny-gru/versions/1")
    expect(page.locator(f'[data-outcome="{version["outcome"]["kind"]}"]')).to_contain_text(version["outcome"]["summary"])
    expect(page.locator("p.measured")).to_contain_text("exact, n = 32")
    expect(page.get_by_text("VAA* is the smooth surrogate")).to_be_visible()
    expect(page.get_by_role("heading", name="Warmed versus cold")).to_be_visible()
