"""Two-factor authentication with allauth.mfa: TOTP set-up and sign-in end to end (codes computed by
pyotp, an independent RFC 6238 implementation), recovery codes, the provider's and the tenant's
requirement, and its enforcement on pages and on the API with session auth."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from django.test import Client

from conftest import PASSWORD, make_user
from controlplane.accounts.crypto import TOTP_SECRET, secret_unseal
from controlplane.accounts.models import SecurityEvent, User
from controlplane.accounts.services import (
    provider_mfa_requirement_set,
    tenant_membership_set,
    tenant_mfa_requirement_set,
)
from controlplane.problems import PermissionDenied
from controlplane.providers.models import Provider
from tenants.models import Tenant
from tests.integration.conftest import Mailbox

ACTIVATE = "/accounts/2fa/totp/activate/"
# allauth sends its MFA signals (our audit) and the notice email after commit: these tests commit.
COMMITS = pytest.mark.django_db(transaction=True)
AUTHENTICATE = "/accounts/2fa/authenticate/"


def sign_in(host: str, email: str, password: str = PASSWORD) -> tuple[Client, str]:
    """A browser that posted the password form on ``host``: the client and where it was sent."""
    client = Client(HTTP_HOST=host)
    client.get("/accounts/login/")
    response = client.post("/accounts/login/", {"login": email, "password": password})
    assert response.status_code == 302, response.content.decode()[:300]
    return client, response["Location"]


def code_for(secret: str) -> str:
    """The current code, never within a second of the 30-second step's end (so the server sees the
    same step)."""
    if time.time() % 30 > 29:
        time.sleep(1.2)
    return pyotp.TOTP(secret).now()


def activate_totp(client: Client) -> str:
    """Set up an authenticator app through allauth's page; returns the secret the app would scan."""
    page = client.get(ACTIVATE)
    if page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/"):
        # allauth asks for the password again before a security change (REAUTHENTICATION_REQUIRED).
        assert client.post(page["Location"], {"password": PASSWORD}).status_code == 302
        page = client.get(ACTIVATE)
    assert page.status_code == 200
    secret = client.session["mfa.totp.secret"]
    assert secret in page.content.decode()  # shown for typing into an app, next to the QR code
    wrong = client.post(ACTIVATE, {"code": "000000" if code_for(secret) != "000000" else "111111"})
    assert wrong.status_code == 200 and not Authenticator.objects.filter(type="totp").exists()
    response = client.post(ACTIVATE, {"code": code_for(secret)})
    assert response.status_code == 302, response.content.decode()[:500]
    return str(secret)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@COMMITS
def test_totp_set_up_then_sign_in_asks_for_the_code(tech_a: User, smtp: Mailbox) -> None:
    console, _ = sign_in("testserver", tech_a.email)
    profile = console.get("/me/profile/").content.decode()
    assert 'href="/accounts/2fa/"' in profile and "Two-factor authentication</a>: Off." in profile
    secret = activate_totp(console)
    profile = console.get("/me/profile/").content.decode()
    assert "Two-factor authentication</a>: On: authenticator app, recovery codes." in profile
    assert sorted(Authenticator.objects.filter(user=tech_a).values_list("type", flat=True)) == [
        "recovery_codes",
        "totp",
    ]
    stored = Authenticator.objects.get(user=tech_a, type="totp").data["secret"]
    assert secret not in stored and secret_unseal(stored, purpose=TOTP_SECRET) == secret  # encrypted at rest
    console.post("/accounts/logout/")

    browser, location = sign_in("testserver", tech_a.email)
    assert location == AUTHENTICATE and not signed_in(browser)
    assert browser.get("/me/profile/").status_code == 302  # nothing before the second factor
    refused = browser.post(AUTHENTICATE, {"code": "12345"}, REMOTE_ADDR="192.0.2.70")
    assert refused.status_code == 200 and not signed_in(browser)
    code = code_for(secret)
    assert browser.post(AUTHENTICATE, {"code": code}, REMOTE_ADDR="192.0.2.70").status_code == 302
    assert signed_in(browser)
    assert browser.get("/me/profile/").status_code == 200

    again, _ = sign_in("testserver", tech_a.email)  # the same code a second time is refused
    again.post(AUTHENTICATE, {"code": code})
    assert not signed_in(again)

    verbs = list(SecurityEvent.objects.filter(user_id=tech_a.pk).values_list("verb", flat=True))
    assert "mfa.totp.added" in verbs and "mfa.recovery_codes.added" in verbs
    assert [m["To"] for m in smtp.messages] == [tech_a.email]  # "an authenticator app was added"
    assert verbs.count("mfa.totp.used") == 1
    assert verbs.count("mfa.totp.failed") >= 1
    used = SecurityEvent.objects.get(verb="mfa.totp.used")
    assert used.ip == "192.0.2.70"


