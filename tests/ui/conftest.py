"""The browser UI's fixtures: Debian's Chromium driven by Playwright against a real `warmzoo serve`
(started as the e2e tests start it) holding a small seeded zoo (tests/helpers/ui.py has the
screenshot helper).

Without /usr/bin/chromium the tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.helpers.factories import tiny_spec, tiny_weights
from tests.helpers.payloads import warmup_on_cpu
from tests.helpers.server import Server, start_server, stop_server
from tests.helpers.skips import unavailable
from tests.helpers.ui import DESKTOP, Zoo

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOW_TO_INSTALL = "install Debian's Chromium: `make browser` (as root: apt-get install -y --no-install-recommends chromium)"
WAIT_MS = 30_000  # a warm-up of the tiny networks below takes a few seconds


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing; {HOW_TO_INSTALL}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _seed(server: Server) -> None:
    """Two versions of tiny-gru (tagged), one tiny-brc on denoising, and uploaded lstm weights."""
    http = server.http
    jobs = [
        http.post("/v1/warmups", json=warmup_on_cpu("tiny-gru", steps=12)).json()["id"],
        http.post("/v1/warmups", json=warmup_on_cpu("tiny-gru", steps=20, seed=1)).json()["id"],
        http.post(
            "/v1/warmups",
            json=warmup_on_cpu(
                "tiny-brc",
                steps=15,
                spec={"cell": "brc", "input_size": 2, "hidden_size": 6},
                data={"task": "denoising", "seq_length": 16, "num_samples": 16},
            ),
        ).json()["id"],
    ]
    spec = tiny_spec(cell="lstm")
    uploaded = http.post(
        "/v1/models/uploaded-lstm/versions",
        data={"spec": spec.model_dump_json(), "description": "LSTM weights uploaded as they are."},
        files={"weights": ("w.safetensors", tiny_weights(spec))},
    )
    assert uploaded.status_code == 201, uploaded.text
    for job_id in jobs:
        assert server.wait_for(job_id, lambda job: job["status"] not in ("queued", "running"))["status"] == "succeeded"
    assert http.post("/v1/models/tiny-gru/tags", json={"tags": ["copy", "tiny"]}).status_code == 200


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Zoo]:
    server = start_server(tmp_path_factory.mktemp("ui-zoo"), WARMZOO_AUTH="off")  # a loopback zoo, as `make serve` runs
    try:
        _seed(server)
        yield Zoo(server, server.url)
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def warmed(browser: Browser, zoo: Zoo) -> None:
    """One load of the warm-up form before any test: the session's first page pays for
    Chromium's start and the server's first OpenAPI document, seconds that no test should
    count against its waits (the first test of one CI run timed out waiting for this form;
    eight runs since, under load too, did not)."""
    context = browser.new_context(base_url=zoo.url)
    tab = context.new_page()
    tab.goto("/#/submit")
    tab.get_by_label("Model name").wait_for(timeout=4 * WAIT_MS)
    context.close()


@pytest.fixture
def page(browser: Browser, zoo: Zoo, warmed: None) -> Iterator[Page]:
    """A desktop-sized page on the zoo; a script error, a missing asset or a server error fails the test
    (4xx answers other than 404 are the API refusing bad input, which some tests ask for)."""
    context = browser.new_context(base_url=zoo.url, viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    tab.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status == 404 or r.status >= 500 else None)
    yield tab
    context.close()
    assert not problems, problems
