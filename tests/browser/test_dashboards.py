"""Dashboards in a real browser: the tenant dashboard and the cross-client one draw their SVG charts with
accessible names, the period (and client) filter swaps the numbers in place through htmx with the URL
following, and each chart's CSV link downloads the chart's numbers under the right header row."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context
from playwright.sync_api import BrowserContext, Page, expect

from conftest import PASSWORD
from controlplane.workindex.services import workindex_local_day, workindex_rollup_add

from .helpers import Site, screenshot, sign_in

MARK = "window.__dashMarker = 'kept'"
MARKED = "() => window.__dashMarker === 'kept'"
OLD_OPENED = 100  # Acme's incidents opened 40 days ago: inside the 90-day period, outside the 30-day one
# The charts of every dashboard (controlplane.dashboards.selectors.dashboard_get), by title.
CHARTS = (
    "Volume by day",
    "SLA compliance",
    "Mean time to acknowledge and to resolve",
    "Satisfaction",
    "Backlog age",
    "Top categories",
)


@pytest.fixture
def history(site: Site) -> None:
    """Acme's rollup gets OLD_OPENED incidents opened 40 (Acme-local) days ago, through the work index's
    rollup service (the count a day's incidents leave; the services only write today's)."""
    acme = site.tenants["acme"]
    with tenant_context(acme):
        day = workindex_local_day(timezone.now()) - dt.timedelta(days=40)
        workindex_rollup_add(record_type="incident", day=day, opened=OLD_OPENED)


SVG_PROBE = """() => Array.from(document.querySelectorAll('#dashboard-body svg')).map(svg => {
  const ids = (svg.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean);
  const named = ids.map(id => document.getElementById(id));
  return {
    role: svg.getAttribute('role'),
    labelledBy: named.map(el => el ? el.tagName.toLowerCase() : null),
    title: named[0] ? named[0].textContent : '',
    desc: named[1] ? named[1].textContent : '',
    ownTitle: svg.querySelector(':scope > title') === named[0],
    heading: svg.closest('section').querySelector('h2').textContent,
  };
})"""


def expect_charts(page: Page) -> None:
    """Six SVG charts, each ``role="img"`` named by its own ``<title>`` and described by its ``<desc>``
    (both non-empty), the title equal to the chart's heading; and each reachable by that accessible name."""
    charts = page.evaluate(SVG_PROBE)
    assert [c["title"] for c in charts] == list(CHARTS)
    for chart in charts:
        assert chart["role"] == "img" and chart["labelledBy"] == ["title", "desc"], chart
        assert chart["ownTitle"] and chart["desc"].strip() and chart["heading"] == chart["title"], chart
    for title in CHARTS:
        expect(page.get_by_role("img", name=re.compile(f"^{re.escape(title)} "))).to_be_visible()


def summary(page: Page, term: str) -> str:
    """The headline number under ``term`` (``Opened``, ``Open backlog``)."""
    return (
        page.locator(".dashboard-summary div", has=page.locator("dt", has_text=re.compile(f"^{term}$")))
        .locator("dd")
        .inner_text()
        .strip()
    )


def download_csv(page: Page, title: str) -> tuple[str, list[list[str]]]:
    """Click the CSV link of the chart ``title``; the suggested file name and the parsed rows."""
    with page.expect_download() as event:
        # The title is in a visually hidden span: an absolutely positioned box, which name computation
        # treats as a block (so "CSV : title", with a space before the colon).
        page.get_by_role("link", name=re.compile(rf"^CSV\s*: {re.escape(title)}$")).click()
    download = event.value
    path = download.path()
    assert path is not None and download.failure() is None
    with open(path, encoding="utf-8", newline="") as handle:
        return download.suggested_filename, list(csv.reader(io.StringIO(handle.read())))


def show_period(page: Page, days: int) -> None:
    """Choose the period and press Show (the filter form; htmx swaps the numbers in)."""
    form = page.get_by_role("form", name="Dashboard filters")
    form.get_by_label("Period").select_option(str(days))
    with page.expect_request(lambda r: f"days={days}" in r.url) as sent:
        form.get_by_role("button", name="Show").click()
    assert sent.value.headers.get("hx-request") == "true" and not sent.value.is_navigation_request()
    expect(page.locator("#dashboard-body")).to_contain_text(f"({days} days")


