"""The portal's catalog, "my requests" and approvals in a real browser, on Acme's portal host.

- An end user orders the "Laptop" (``conftest.LAPTOP_SCHEMA``: "Why a developer laptop" is asked and
  required only for a developer laptop, an if/then of its JSON Schema), once with JavaScript (the field
  hides and shows; the browser asks for it, and a post that skips the browser's check is refused by the
  server) and once without (every field shows; the server enforces the condition; plain form posts).
  The request waits for Morgan (an Acme approver), who approves it with a comment on /approvals/; the
  requester's page then shows the approval decided and the request in progress.
- Isolation on these paths: on Acme's host nothing of Globex's catalog, requests or approvals shows,
  and a decision posted on a Globex approval id answers 404 and writes nothing.
"""

from __future__ import annotations

import re

import pytest
from django_tenants.utils import tenant_context
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Request, expect

from conftest import PASSWORD, actor_in
from modules.records.actor import Actor
from modules.records.models import ActivityEntry
from modules.requests.models import Approval, CatalogItem, ServiceRequest
from modules.requests.services import request_submit
from tenants.models import Tenant

from .conftest import Catalog
from .helpers import Site, screenshot, sign_in

JUSTIFICATION = "I build the firmware and need 64 GB of memory"
COMMENT = "Approved: the firmware team needs it"
GLOBEX_TEXTS = ("Globex VPN token", "Globex HQ", "Globex lab", "Globex access", "hardware token")
# A form post from the page itself (the session cookie and the CSRF token of the page's sign-out form):
# Playwright's own request client does not resolve *.localhost. Answers [status, body] after redirects.
POST = """async ([url, fields]) => {
  const body = new URLSearchParams(fields);
  body.set("csrfmiddlewaretoken", document.querySelector("input[name=csrfmiddlewaretoken]").value);
  const r = await fetch(url, {method: "POST", body});
  return [r.status, await r.text()];
}"""


def acme_writes(tenant: Tenant) -> tuple[int, int]:
    """What a refused order must leave unchanged: the number of requests and of activity entries."""
    with tenant_context(tenant):
        return ServiceRequest.objects.count(), ActivityEntry.objects.count()


