"""Console record lists in a real browser: filtering, sorting and paging Acme's incident list through htmx
(the table is swapped in place and the URL follows), a saved view applied after a reload and deleted, and
the same filter, sort and paging with JavaScript off (plain GET forms and links)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django_tenants.utils import tenant_context
from playwright.sync_api import Browser, BrowserContext, Page, expect

from conftest import PASSWORD, actor_in
from modules.incidents.models import Incident
from modules.incidents.services import incident_create, incident_transition
from modules.records.models import SavedView

from .helpers import Site, screenshot, sign_in

LIST = "/t/acme/incidents/"
# Set before an action; still there after it only if the page was not reloaded (htmx swapped in place).
MARK = "window.__listMarker = 'kept'"
MARKED = "() => window.__listMarker === 'kept'"


@dataclass
class Queue:
    """Acme's incidents after ``queue``: every number (``site``'s first incident included) and, for the
    ones in progress, number -> priority (1 Critical .. 5 Planning, from the tenant's matrix)."""

    numbers: list[str]
    in_progress: dict[str, int]


@pytest.fixture
def queue(site: Site) -> Queue:
    """27 more committed Acme incidents (28 in all: two pages of 25), through the incident services, with
    impact and urgency varied so priorities differ; every fourth one started (In Progress, 7 of them)."""
    acme = site.tenants["acme"]
    with tenant_context(acme):
        tech = actor_in(acme, site.users["tech"])
        for i in range(27):
            incident = incident_create(
                actor=tech,
                short_description=f"Queue item {i:02d}",
                impact=1 + i % 3,
                urgency=1 + (i // 3) % 3,
            )
            if i % 4 == 0:
                incident_transition(actor=tech, incident=incident, action="start")
        numbers = list(Incident.objects.values_list("number", flat=True))
        in_progress = dict(
            Incident.objects.filter(state=Incident.State.IN_PROGRESS).values_list("number", "priority")
        )
    assert len(numbers) == 28 and len(in_progress) == 7
    return Queue(numbers=numbers, in_progress={str(k): int(v) for k, v in in_progress.items()})


@pytest.fixture
def no_js_context(chromium: Browser, site: Site) -> Iterator[BrowserContext]:
    """A second context with JavaScript disabled (its own cookies); closed before the data goes."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    context.set_default_timeout(10_000)
    yield context
    context.close()


def rows(page: Page) -> list[dict[str, str]]:
    """The list's rows as the reader sees them: number, priority label and state label (read through
    locators, which work with JavaScript off too)."""
    body = page.locator("#incident-table tbody")
    if body.locator("td[colspan]").count():
        return []  # "No incidents match."
    numbers, priorities, states = (
        [text.strip() for text in body.locator(f"tr > td:nth-child({n})").all_inner_texts()]
        for n in (1, 4, 5)
    )
    return [
        {"number": number, "priority": priority, "state": state}
        for number, priority, state in zip(numbers, priorities, states, strict=True)
    ]


def shown(first: int, last: int) -> str:
    """The pager's "Rows 1 to 25" text, written with an en dash between the positions."""
    return f"Rows {first}\u2013{last}"


def priority_of(label: str) -> int:
    """``"2 - High"`` -> 2."""
    return int(label.split(" ", 1)[0])


def expect_in_progress_by_priority(
    page: Page, queue: Queue, *, descending: bool, priorities: set[int] | None = None
) -> None:
    """The table shows exactly the incidents in progress (of ``priorities`` only, if given), by priority
    (ties by id, so by creation). Waits for that many rows first (a swap may still be on its way)."""
    expected = {n for n, p in queue.in_progress.items() if priorities is None or p in priorities}
    expect(page.locator("#incident-table tbody tr")).to_have_count(len(expected))
    shown = rows(page)
    assert {r["number"] for r in shown} == expected
    assert {r["state"] for r in shown} == {"In Progress"}
    order = [priority_of(r["priority"]) for r in shown]
    assert order == sorted(order, reverse=descending)
    assert order == [queue.in_progress[r["number"]] for r in shown]


def acme_saved_views(site: Site) -> list[tuple[str, str]]:
    """Every saved view's (name, query) in Acme."""
    with tenant_context(site.tenants["acme"]):
        return [(str(n), str(q)) for n, q in SavedView.objects.values_list("name", "query")]


def test_filter_sort_and_saved_view_through_htmx(
    site: Site, queue: Queue, browser_context: BrowserContext
) -> None:
    scenario = "console-list-htmx"
    page = browser_context.new_page()
    sign_in(page, site.console(), site.users["tech"].email, PASSWORD)
    page.goto(site.console(LIST))
    assert len(rows(page)) == 28
    page.evaluate(MARK)

    # A filter: choosing a state swaps the table in place and puts the filter in the URL.
    with page.expect_request(lambda r: "state=in_progress" in r.url) as sent:
        page.locator("#id_state").select_option(["in_progress"])
    assert sent.value.headers.get("hx-request") == "true" and not sent.value.is_navigation_request()
    expect(page).to_have_url(re.compile(r"[?&]state=in_progress(&|$)"))
    expect(page.locator("#incident-table tbody tr")).to_have_count(7)
    assert page.evaluate(MARKED), "the filter reloaded the page instead of swapping the table"
    assert {r["state"] for r in rows(page)} == {"In Progress"}
    screenshot(page, scenario, "filtered-in-progress")

    # Sorting by a column header keeps the filter, says so in aria-sort, and swaps in place too.
    priority_header = page.locator("#incident-table thead th", has_text="Priority")
    priority_header.get_by_role("link").click()
    expect(priority_header).to_have_attribute("aria-sort", "ascending")
    expect(page).to_have_url(re.compile(r"[?&]sort=priority(&|$)"))
    expect(page).to_have_url(re.compile(r"[?&]state=in_progress(&|$)"))
    expect_in_progress_by_priority(page, queue, descending=False)
    priority_header.get_by_role("link").click()
    expect(priority_header).to_have_attribute("aria-sort", "descending")
    expect(page).to_have_url(re.compile(r"[?&]sort=-priority(&|$)"))
    expect_in_progress_by_priority(page, queue, descending=True)
    assert page.evaluate(MARKED), "sorting reloaded the page instead of swapping the table"
    screenshot(page, scenario, "sorted-by-priority-descending")

    # A second filter narrows the first and keeps the sort in force (the form carries it).
    assert {3, 4} <= set(queue.in_progress.values()) < {1, 2, 3, 4, 5}, "the data no longer tells them apart"
    page.locator("#id_priority").select_option(["3", "4"])
    expect_in_progress_by_priority(page, queue, descending=True, priorities={3, 4})
    expect(page).to_have_url(re.compile(r"[?&]priority=3&priority=4(&|$)"))
    expect(page).to_have_url(re.compile(r"[?&]sort=-priority(&|$)"))
    assert page.evaluate(MARKED)

    # Back and Forward: htmx restores the list of each URL, rows and filter form alike (the form must
    # agree with the table, or the next change would drop a filter the table shows).
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"priority=3"))
    expect_in_progress_by_priority(page, queue, descending=True)
    expect(page.locator("#id_priority")).to_have_values([])
    expect(page.locator("#id_state")).to_have_values(["in_progress"])
    page.go_forward()
    expect_in_progress_by_priority(page, queue, descending=True, priorities={3, 4})
    expect(page.locator("#id_priority")).to_have_values(["3", "4"])
    expect(page.locator("#id_state")).to_have_values(["in_progress"])
    assert page.evaluate(MARKED), "Back or Forward reloaded the page"

    # Save it as a view (a plain POST), then come back to the bare list and apply the view.
    page.locator("#incident-table-save-name").fill("In progress by priority")
    page.get_by_role("button", name="Save this view").click()
    expect(page.get_by_role("list", name="Saved views")).to_contain_text("In progress by priority")
    saved = acme_saved_views(site)
    assert [name for name, _ in saved] == ["In progress by priority"]
    query = saved[0][1]
    assert "state=in_progress" in query and "priority=3&priority=4" in query and "sort=-priority" in query
    page.goto(site.console(LIST))
    page.reload()
    expect(page.locator("#incident-table tbody tr")).to_have_count(28)
    page.locator("#incident-table-view").select_option(label="In progress by priority")
    page.locator("form:has(#incident-table-view)").get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"[?&]state=in_progress(&|$)"))
    expect(page).to_have_url(re.compile(r"[?&]sort=-priority(&|$)"))
    expect(page.locator("#id_state")).to_have_values(["in_progress"])
    expect(page.locator("#id_priority")).to_have_values(["3", "4"])
    expect(priority_header).to_have_attribute("aria-sort", "descending")
    expect_in_progress_by_priority(page, queue, descending=True, priorities={3, 4})
    screenshot(page, scenario, "saved-view-applied")

    # Delete it: gone from the page and from the database.
    page.get_by_role("button", name="Delete the view In progress by priority").click()
    expect(page.get_by_role("list", name="Saved views")).to_have_count(0)
    expect(page.locator("#incident-table-view")).to_have_count(0)
    assert acme_saved_views(site) == []
    screenshot(page, scenario, "saved-view-deleted")


