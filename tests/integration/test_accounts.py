"""Sign-in, sign-out and password reset through django-allauth, on the console host and a portal host,
with mail delivered over real SMTP."""

from __future__ import annotations

import re

from django.test import Client

from conftest import PASSWORD
from controlplane.accounts.models import User
from tenants.models import Tenant
from tests.integration.conftest import Mailbox


def sign_in(client: Client, email: str, password: str) -> int:
    client.get("/accounts/login/")
    return client.post("/accounts/login/", {"login": email, "password": password}).status_code


def test_console_sign_in_and_out(tech_a: User) -> None:
    console = Client(HTTP_HOST="testserver")
    assert sign_in(console, tech_a.email, "wrong password") == 200
    assert "_auth_user_id" not in console.session
    assert sign_in(console, tech_a.email.upper(), PASSWORD) == 302  # emails are case-insensitive
    assert console.get("/").status_code == 200
    assert console.post("/accounts/logout/").status_code == 302
    assert console.get("/").status_code == 302  # back to sign-in


def test_portal_password_reset_over_smtp_links_to_the_portal_host(
    end_user_a: User, tenant_a: Tenant, smtp: Mailbox
) -> None:
    portal = Client(HTTP_HOST="acme.localhost")
    portal.get("/accounts/password/reset/")
    assert portal.post("/accounts/password/reset/", {"email": end_user_a.email}).status_code == 302

    assert len(smtp.messages) == 1
    assert smtp.messages[0]["To"] == end_user_a.email
    link = re.search(r"http://acme\.localhost/accounts/password/reset/key/\S+/", smtp.bodies()[0])
    assert link is not None, smtp.bodies()[0]
    path = link.group(0).removeprefix("http://acme.localhost")
    form = portal.get(path, follow=True)
    assert form.status_code == 200
    set_password_path = form.redirect_chain[-1][0] if form.redirect_chain else path
    done = portal.post(
        set_password_path, {"password1": "a-new-long-passphrase", "password2": "a-new-long-passphrase"}
    )
    assert done.status_code == 302

    assert sign_in(Client(HTTP_HOST="acme.localhost"), end_user_a.email, PASSWORD) == 200
    assert sign_in(Client(HTTP_HOST="acme.localhost"), end_user_a.email, "a-new-long-passphrase") == 302


def test_password_reset_for_an_unknown_email_sends_nothing_revealing(smtp: Mailbox, tenant_a: Tenant) -> None:
    portal = Client(HTTP_HOST="acme.localhost")
    portal.get("/accounts/password/reset/")
    assert portal.post("/accounts/password/reset/", {"email": "nobody@acme.example"}).status_code == 302
    assert all("reset/key" not in body for body in smtp.bodies())


def test_signup_is_closed(tenant_a: Tenant) -> None:
    before = User.objects.count()
    for host in ("testserver", "acme.localhost"):
        client = Client(HTTP_HOST=host)
        client.post(
            "/accounts/signup/",
            {"email": "x@example.com", "password1": "long-enough-pw-1", "password2": "long-enough-pw-1"},
        )
    assert User.objects.count() == before
