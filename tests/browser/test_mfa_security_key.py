"""A security key (WebAuthn) as second factor, end to end in Chromium with its virtual authenticator
(Chrome DevTools Protocol ``WebAuthn`` domain: a real CTAP2 authenticator inside the browser, so the
server checks a real attestation and real assertions with fido2)."""

from __future__ import annotations

import re

from playwright.sync_api import BrowserContext, expect

from conftest import PASSWORD
from controlplane.accounts.models import SecurityEvent

from .helpers import Site, screenshot, sign_in


def test_a_security_key_is_added_then_asked_for_at_sign_in(
    site: Site, browser_context: BrowserContext
) -> None:
    page = browser_context.new_page()
    cdp = browser_context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    tech = site.users["tech"]
    sign_in(page, site.console(), tech.email, PASSWORD)

    page.goto(site.console("/accounts/2fa/webauthn/add/"))
    if "/accounts/reauthenticate/" in page.url:  # the password again before a security change
        page.locator("input[name=password]").fill(PASSWORD)
        page.locator("form:has(input[name=password]) [type=submit]").first.click()
        expect(page).to_have_url(re.compile(r"/accounts/2fa/webauthn/add/"))
    page.locator("input[name=name]").fill("Desk key")
    screenshot(page, "mfa-security-key", "add")
    page.locator("#mfa_webauthn_add").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/2fa/webauthn/add/"))
    assert SecurityEvent.objects.filter(verb="mfa.webauthn.added", user_id=tech.pk).count() == 1

    page.goto(site.console("/accounts/logout/"))
    page.locator("main form [type=submit]").first.click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.locator("input[name=login]").fill(tech.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").first.click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/"))
    screenshot(page, "mfa-security-key", "second-factor")
    page.locator("#mfa_webauthn_authenticate").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/"))
    page.goto(site.console("/me/profile/"))
    expect(page.locator("h1")).to_have_text("Profile")
    used = SecurityEvent.objects.get(verb="mfa.webauthn.used", user_id=tech.pk)
    assert used.ip == "127.0.0.1"