def test_next_page_through_htmx(site: Site, queue: Queue, browser_context: BrowserContext) -> None:
    scenario = "console-list-pages"
    page = browser_context.new_page()
    sign_in(page, site.console(), site.users["tech"].email, PASSWORD)
    page.goto(site.console(LIST))
    pager = page.get_by_role("navigation", name="Pages")
    expect(pager).to_contain_text(shown(1, 28))
    expect(pager.locator("a[rel=next]")).to_have_count(0)
    page.evaluate(MARK)

    pager.get_by_role("link", name="25", exact=True).click()
    expect(page).to_have_url(re.compile(r"[?&]size=25(&|$)"))
    expect(pager).to_contain_text(shown(1, 25))
    first = [r["number"] for r in rows(page)]
    pager.locator("a[rel=next]").click()
    expect(page).to_have_url(re.compile(r"[?&]page=2(&|$)"))
    expect(pager).to_contain_text(shown(26, 28))
    expect(pager).to_contain_text("Page 2")
    second = [r["number"] for r in rows(page)]
    assert page.evaluate(MARKED), "paging reloaded the page instead of swapping the table"
    assert len(first) == 25 and len(second) == 3
    assert sorted(first + second) == sorted(queue.numbers)  # no row repeated or skipped
    expect(pager.locator("a[rel=next]")).to_have_count(0)
    screenshot(page, scenario, "page-2")

    pager.locator("a[rel=prev]").click()
    expect(pager).to_contain_text(shown(1, 25))
    assert [r["number"] for r in rows(page)] == first
    assert page.evaluate(MARKED)
    # The pushed URL is a bookmark: loading it whole shows the same page.
    page.goto(site.console(f"{LIST}?sort=-opened&size=25&page=2"))
    assert [r["number"] for r in rows(page)] == second