@COMMITS
def test_a_recovery_code_signs_in_once(end_user_a: User, smtp: Mailbox) -> None:
    portal, _ = sign_in("acme.localhost", end_user_a.email)
    activate_totp(portal)
    codes_page = portal.get("/accounts/2fa/recovery-codes/").content.decode()
    codes = re.findall(r"\b[0-9a-z]{8}\b", codes_page)
    recovery = Authenticator.objects.get(user=end_user_a, type="recovery_codes")
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    unused = RecoveryCodes(recovery).get_unused_codes()
    assert unused[0] in codes
    portal.post("/accounts/logout/")

    browser, location = sign_in("acme.localhost", end_user_a.email)
    assert location == AUTHENTICATE
    assert browser.post(AUTHENTICATE, {"code": unused[0]}).status_code == 302 and signed_in(browser)
    second, _ = sign_in("acme.localhost", end_user_a.email)
    second.post(AUTHENTICATE, {"code": unused[0]})
    assert not signed_in(second)


@COMMITS
def test_a_provider_requiring_mfa_sends_technicians_to_set_it_up_first(
    tech_a: User, provider: Provider, tenant_a: Tenant, smtp: Mailbox
) -> None:
    owner = make_user("owner@northwind.example")
    from controlplane.accounts.services import provider_membership_set

    provider_membership_set(user=owner, provider=provider, role="owner")
    tech, _ = sign_in("testserver", tech_a.email)
    assert tech.get("/t/acme/incidents/").status_code == 200

    admin_page, _ = sign_in("testserver", owner.email)
    # The owner sets it on the console page; they have no authenticator either, so they are sent too.
    assert admin_page.get("/provider/security/").status_code == 200
    saved = admin_page.post("/provider/security/", {"required": "on"}, REMOTE_ADDR="192.0.2.80")
    assert saved.status_code == 302
    provider.refresh_from_db()
    assert provider.require_mfa_for_technicians

    for path in ("/t/acme/incidents/", "/", "/me/profile/"):
        response = tech.get(path)
        assert response.status_code == 302 and response["Location"] == ACTIVATE, path
    htmx = tech.get("/t/acme/incidents/", HTTP_HX_REQUEST="true")
    assert (htmx.status_code, htmx["HX-Redirect"]) == (204, ACTIVATE)
    api = tech.get("/api/v1/t/acme/incidents/")
    assert api.status_code == 403 and api.json()["type"] == "/problems/mfa-required"
    setup = tech.get(ACTIVATE, follow=True)  # the set-up pages are open (password asked again first)
    assert setup.status_code == 200 and setup.redirect_chain[-1][0].startswith("/accounts/reauthenticate/")
    assert "requires two-factor authentication" in setup.content.decode()

    activate_totp(tech)
    assert tech.get("/t/acme/incidents/").status_code == 200
    assert "recovery codes. Required by your organisation." in tech.get("/me/profile/").content.decode()
    assert tech.get("/api/v1/t/acme/incidents/").status_code == 200

    event = SecurityEvent.objects.get(verb="mfa.policy_changed")
    assert (event.actor_user_id, event.provider_id, event.ip, event.details) == (
        owner.pk,
        provider.pk,
        "192.0.2.80",
        {"scope": "provider", "required": True},
    )


@COMMITS
def test_a_required_user_cannot_remove_their_last_authenticator_app(
    tech_a: User, provider: Provider, smtp: Mailbox
) -> None:
    tech, _ = sign_in("testserver", tech_a.email)
    activate_totp(tech)
    provider.require_mfa_for_technicians = True
    provider.save()
    tech.post("/accounts/2fa/totp/deactivate/")
    assert Authenticator.objects.filter(user=tech_a, type="totp").exists()
    provider.require_mfa_for_technicians = False
    provider.save()
    tech.post("/accounts/2fa/totp/deactivate/")
    assert not Authenticator.objects.filter(user=tech_a, type="totp").exists()
    assert SecurityEvent.objects.filter(verb="mfa.totp.removed", user_id=tech_a.pk).count() == 1


