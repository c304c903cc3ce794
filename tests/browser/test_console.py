"""Console in a real browser: one technician works two clients in two tabs; keyboard use of the
incident detail page."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import tenant_context
from playwright.sync_api import BrowserContext, Page, expect

from conftest import PASSWORD
from modules.incidents.models import Incident
from modules.records.models import Comment

from .helpers import Site, screenshot, sign_in, wait_until


def comment_form(page: Page) -> Any:
    """The detail page's comment form (found by its field name, which the view reads)."""
    return page.locator("form:has(textarea[name=body])").first


def action_form(page: Page) -> Any:
    return page.locator("form:has(select[name=action])").first


def post_comment(page: Page, body: str) -> None:
    form = comment_form(page)
    form.locator("textarea[name=body]").fill(body)
    form.locator("[type=submit], button:not([type])").first.click()


def apply_action(page: Page, action: str) -> None:
    """Choose ``action`` in the action form's select and submit, or press its own button when the page
    offers one button per action (``<button name=action value=...>``)."""
    button = page.locator(f"button[name=action][value={action}]")
    if button.count():
        button.first.click()
        return
    form = action_form(page)
    form.locator("select[name=action]").select_option(action)
    form.locator("[type=submit], button:not([type])").first.click()


def comments_in(site: Site, slug: str, number: str) -> list[str]:
    with tenant_context(site.tenants[slug]):
        incident = Incident.objects.get(number=number)
        return list(Comment.objects.filter(record_id=incident.pk).values_list("body", flat=True))


def state_in(site: Site, slug: str, number: str) -> str:
    with tenant_context(site.tenants[slug]):
        return str(Incident.objects.get(number=number).state)


def test_technician_works_two_clients_in_two_tabs(site: Site, browser_context: BrowserContext) -> None:
    scenario = "console-two-tabs"
    tab_a = browser_context.new_page()
    sign_in(tab_a, site.console(), site.users["tech"].email, PASSWORD)
    screenshot(tab_a, scenario, "provider-home")
    tab_a.goto(site.console("/queue/"))
    screenshot(tab_a, scenario, "queue")
    tab_a.goto(site.console("/t/acme/incidents/"))
    expect(tab_a.locator("main")).to_contain_text("printer on floor 2")
    screenshot(tab_a, scenario, "acme-incident-list")

    acme_number = site.incidents["acme"][0]
    globex_number = site.incidents["globex"][0]
    tab_a.goto(site.console(f"/t/acme/incidents/{acme_number}/"))
    tab_b = browser_context.new_page()  # same context: same session, second tab
    tab_b.goto(site.console(f"/t/globex/incidents/{globex_number}/"))
    expect(tab_a.locator("header")).to_contain_text("Acme Corp")
    expect(tab_b.locator("header")).to_contain_text("Globex")
    expect(tab_a.locator("main")).to_contain_text("printer on floor 2")
    expect(tab_b.locator("main")).to_contain_text("VPN drops")
    screenshot(tab_a, scenario, "acme-incident")
    screenshot(tab_b, scenario, "globex-incident")

    # Interleaved writes: tab A comments, tab B comments, then each applies an action. Tab A's page was
    # loaded before tab B opened Globex: nothing in the session may redirect its writes.
    post_comment(tab_a, "Acme tab: replaced the fuser unit")
    post_comment(tab_b, "Globex tab: VPN concentrator rebooted")
    expect(tab_a.locator("main")).to_contain_text("replaced the fuser unit")
    expect(tab_b.locator("main")).to_contain_text("VPN concentrator rebooted")
    apply_action(tab_b, "hold")  # no reason: the server refuses it, and nothing changes
    tab_b.wait_for_load_state()
    expect(tab_b.locator("header")).to_contain_text("Globex")
    assert state_in(site, "globex", globex_number) == "new"
    apply_action(tab_a, "start")
    assert wait_until(lambda: state_in(site, "acme", acme_number) == "in_progress")
    tab_b.reload()
    apply_action(tab_b, "start")
    assert wait_until(lambda: state_in(site, "globex", globex_number) == "in_progress")
    tab_a.reload()
    tab_b.reload()
    expect(tab_a.locator("header")).to_contain_text("Acme Corp")
    expect(tab_b.locator("header")).to_contain_text("Globex")
    screenshot(tab_a, scenario, "acme-after")
    screenshot(tab_b, scenario, "globex-after")

    # Each write is in its own tenant's schema and only there.
    assert comments_in(site, "acme", acme_number) == ["Acme tab: replaced the fuser unit"]
    assert comments_in(site, "globex", globex_number) == ["Globex tab: VPN concentrator rebooted"]
    assert state_in(site, "acme", acme_number) == "in_progress"
    assert state_in(site, "globex", globex_number) == "in_progress"
    assert state_in(site, "globex", site.incidents["globex"][1]) == "new"  # the other Globex incident
    with tenant_context(site.tenants["acme"]):
        assert not Comment.objects.filter(body__startswith="Globex").exists()
    with tenant_context(site.tenants["globex"]):
        assert not Comment.objects.filter(body__startswith="Acme").exists()


FOCUS_PROBE = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  return {
    tag: el.tagName.toLowerCase(),
    name: el.getAttribute('name') || '',
    text: (el.innerText || el.value || '').trim().slice(0, 40),
    formFields: el.form ? Array.from(el.form.elements).map(e => e.getAttribute('name') || '').join(' ') : '',
    outlineStyle: style.outlineStyle,
    outlineWidth: style.outlineWidth,
    boxShadow: style.boxShadow,
  };
}"""


def test_keyboard_reaches_incident_controls_with_visible_focus(
    site: Site, browser_context: BrowserContext
) -> None:
    page = browser_context.new_page()
    sign_in(page, site.console(), site.users["tech"].email, PASSWORD)
    number = site.incidents["acme"][0]
    page.goto(site.console(f"/t/acme/incidents/{number}/"))
    # Every panel in place before the walk starts (a loaded machine once ran the walk on a page whose
    # forms were not there yet, in a CI run of two suites side by side).
    page.wait_for_load_state("networkidle")
    page.locator("body").click(position={"x": 1, "y": 1})  # start the Tab order at the top of the page
    reached: list[dict[str, str]] = []  # every control Tab stops on, in order, until it wraps
    for _ in range(120):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS_PROBE)
        if focused is None:
            continue
        if reached and focused == reached[0]:
            break  # wrapped around
        reached.append(focused)
        if focused["name"] == "action":
            screenshot(page, "console-keyboard", "focus-on-action")
    names = {f["name"] for f in reached}
    assert {"action", "body"} <= names, f"Tab did not reach the action and comment fields: {reached}"
    buttons = [f for f in reached if f["tag"] == "button"]
    assert any(f["name"] == "action" or "action" in f["formFields"].split() for f in buttons), (
        "Tab did not reach a button of the action form"
    )
    assert any("body" in f["formFields"].split() for f in buttons), "Tab did not reach the comment's button"
    invisible = [
        f
        for f in reached
        if (f["outlineStyle"] == "none" or f["outlineWidth"] == "0px") and f["boxShadow"] == "none"
    ]
    assert not invisible, f"focus is not visible on: {invisible}"
