"""What the browser tests share besides their fixtures: the seeded zoo they run against and
the screenshots they leave in docs/screenshots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page

from tests.helpers.server import Server

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class Zoo:
    """The running server and what was published on it before the tests."""

    server: Server
    url: str


def shoot(page: Page, name: str, phone: bool = False) -> None:
    """docs/screenshots/NAME.png (the whole page), and NAME-phone.png at a phone's width, where
    the page must fit: nothing may stick out sideways (wide tables and code scroll in place)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    if phone:
        page.set_viewport_size(PHONE)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name}: the page is {width} px wide on a {PHONE['width']} px phone"
        page.screenshot(path=SCREENSHOTS / f"{name}-phone.png", full_page=True)
        page.set_viewport_size(DESKTOP)