def test_filter_sort_and_pages_without_javascript(
    site: Site, queue: Queue, no_js_context: BrowserContext
) -> None:
    scenario = "console-list-no-js"
    page = no_js_context.new_page()
    sign_in(page, site.console(), site.users["tech"].email, PASSWORD)
    page.goto(site.console(LIST))
    assert len(rows(page)) == 28

    # The filter form's own button: a plain GET of the whole page (a navigation, no htmx header), which
    # also carries the sort and page size in force.
    page.locator("#id_state").select_option(["in_progress"])
    with page.expect_request(lambda r: "state=in_progress" in r.url) as sent:
        page.get_by_role("button", name="Filter").click()
    assert sent.value.is_navigation_request() and "hx-request" not in sent.value.headers
    expect(page).to_have_url(re.compile(r"[?&]state=in_progress(&|$)"))
    expect(page).to_have_url(re.compile(r"[?&]sort=-opened(&|$)"))
    expect(page.locator("#incident-table tbody tr")).to_have_count(7)
    assert {r["state"] for r in rows(page)} == {"In Progress"}
    expect(page.locator("#id_state")).to_have_values(["in_progress"])
    screenshot(page, scenario, "filtered-in-progress")

    # A sort header is a plain link, and keeps the filter.
    priority_header = page.locator("#incident-table thead th", has_text="Priority")
    with page.expect_request(lambda r: "sort=priority" in r.url) as sent:
        priority_header.get_by_role("link").click()
    assert sent.value.is_navigation_request() and "hx-request" not in sent.value.headers
    expect(priority_header).to_have_attribute("aria-sort", "ascending")
    expect(page).to_have_url(re.compile(r"[?&]state=in_progress(&|$)"))
    expect_in_progress_by_priority(page, queue, descending=False)
    screenshot(page, scenario, "sorted-by-priority")

    # Pages: 25 a page, then the next one.
    page.goto(site.console(LIST))
    pager = page.get_by_role("navigation", name="Pages")
    pager.get_by_role("link", name="25", exact=True).click()
    expect(pager).to_contain_text(shown(1, 25))
    first = [r["number"] for r in rows(page)]
    with page.expect_request(lambda r: "page=2" in r.url) as sent:
        pager.locator("a[rel=next]").click()
    assert sent.value.is_navigation_request() and "hx-request" not in sent.value.headers
    expect(pager).to_contain_text(shown(26, 28))
    second = [r["number"] for r in rows(page)]
    assert len(first) == 25 and len(second) == 3
    assert sorted(first + second) == sorted(queue.numbers)
    screenshot(page, scenario, "page-2")
