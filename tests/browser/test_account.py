"""Account pages in the browser: the portal's account page (branded) and "Sign out everywhere" ending
the sessions of another browser on the console; the lockout message on the sign-in page."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, BrowserContext, expect

from conftest import PASSWORD

from .helpers import Site, screenshot, sign_in


def test_sign_out_everywhere_from_the_portal_ends_the_console_session_too(
    site: Site, browser_context: BrowserContext, chromium: Browser
) -> None:
    alice = site.users["alice"]
    portal = browser_context.new_page()
    sign_in(portal, site.portal("acme"), alice.email, PASSWORD)
    other_browser = chromium.new_context()
    try:
        console = other_browser.new_page()
        sign_in(console, site.console(), alice.email, PASSWORD)
        console.goto(site.console("/me/profile/"))
        expect(console.locator("h1")).to_have_text("Profile")

        portal.get_by_role("link", name="Account").click()
        expect(portal.locator("h1")).to_have_text("Your account")
        expect(portal.get_by_role("cell", name="Signed in").first).to_be_visible()  # recent activity
        screenshot(portal, "account", "portal-account")
        portal.get_by_role("button", name="Sign out everywhere").click()
        expect(portal).to_have_url(re.compile(r"/accounts/login/"))
        expect(portal.get_by_text("You were signed out on every device and browser.")).to_be_visible()

        console.reload()
        expect(console).to_have_url(re.compile(r"/accounts/login/"))
    finally:
        other_browser.close()


def test_the_lockout_message_shows_on_the_sign_in_page(site: Site, browser_context: BrowserContext) -> None:
    page = browser_context.new_page()
    tech = site.users["tech"]
    for _ in range(10):
        page.goto(site.console("/accounts/login/"))
        page.locator("input[name=login]").fill(tech.email)
        page.locator("input[name=password]").fill("not-the-password")
        page.locator("form:has(input[name=password]) [type=submit]").first.click()
        expect(page.locator(".errorlist")).to_be_visible()
    page.locator("input[name=login]").fill(tech.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").first.click()
    expect(page.get_by_text("Too many failed sign-in attempts.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    screenshot(page, "account", "locked")