def field_box(page: Page, name: str) -> Locator:
    """The box of order-form field ``var_<name>``: its label, control, help and error."""
    return page.locator(f".order-field[data-field=var_{name}]")


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_conditional_order_goes_through_approval(
    site: Site, catalog: Catalog, chromium: Browser, javascript: bool
) -> None:
    scenario = "portal-catalog-order" if javascript else "portal-catalog-order-no-js"
    acme = site.tenants["acme"]
    alice_context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=javascript
    )
    morgan_context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=javascript
    )
    try:
        for context in (alice_context, morgan_context):
            context.set_default_timeout(10_000)
        page = alice_context.new_page()
        item_url = site.portal("acme", f"/catalog/{catalog.laptop_id}/")
        order_posts: list[str] = []

        def record_post(request: Request) -> None:
            if request.method == "POST" and request.url == item_url:
                order_posts.append(request.url)

        page.on("request", record_post)
        sign_in(page, site.portal("acme"), site.users["alice"].email, PASSWORD)

        # The catalog lists the item; its link opens the order form.
        page.goto(site.portal("acme", "/catalog/"))
        expect(page.locator("main h2")).to_contain_text(["Hardware"])
        expect(page.locator("main")).to_contain_text("needs approval")
        screenshot(page, scenario, "catalog")
        page.get_by_role("link", name="Laptop").click()
        expect(page).to_have_url(item_url)
        justification, model = page.locator("#id_var_justification"), page.locator("#id_var_model")
        expect(page.get_by_label("Why a developer laptop")).to_have_count(1)  # labelled

        if javascript:
            # Hidden (and not posted) until the condition holds; then shown, marked and required.
            expect(field_box(page, "justification")).to_be_hidden()
            expect(justification).to_be_disabled()
            screenshot(page, scenario, "order-form")
            model.select_option("standard")
            expect(field_box(page, "justification")).to_be_hidden()
            model.select_option("developer")
            expect(field_box(page, "justification")).to_be_visible()
            expect(justification).to_be_enabled()
            expect(justification).to_have_attribute("required", "")
            expect(field_box(page, "justification").locator(".required-mark")).to_be_visible()
        else:
            # Every field shows; the conditional one carries no `required`: the server decides.
            for name in ("model", "reason", "justification"):
                expect(field_box(page, name)).to_be_visible()
            expect(justification).not_to_have_attribute("required", "")
            screenshot(page, scenario, "order-form")
            model.select_option("developer")
        page.get_by_label("Reason").fill("My laptop is five years old")
        screenshot(page, scenario, "order-filled-without-justification")

        before = acme_writes(acme)
        submit = page.get_by_role("button", name="Submit request")
        if javascript:
            # The browser refuses to send the form without the now required field ...
            submit.click()
            assert justification.evaluate("e => e.validity.valueMissing") is True
            expect(page).to_have_url(item_url)
            # ... and a post that skips the browser's check (as a script could) is refused by the server.
            page.locator("form.order-form").evaluate("f => { f.noValidate = true; }")
        submit.click()
        error = field_box(page, "justification").locator(".error")
        expect(error).to_be_visible()
        expect(error).not_to_be_empty()
        expect(justification).to_be_visible()
        expect(model).to_have_value("developer")  # the answers come back with the error
        screenshot(page, scenario, "order-refused-error-next-to-field")
        assert order_posts == [item_url], "one post only (with JavaScript: the one skipping its check)"
        assert acme_writes(acme) == before, "a refused order writes nothing"

        justification.fill(JUSTIFICATION)
        submit.click()
        expect(page).to_have_url(re.compile(r"/requests/REQ\d+/$"))
        number = page.url.rstrip("/").rsplit("/", 1)[1]
        expect(page.locator("main h1")).to_contain_text(number)
        expect(page.locator("main")).to_contain_text(JUSTIFICATION)
        expect(page.locator("main")).to_contain_text("Pending approval")
        screenshot(page, scenario, "request-submitted")
        with tenant_context(acme):
            request = ServiceRequest.objects.get(number=number)
            assert request.state == ServiceRequest.State.PENDING_APPROVAL
            ritm = request.items.get()
            assert ritm.catalog_item_id == catalog.laptop_id
            assert ritm.variables == {
                "model": "developer",
                "reason": "My laptop is five years old",
                "justification": JUSTIFICATION,
            }
            approval = request.approvals.select_related("approver").get()
            assert approval.state == Approval.State.PENDING
            assert approval.approver is not None and approval.approver.user_id == catalog.morgan.pk

        # "My requests": the request, pending approval.
        page.get_by_role("link", name="My requests", exact=True).click()
        row = page.locator("#records tbody tr", has_text=number)
        expect(row).to_contain_text("Laptop")
        expect(row).to_contain_text("Pending approval")
        screenshot(page, scenario, "my-requests-pending")

        # The approver, in a browser of their own, approves with a comment.
        approver = morgan_context.new_page()
        sign_in(approver, site.portal("acme"), catalog.morgan.email, PASSWORD)
        approver.goto(site.portal("acme", "/approvals/"))
        card = approver.locator("main section.card", has_text=number)
        expect(card).to_contain_text("Laptop")
        expect(card).to_contain_text(JUSTIFICATION)  # the answers, to decide on
        screenshot(approver, scenario, "approvals-waiting")
        card.get_by_label("Comment").fill(COMMENT)
        card.get_by_role("button", name="Approve").click()
        expect(approver).to_have_url(site.portal("acme", "/approvals/"))
        expect(approver.locator("main")).to_contain_text("Nothing is waiting for you.")
        decided = approver.locator("main table tbody tr", has_text=number)
        expect(decided).to_contain_text("Approved")
        expect(decided).to_contain_text(COMMENT)
        screenshot(approver, scenario, "approvals-decided")
        with tenant_context(acme):
            approval.refresh_from_db()
            request.refresh_from_db()
            assert approval.state == Approval.State.APPROVED and approval.comment == COMMENT
            assert approval.decided_by_id == approval.approver_id
            assert request.state == ServiceRequest.State.IN_PROGRESS

        # The requester sees the approval decided and the request moved on.
        page.goto(site.portal("acme", f"/requests/{number}/"))
        expect(page.locator("main p", has_text="State:")).to_contain_text("In progress")
        approvals = page.locator("section[aria-labelledby=approvals-h] tbody tr")
        expect(approvals).to_have_count(1)
        expect(approvals).to_contain_text("Approved")
        expect(approvals).to_contain_text(COMMENT)
        expect(page.locator("ol.timeline")).to_contain_text("In progress")
        screenshot(page, scenario, "request-approved")
        page.goto(site.portal("acme", "/requests/"))
        expect(page.locator("#records tbody tr", has_text=number)).to_contain_text("In progress")
    finally:
        alice_context.close()
        morgan_context.close()


def assert_shows_nothing_of_globex(page: Page) -> None:
    text = page.locator("body").inner_text()
    for secret in GLOBEX_TEXTS:
        assert secret not in text, f"{page.url} shows Globex's {secret!r}"