@COMMITS
def test_a_client_admin_requires_mfa_of_the_portal_users(
    end_user_a: User,
    end_user_b: User,
    tenant_a: Tenant,
    tech_a: User,
    django_capture_on_commit_callbacks: Any,
    smtp: Mailbox,
) -> None:
    client_admin = make_user("carol@acme.example")
    tenant_membership_set(user=client_admin, tenant=tenant_a, role="client_admin")
    alice, _ = sign_in("acme.localhost", end_user_a.email)
    bob, _ = sign_in("globex.localhost", end_user_b.email)
    assert alice.get("/").status_code == 200

    carol, _ = sign_in("acme.localhost", client_admin.email)
    assert alice.get("/security/").status_code == 403  # end users do not (route: tenant_sso.manage)
    assert carol.get("/security/").status_code == 200
    assert carol.post("/security/", {"required": "on"}).status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.require_mfa_for_end_users

    response = alice.get("/")
    assert response.status_code == 302 and response["Location"] == ACTIVATE
    assert bob.get("/").status_code == 200  # another tenant's users are not concerned
    tech = Client(HTTP_HOST="testserver")
    tech.force_login(tech_a)
    assert tech.get("/t/acme/incidents/").status_code == 200  # nor the provider's technicians
    activate_totp(alice)
    assert alice.get("/").status_code == 200
    assert SecurityEvent.objects.get(verb="mfa.policy_changed").tenant_id == tenant_a.pk


def test_only_admins_set_the_requirements_and_a_refusal_writes_nothing(
    tech_a: User, end_user_a: User, provider: Provider, tenant_a: Tenant, client_for: Callable[..., Client]
) -> None:
    with pytest.raises(PermissionDenied):
        provider_mfa_requirement_set(actor=tech_a, provider=provider, required=True)
    with pytest.raises(PermissionDenied):
        tenant_mfa_requirement_set(actor=end_user_a, tenant=tenant_a, required=True)
    with pytest.raises(PermissionDenied):
        tenant_mfa_requirement_set(actor=tech_a, tenant=tenant_a, required=True)  # technicians neither
    assert client_for(tech_a).post("/provider/security/", {"required": "on"}).status_code == 403
    provider.refresh_from_db()
    tenant_a.refresh_from_db()
    assert not provider.require_mfa_for_technicians and not tenant_a.require_mfa_for_end_users
    assert not SecurityEvent.objects.filter(verb="mfa.policy_changed").exists()


def test_a_token_never_skips_a_required_second_factor(
    tech_a: User, provider: Provider, api_for: Callable[[User], Client], client_for: Callable[..., Client]
) -> None:
    """A token of a user who must use two-factor authentication but has none set up is refused (403,
    never sent to a set-up page), and works again once they set one up in the browser."""
    api = api_for(tech_a)
    provider.require_mfa_for_technicians = True
    provider.save()
    refused = api.get("/api/v1/t/acme/incidents/")
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/mfa-required"
    assert api.get("/api/v1/queue").status_code == 403
    activate_totp(client_for(tech_a))
    assert api.get("/api/v1/t/acme/incidents/").status_code == 200


@COMMITS
def test_wrong_codes_lock_the_second_factor_like_wrong_passwords(tech_a: User, smtp: Mailbox) -> None:
    """allauth counts wrong codes under ``login_failed`` per user (10 in 15 minutes here): after that even
    the right code is refused, so the 10^6 codes cannot be walked through."""
    console, _ = sign_in("testserver", tech_a.email)
    secret = activate_totp(console)
    console.post("/accounts/logout/")
    browser, _ = sign_in("testserver", tech_a.email)
    for n in range(10):
        wrong = f"{(int(code_for(secret)) + 1 + n) % 1000000:06d}"
        browser.post(AUTHENTICATE, {"code": wrong}, REMOTE_ADDR=f"192.0.2.{n + 1}")
    response = browser.post(AUTHENTICATE, {"code": code_for(secret)}, REMOTE_ADDR="192.0.2.99")
    assert not signed_in(browser)
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert SecurityEvent.objects.filter(verb="mfa.totp.failed", user_id=tech_a.pk).count() == 10
