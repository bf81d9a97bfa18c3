"""The portal in a real browser: Chromium (Debian's, /usr/bin/chromium) driven by Playwright
against pytest-django's live server.

A client user signs in through the real login form, opens the dashboard at desktop (1280x800) and
phone (375x812) sizes, and sees the published cards and a drawn chart; the phone layout has no
horizontal scrolling; tabbing through the page shows a focus ring. Screenshots go to
test-artifacts/ (gitignored) for a person to look at.

Playwright's browser download (`playwright install`) is never used: the system Chromium is
launched by path, without network features. The test skips (with the reason) only when Chromium
or the playwright package is missing; .ci/run installs both, so CI runs it.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from leads.rollups import rollups_refresh
from portal import services
from portal.services import client_user_create
from tests import factories
from tests.portal.helpers import clean_lead, publish

CHROMIUM = "/usr/bin/chromium"
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
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EMAIL, PASSWORD = "owner@browser-plumbing.example", "pw-test-123456"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[dev]')"
)
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def allow_sync_orm_in_event_loop(monkeypatch):
    """Playwright's sync API runs an asyncio event loop in this thread, so Django would refuse ORM
    calls made here (SynchronousOnlyOperation) although nothing async touches them: the test's own
    setup and asserts run between browser calls, and the live server answers on its own thread.
    Scoped to these tests (monkeypatch), never set for the rest of the suite."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def published_dashboard(db):
    """A client with leads over the last ten days and its published metric cards."""
    client = factories.ClientFactory(name="Browser Plumbing", slug="browser-plumbing", time_zone="America/Chicago")
    staff = factories.DataOpsUserFactory()
    end = datetime.date.today() - datetime.timedelta(days=1)
    start = end - datetime.timedelta(days=9)
    for n in range(12):
        lead = clean_lead(client, start + datetime.timedelta(days=n % 10))
        if n % 3 == 0:
            lead.status = "booked"
            lead.first_response_seconds = 60 * (5 + n)
            lead.save(update_fields=["status", "first_response_seconds"])
    # The trend charts read the daily rollups (the beat refreshes them every minute in production).
    rollups_refresh(client=client)
    cards = services.metric_cards_compute(client=client, period_start=start, period_end=end, actor=staff)
    for card in cards:
        publish(card, staff, override_reason="browser test data")
    client_user_create(client=client, email=EMAIL, password=PASSWORD, actor="system:test")
    return cards


def _launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def _dashboard_checks(page, cards, name: str) -> None:
    metrics = page.locator("article.metric")
    metrics.first.wait_for(state="visible")
    assert metrics.count() == len(cards)
    for card in cards:
        assert page.get_by_role("heading", name=card.metric_label).first.is_visible()
    # charts.js draws into the figure once Chart.js has loaded (both served locally).
    canvas = page.locator("figure.chart canvas").first
    canvas.wait_for(state="visible")
    box = canvas.bounding_box()
    assert box and box["width"] > 50 and box["height"] > 50, f"chart canvas not drawn: {box}"
    page.screenshot(path=str(ARTIFACTS / f"portal-dashboard-{name}.png"), full_page=True)


def test_dashboard_in_chromium_at_desktop_and_phone_sizes(
    live_server, published_dashboard, allow_sync_orm_in_event_loop
):
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            desktop = browser.new_context(viewport={"width": 1280, "height": 800})
            page = desktop.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # Signing in through the real form.
            page.goto(f"{live_server.url}/portal/login/")
            page.get_by_label("Email").fill(EMAIL)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{live_server.url}/portal/")
            _dashboard_checks(page, published_dashboard, "desktop")

            # Keyboard: every stop of the first tabs shows a visible focus indicator.
            rings = []
            for _ in range(4):
                page.keyboard.press("Tab")
                rings.append(
                    page.evaluate(
                        """() => {
                        const el = document.activeElement;
                        if (!el || el === document.body) return null;
                        const s = getComputedStyle(el);
                        const outline = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0;
                        return {tag: el.tagName, text: (el.textContent || "").trim().slice(0, 40),
                                ring: outline || s.boxShadow !== "none"};
                    }"""
                    )
                )
            assert rings[0] is not None, "Tab does not reach anything on the dashboard"
            without = [r for r in rings if r and not r["ring"]]
            assert not without, f"focused without a visible focus ring: {without}"
            page.screenshot(path=str(ARTIFACTS / "portal-dashboard-keyboard-focus.png"))

            # Phone: same session, 375 px wide, nothing wider than the screen.
            phone = browser.new_context(
                viewport={"width": 375, "height": 812}, storage_state=desktop.storage_state(), is_mobile=True
            )
            mobile = phone.new_page()
            mobile.on("pageerror", lambda exc: errors.append(str(exc)))
            mobile.goto(f"{live_server.url}/portal/")
            _dashboard_checks(mobile, published_dashboard, "phone")
            width = mobile.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"horizontal overflow at 375 px: the page is {width} px wide"
        finally:
            browser.close()
    assert not errors, f"JavaScript errors on the dashboard: {errors}"