def test_tenant_dashboard_charts_period_and_csv(
    site: Site, history: None, browser_context: BrowserContext
) -> None:
    scenario = "dashboard-tenant"
    page = browser_context.new_page()
    sign_in(page, site.console(), site.users["tech"].email, PASSWORD)
    page.goto(site.console("/t/acme/dashboard/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard: Acme Corp")
    expect_charts(page)
    assert summary(page, "Opened") == "1"  # site's one Acme incident, opened today
    assert summary(page, "Open backlog") == "1"
    screenshot(page, scenario, "30-days")

    page.evaluate(MARK)
    show_period(page, 90)
    expect(page).to_have_url(re.compile(r"/t/acme/dashboard/\?days=90$"))
    assert summary(page, "Opened") == str(1 + OLD_OPENED)
    assert page.evaluate(MARKED), "the period reloaded the page instead of swapping the charts"
    expect_charts(page)
    screenshot(page, scenario, "90-days")

    # The CSV follows the period shown: 90 days, one row a day, the same total.
    name, rows = download_csv(page, "Volume by day")
    assert re.fullmatch(r"acme-volume-\d{8}-\d{8}\.csv", name)
    assert rows[0] == ["day", "opened", "resolved"]
    assert len(rows) == 1 + 90
    assert sum(int(r[1]) for r in rows[1:]) == 1 + OLD_OPENED
    name, rows = download_csv(page, "SLA compliance")
    assert rows[0] == ["record_type", "met", "breached", "compliance_percent"]
    assert rows[-1][0] == "All"

    # Back to 30 days: the URL is the filter alone again (it does not pile up the earlier queries).
    show_period(page, 30)
    expect(page).to_have_url(re.compile(r"/t/acme/dashboard/\?days=30$"))
    assert summary(page, "Opened") == "1"

    # Back: the 90-day numbers, and the period control says 90 days again.
    page.go_back()
    expect(page).to_have_url(re.compile(r"/t/acme/dashboard/\?days=90$"))
    expect(page.locator("#dashboard-body")).to_contain_text("(90 days")
    assert summary(page, "Opened") == str(1 + OLD_OPENED)
    expect(page.get_by_label("Period")).to_have_value("90")
    assert page.evaluate(MARKED), "the period or Back reloaded the page"


def test_cross_client_dashboard_charts_filters_and_csv(
    site: Site, history: None, browser_context: BrowserContext
) -> None:
    scenario = "dashboard-cross-client"
    page = browser_context.new_page()
    sign_in(page, site.console(), site.users["tech"].email, PASSWORD)
    page.goto(site.console("/dashboard/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard: all clients")
    expect_charts(page)
    assert summary(page, "Open backlog") == "3"  # Acme's one incident and Globex's two
    screenshot(page, scenario, "all-clients-30-days")

    page.evaluate(MARK)
    form = page.get_by_role("form", name="Dashboard filters")
    form.get_by_label("Client").select_option(label="Globex")
    show_period(page, 90)
    expect(page).to_have_url(re.compile(r"/dashboard/\?days=90&client=globex$"))
    assert summary(page, "Open backlog") == "2"
    assert summary(page, "Opened") == "2"  # Acme's old incidents are not Globex's
    assert page.evaluate(MARKED), "the filter reloaded the page instead of swapping the charts"
    expect_charts(page)
    screenshot(page, scenario, "globex-90-days")

    name, rows = download_csv(page, "SLA compliance")
    assert re.fullmatch(r"globex-sla-\d{8}-\d{8}\.csv", name)
    assert rows[0] == ["client", "met", "breached", "compliance_percent"]
    assert [r[0] for r in rows[1:]] == ["Globex", "All"]
    name, rows = download_csv(page, "Backlog age")
    assert rows[0] == ["age", "open_records"]
    assert sum(int(r[1]) for r in rows[1:]) == 2

    form.get_by_label("Client").select_option(label="All clients")
    show_period(page, 90)
    expect(page).to_have_url(re.compile(r"/dashboard/\?days=90&client=$"))
    assert summary(page, "Opened") == str(3 + OLD_OPENED)
    name, rows = download_csv(page, "SLA compliance")
    assert name.startswith("all-clients-sla-")
    assert [r[0] for r in rows[1:]] == ["Acme Corp", "Globex", "All"]
