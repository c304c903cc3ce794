"""Portal in a real browser: an end user signed in on tenant A's host reaches nothing of tenant B."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.test import override_settings
from django_tenants.utils import tenant_context
from playwright.sync_api import Browser, BrowserContext, Page, expect

from conftest import PASSWORD, actor_in
from modules.incidents.models import Incident
from modules.records.models import Comment
from modules.records.services import attachment_add

from .helpers import Site, screenshot, sign_in

FETCH = "async url => { const r = await fetch(url); return [r.status, await r.text()]; }"
GLOBEX_TEXTS = ("VPN drops", "payroll export", "vpn-log")


@pytest.fixture
def media(tmp_path: Path) -> Iterator[Path]:
    with override_settings(MEDIA_ROOT=tmp_path):  # process-wide: the live server's threads see it too
        yield tmp_path


def assert_shows_nothing_of_globex(page: Page) -> None:
    text = page.locator("body").inner_text()
    for secret in GLOBEX_TEXTS:
        assert secret not in text, f"{page.url} shows Globex's {secret!r}"


def test_end_user_of_a_cannot_reach_b(
    site: Site, browser_context: BrowserContext, chromium: Browser, media: Path
) -> None:
    scenario = "portal-isolation"
    globex = site.tenants["globex"]
    with tenant_context(globex):
        payroll = Incident.objects.get(number=site.incidents["globex"][1])
        bob = actor_in(globex, site.users["bob"], role="end_user")
        attachment = attachment_add(
            actor=bob,
            record_type="incident",
            record_id=payroll.pk,
            upload=ContentFile(b"vpn-log: tunnel down at 09:00\n", name="vpn-log.txt"),
        )
    acme_number = site.incidents["acme"][0]
    globex_only_number = site.incidents["globex"][1]  # Acme has no incident with this number
    assert globex_only_number not in site.incidents["acme"]

    page = browser_context.new_page()
    sign_in(page, site.portal("acme"), site.users["alice"].email, PASSWORD)
    page.goto(site.portal("acme", "/"))
    expect(page.locator("main")).to_contain_text("printer on floor 2")
    screenshot(page, scenario, "acme-portal-home")
    page.goto(site.portal("acme", f"/incidents/{acme_number}/"))
    expect(page.locator("main")).to_contain_text("printer on floor 2")
    screenshot(page, scenario, "acme-portal-incident")

    # B's host: the session cookie is host-only, so she is signed out there and sees the sign-in page.
    page.goto(site.portal("globex", "/"))
    expect(page).to_have_url(re.compile(r"^http://globex\.localhost:\d+/accounts/login/"))
    expect(page.locator("input[name=password]")).to_be_visible()
    assert_shows_nothing_of_globex(page)
    assert "printer on floor 2" not in page.locator("body").inner_text()
    screenshot(page, scenario, "globex-portal-signed-out")
    response = page.goto(site.portal("globex", f"/incidents/{globex_only_number}/"))
    assert response is not None and "/accounts/login/" in page.url
    assert_shows_nothing_of_globex(page)

    # Signing in there with her own password is refused (no role in Globex): she stays signed out.
    page.goto(site.portal("globex", "/accounts/login/"))
    page.locator("input[name=login]").fill(site.users["alice"].email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").first.click()
    page.wait_for_load_state()
    expect(page.locator("input[name=password]")).to_be_visible()
    assert_shows_nothing_of_globex(page)
    screenshot(page, scenario, "globex-portal-sign-in-refused")
    page.goto(site.portal("globex", f"/incidents/{globex_only_number}/"))
    assert "/accounts/login/" in page.url
    assert_shows_nothing_of_globex(page)

    # Back on A's host: B's records by number and by id are 404, and so are the console's /t/ paths.
    for path in (
        f"/incidents/{globex_only_number}/",
        f"/attachments/{attachment.pk}/",
        "/t/globex/",
        f"/t/globex/incidents/{site.incidents['globex'][0]}/",
        "/t/acme/incidents/",  # the console URLs do not exist on a portal host at all
    ):
        response = page.goto(site.portal("acme", path))
        assert response is not None and response.status == 404, (path, response and response.status)
        assert_shows_nothing_of_globex(page)
    screenshot(page, scenario, "acme-portal-404")

    # The console host: signed in there, the end user still cannot enter Globex under /t/globex/.
    sign_in(page, site.console(), site.users["alice"].email, PASSWORD)
    for path in ("/t/globex/", f"/t/globex/incidents/{site.incidents['globex'][0]}/", "/t/globex/incidents/"):
        response = page.goto(site.console(path))
        assert response is not None and response.status == 404, (path, response and response.status)
        assert_shows_nothing_of_globex(page)
    posted = page.request.post(  # the console host is plain `localhost`: Playwright's client resolves it
        site.console(f"/t/globex/incidents/{globex_only_number}/comments/"), form={"body": "from alice"}
    )
    assert posted.status in (403, 404)

    # Nothing of hers was written into Globex.
    with tenant_context(globex):
        assert not Comment.objects.filter(body="from alice").exists()
    # Positive control: Globex's own end user gets the same attachment on Globex's host (fetched by the
    # page itself: Playwright's own request client does not resolve *.localhost, Chromium does).
    bob_context = chromium.new_context()
    try:
        bob_page = bob_context.new_page()
        sign_in(bob_page, site.portal("globex"), site.users["bob"].email, PASSWORD)
        status, body = bob_page.evaluate(FETCH, f"/attachments/{attachment.pk}/")
        assert status == 200 and "tunnel down" in body
        status, body = page.evaluate(FETCH, site.console(f"/t/globex/incidents/{globex_only_number}/"))
        assert status == 404 and "payroll" not in body
    finally:
        bob_context.close()
