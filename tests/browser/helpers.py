"""Helpers for the browser tests: sign in through the real sign-in page, full-page screenshots under
tests/artifacts/, the live server's host names, and waiting for a write to land.

A new scenario is a test function taking ``site`` (the live server and its committed data, see
conftest.py) and ``browser_context`` (a fresh Chromium context: its own cookies), for example::

    def test_something(site: Site, browser_context: BrowserContext) -> None:
        page = browser_context.new_page()
        sign_in(page, site.portal("acme"), site.alice.email, PASSWORD)
        page.goto(site.portal("acme", "/"))
        screenshot(page, "something", "portal-home")
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, expect

from controlplane.accounts.models import User
from tenants.models import Tenant

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
# The live server binds to 127.0.0.1; Chromium resolves `localhost` and `*.localhost` to loopback itself.
CONSOLE_HOST = "localhost"


@dataclass
class Site:
    """The live server (one port for every host) and the committed data the scenarios share.

    ``console(path)`` is a URL on the console host (``localhost``: the tenant is in the path, /t/<slug>/);
    ``portal(slug, path)`` a URL on tenant ``slug``'s portal host (``<slug>.localhost``, its Domain row).
    """

    port: int
    tenants: dict[str, Tenant]
    users: dict[str, User]
    # Incident numbers per tenant slug, in creation order.
    incidents: dict[str, list[str]] = field(default_factory=dict)

    def console(self, path: str = "/") -> str:
        return f"http://{CONSOLE_HOST}:{self.port}{path}"

    def portal(self, slug: str, path: str = "/") -> str:
        return f"http://{slug}.{CONSOLE_HOST}:{self.port}{path}"


def sign_in(page: Page, base_url: str, email: str, password: str) -> None:
    """Sign in through the real allauth sign-in page of the host of ``base_url`` (console or a portal).

    Fills the e-mail and password fields, submits, and waits until the browser has left the sign-in page.
    The session cookie is host-only: it signs in on that host alone.
    """
    page.goto(base_url.rstrip("/") + "/accounts/login/")
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill(password)
    page.locator("form:has(input[name=password]) [type=submit]").first.click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))


_steps: dict[str, int] = {}


def screenshot(page: Page, scenario: str, step: str) -> Path:
    """A full-page PNG at tests/artifacts/<scenario>/<nn>-<step>.png (nn counts the scenario's steps).

    The scenario's folder is emptied at its first screenshot of the run, so it holds this run's pictures.
    """
    folder = ARTIFACTS / scenario
    if scenario not in _steps:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        _steps[scenario] = 0
    _steps[scenario] += 1
    path = folder / f"{_steps[scenario]:02d}-{step}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_until(check: Callable[[], bool], seconds: float = 10) -> bool:
    """Poll ``check`` every 0.1 s until it is true or ``seconds`` pass; returns its last answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()
