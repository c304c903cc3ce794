"""Branding in a real browser: the MSP's technician sets Acme's portal branding in the console, and each
portal host then shows its own client's title, colours and logo (Globex keeps the defaults)."""

from __future__ import annotations

import re
from pathlib import Path

from django.test import override_settings
from playwright.sync_api import BrowserContext, Page, expect

from conftest import PASSWORD
from tenants.models import TenantBranding
from tenants.tests.factories import png

from .helpers import Site, screenshot, sign_in

HEADER_BACKGROUND = "() => getComputedStyle(document.querySelector('header')).backgroundColor"


def header_background(page: Page) -> str:
    return str(page.evaluate(HEADER_BACKGROUND))


def test_branding_set_in_the_console_differs_per_portal_host(
    site: Site, browser_context: BrowserContext, tmp_path: Path
) -> None:
    with override_settings(MEDIA_ROOT=tmp_path / "media"):  # process-wide: the live server sees it too
        branding_differs_per_host(site, browser_context, tmp_path)


def branding_differs_per_host(site: Site, browser_context: BrowserContext, tmp_path: Path) -> None:
    scenario = "portal-branding"
    logo = tmp_path / "acme-logo.png"
    logo.write_bytes(png(8, 4))
    console = browser_context.new_page()
    sign_in(console, site.console(), site.users["tech"].email, PASSWORD)
    console.goto(site.console("/t/acme/branding/"))
    console.get_by_label("Portal title").fill("Acme Help Centre")
    console.get_by_label("Welcome text").fill("Welcome to Acme's IT help.")
    console.get_by_label("Primary colour (header)").fill("#7a1f1f")
    console.get_by_label("Accent colour (buttons and links)").fill("#1d4f91")
    console.get_by_label("Logo", exact=True).set_input_files(str(logo))
    console.get_by_role("button", name="Save branding").click()
    expect(console.locator("main")).not_to_contain_text("contrast of")
    screenshot(console, scenario, "console-branding-saved")
    saved = TenantBranding.objects.get(tenant=site.tenants["acme"])
    assert (saved.portal_title, saved.primary_color, saved.accent_color) == (
        "Acme Help Centre",
        "#7a1f1f",
        "#1d4f91",
    )
    assert not TenantBranding.objects.filter(tenant=site.tenants["globex"], portal_title__gt="").exists()

    # A colour pair that fails WCAG AA is refused next to the field, and nothing changes.
    console.get_by_label("Primary colour (header)").fill("#ffff66")
    console.get_by_role("button", name="Save branding").click()
    expect(console.locator("main")).to_contain_text("contrast of")
    saved.refresh_from_db()
    assert saved.primary_color == "#7a1f1f"

    # Each portal host (signed out: the sign-in page is branded too, then signed in) shows its own client.
    acme, globex = browser_context.new_page(), browser_context.new_page()
    acme.goto(site.portal("acme", "/accounts/login/"))
    globex.goto(site.portal("globex", "/accounts/login/"))
    expect(acme).to_have_title(re.compile("Acme Help Centre"))
    expect(acme.locator("header")).to_contain_text("Acme Help Centre")
    assert header_background(acme) == "rgb(122, 31, 31)"
    logo_size = acme.evaluate(
        "() => { const i = document.querySelector('header img'); return i && i.naturalWidth; }"
    )
    assert logo_size == 8
    expect(globex.locator("header")).not_to_contain_text("Acme")
    assert header_background(globex) != header_background(acme)
    screenshot(acme, scenario, "acme-sign-in")
    screenshot(globex, scenario, "globex-sign-in")

    sign_in(acme, site.portal("acme"), site.users["alice"].email, PASSWORD)
    acme.goto(site.portal("acme", "/"))
    expect(acme.locator("main")).to_contain_text("Welcome to Acme's IT help.")
    screenshot(acme, scenario, "acme-home")
    sign_in(globex, site.portal("globex"), site.users["bob"].email, PASSWORD)
    globex.goto(site.portal("globex", "/"))
    expect(globex.locator("main")).not_to_contain_text("Welcome to Acme")
    expect(globex.locator("header img")).to_have_count(0)
    screenshot(globex, scenario, "globex-home")