def test_catalog_requests_and_approvals_of_b_unreachable_on_a(
    site: Site, catalog: Catalog, browser_context: BrowserContext, chromium: Browser
) -> None:
    scenario = "portal-catalog-isolation"
    acme, globex = site.tenants["acme"], site.tenants["globex"]
    # Alice has one request of her own (REQ0000001, a number Globex uses too), waiting for Morgan.
    with tenant_context(acme):
        alice = actor_in(acme, site.users["alice"], role="end_user")
        own = request_submit(
            actor=Actor(user_id=alice.user_id, person=alice.person, role="end_user", source="portal"),
            items=[
                {
                    "catalog_item": CatalogItem.objects.get(pk=catalog.laptop_id),
                    "variables": {"model": "standard", "reason": "Acme: mine broke"},
                    "quantity": 1,
                }
            ],
        )
        own_approval = own.approvals.get()
    assert own.number == catalog.globex_requests[0]  # same number, other schema
    globex_only = catalog.globex_requests[1]
    with tenant_context(acme):
        assert not ServiceRequest.objects.filter(number=globex_only).exists()

    def writes() -> tuple[tuple[int, int, list[str]], tuple[int, int, list[str]]]:
        counts = []
        for tenant in (acme, globex):
            with tenant_context(tenant):
                states = list(Approval.objects.order_by("id").values_list("state", flat=True))
                counts.append((ActivityEntry.objects.count(), ServiceRequest.objects.count(), states))
        return counts[0], counts[1]

    before = writes()
    page = browser_context.new_page()
    sign_in(page, site.portal("acme"), site.users["alice"].email, PASSWORD)
    page.goto(site.portal("acme", "/catalog/"))
    expect(page.get_by_role("link", name="Laptop")).to_be_visible()
    assert_shows_nothing_of_globex(page)
    screenshot(page, scenario, "acme-catalog")
    page.goto(site.portal("acme", f"/requests/{own.number}/"))
    expect(page.locator("main")).to_contain_text("Acme: mine broke")  # Acme's own REQ0000001
    assert_shows_nothing_of_globex(page)
    page.goto(site.portal("acme", "/requests/"))
    expect(page.locator("#records tbody tr")).to_have_count(2)  # her incident and her request
    assert_shows_nothing_of_globex(page)
    for path in (f"/catalog/{catalog.globex_item_id}/", f"/requests/{globex_only}/"):
        response = page.goto(site.portal("acme", path))
        assert response is not None and response.status == 404, (path, response and response.status)
        assert_shows_nothing_of_globex(page)
    screenshot(page, scenario, "acme-404-for-globex-item")
    page.goto(site.portal("acme", "/approvals/"))
    expect(page.locator("main")).to_contain_text("Nothing is waiting for you.")
    assert_shows_nothing_of_globex(page)
    # Her decision on a Globex approval: 404 (and she holds no approver role anywhere).
    status, body = page.evaluate(
        POST,
        [
            f"/approvals/{catalog.globex_approvals[1]}/",
            {f"{catalog.globex_approvals[1]}-decision": "approve"},
        ],
    )
    assert status == 404 and "Globex" not in body

    # Morgan holds the role `approver` in Acme; Globex's approvals wait for Globex's role `approver`.
    morgan_context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        morgan_context.set_default_timeout(10_000)
        approver = morgan_context.new_page()
        sign_in(approver, site.portal("acme"), catalog.morgan.email, PASSWORD)
        approver.goto(site.portal("acme", "/approvals/"))
        cards = approver.locator("main section.card")
        expect(cards).to_have_count(1)  # Alice's laptop only
        expect(cards).to_contain_text(own.number)
        expect(cards).to_contain_text("Acme: mine broke")
        assert_shows_nothing_of_globex(approver)
        screenshot(approver, scenario, "acme-approvals-without-globex")
        for approval_id in catalog.globex_approvals:
            prefix = str(approval_id)
            status, body = approver.evaluate(
                POST,
                [
                    f"/approvals/{approval_id}/",
                    {f"{prefix}-decision": "approve", f"{prefix}-comment": "from acme"},
                ],
            )
            assert status == 404, status
            assert "Globex" not in body
        assert writes() == before, "a decision posted on another tenant's approval writes nothing"
        with tenant_context(globex):
            assert set(Approval.objects.values_list("state", "decided_by", "comment")) == {
                (Approval.State.PENDING, None, "")
            }
        # Positive control: the same post on his own approval is taken.
        prefix = str(own_approval.pk)
        status, _ = approver.evaluate(
            POST,
            [f"/approvals/{own_approval.pk}/", {f"{prefix}-decision": "approve", f"{prefix}-comment": "ok"}],
        )
        assert status == 200
        with tenant_context(acme):
            own_approval.refresh_from_db()
            assert own_approval.state == Approval.State.APPROVED
        approver.goto(site.portal("acme", "/approvals/"))
        expect(approver.locator("main table tbody tr")).to_have_count(1)
        assert_shows_nothing_of_globex(approver)
        screenshot(approver, scenario, "acme-approvals-decided")
    finally:
        morgan_context.close()
