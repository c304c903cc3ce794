"""Account flows through django-allauth on the console host and on portal hosts, with mail over real
SMTP: email verification, password change, password reset links from the validated host only, and the
NIST SP 800-63B password policy."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from allauth.account.models import EmailAddress
from django.apps import apps
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

from conftest import PASSWORD
from controlplane.accounts.models import SecurityEvent, User
from controlplane.accounts.services import tenant_membership_set, user_create
from tenants.management.commands.seed_demo import DEMO_PASSWORD
from tenants.models import Tenant
from tests.integration.conftest import Mailbox

NEW_PASSWORD = "a-new-long-passphrase"


def login(client: Client, email: str, password: str = PASSWORD) -> int:
    client.get("/accounts/login/")
    return client.post("/accounts/login/", {"login": email, "password": password}).status_code


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- password policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [
        DEMO_PASSWORD,
        PASSWORD,
        "bench-password-1",
        NEW_PASSWORD,
        "all lower case words no digits",  # no composition rules
        "x" * 7 + "🙂 unicode and spaces are fine",
        "p" * 128,
    ],
)
def test_the_policy_accepts_long_passwords_without_composition_rules(password: str) -> None:
    validate_password(password)


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("eleven-char", "password_too_short"),
        ("q1w2e3r4t5y6", "password_too_common"),  # 12 characters, in the breached-password list
        ("1qaz2wsx3edc", "password_too_common"),
        ("p" * 129, "password_too_long"),
    ],
)
def test_the_policy_refuses_short_common_and_overlong_passwords(password: str, code: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validate_password(password)
    assert code in [e.code for e in refused.value.error_list]


def test_the_policy_refuses_a_password_like_the_address(db: None) -> None:
    user = User(email="margaret.hamilton@apollo.example")
    with pytest.raises(ValidationError) as refused:
        validate_password("margaret.hamilton@apollo", user)
    assert "password_too_similar" in [e.code for e in refused.value.error_list]


# --- email verification ----------------------------------------------------------------------------


def test_an_invited_user_verifies_their_address_on_the_portal_before_signing_in(
    tenant_a: Tenant, smtp: Mailbox
) -> None:
    user = user_create(email="new.hire@acme.example", password=PASSWORD, full_name="New Hire")
    tenant_membership_set(user=user, tenant=tenant_a, role="end_user")
    portal = Client(HTTP_HOST="acme.localhost")
    assert login(portal, user.email) == 302
    assert not signed_in(portal)  # sent to "check your inbox" instead
    assert len(smtp.messages) == 1 and smtp.messages[0]["To"] == user.email
    assert str(smtp.messages[0]["Subject"]).strip().startswith("[Acme Corp · IT help] ")  # the portal name
    assert "Hello from Acme Corp · IT help!" in smtp.bodies()[0]
    link = re.search(r"http://acme\.localhost(/accounts/confirm-email/\S+/)", smtp.bodies()[0])
    assert link is not None, smtp.bodies()[0]

    page = portal.get(link.group(1))
    assert page.status_code == 200
    assert "--brand-primary" in page.content.decode()  # the tenant's branded layout
    assert not EmailAddress.objects.get(user=user).verified  # a GET confirms nothing
    assert portal.post(link.group(1), REMOTE_ADDR="192.0.2.33").status_code == 302
    assert EmailAddress.objects.get(user=user).verified
    event = SecurityEvent.objects.get(verb="email.verified")
    assert (event.user_id, event.ip, event.tenant_id) == (user.pk, "192.0.2.33", tenant_a.pk)

    fresh = Client(HTTP_HOST="acme.localhost")
    assert login(fresh, user.email) == 302 and signed_in(fresh)


def test_an_unverified_user_is_not_signed_in_on_the_console(db: None, smtp: Mailbox) -> None:
    user = user_create(email="invited@northwind.example", password=PASSWORD)
    console = Client(HTTP_HOST="testserver")
    assert login(console, user.email) == 302
    assert not signed_in(console)
    assert console.get("/").status_code == 302
    assert re.search(r"http://testserver/accounts/confirm-email/\S+/", smtp.bodies()[0])
    assert str(smtp.messages[0]["Subject"]).strip().startswith("[MSP ITSM] ")
    assert not SecurityEvent.objects.filter(verb="login.succeeded").exists()


def test_users_made_before_verification_was_required_are_verified_by_the_migration(db: None) -> None:
    module = __import__(
        "controlplane.accounts.migrations.0005_verify_existing_addresses", fromlist=["verify_existing"]
    )
    old = User.objects.create_user(email="old@northwind.example", password=PASSWORD)  # no address row
    half = User.objects.create_user(email="half@northwind.example", password=PASSWORD)
    EmailAddress.objects.create(user=half, email=half.email, primary=True, verified=False)
    module.verify_existing(apps, None)
    assert list(EmailAddress.objects.filter(user=old).values_list("email", "primary", "verified")) == [
        ("old@northwind.example", True, True)
    ]
    assert EmailAddress.objects.get(user=half).verified


# --- password change -------------------------------------------------------------------------------


def test_password_change_on_the_portal_refuses_a_breached_password_next_to_the_field(
    end_user_a: User, client_for: Callable[..., Client], smtp: Mailbox
) -> None:
    portal = Client(HTTP_HOST="acme.localhost")
    assert login(portal, end_user_a.email) == 302
    form = {"oldpassword": PASSWORD, "password1": "q1w2e3r4t5y6", "password2": "q1w2e3r4t5y6"}
    response = portal.post("/accounts/password/change/", form)
    assert response.status_code == 200
    assert "This password is too common." in response.content.decode()
    end_user_a.refresh_from_db()
    assert end_user_a.check_password(PASSWORD)
    assert not SecurityEvent.objects.filter(verb="password.changed").exists()
    assert smtp.messages == []


def test_password_change_keeps_this_session_ends_the_others_and_notifies(
    end_user_a: User, smtp: Mailbox
) -> None:
    portal = Client(HTTP_HOST="acme.localhost")
    assert login(portal, end_user_a.email) == 302
    console = Client(HTTP_HOST="testserver")
    assert login(console, end_user_a.email) == 302
    page = portal.get("/accounts/password/change/")
    assert page.status_code == 200 and "--brand-primary" in page.content.decode()
    form = {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    assert portal.post("/accounts/password/change/", form, REMOTE_ADDR="192.0.2.44").status_code == 302

    assert portal.get("/account/").status_code == 200  # this browser stays signed in
    response = console.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    event = SecurityEvent.objects.get(verb="password.changed")
    assert (event.user_id, event.ip) == (end_user_a.pk, "192.0.2.44")
    assert [m["To"] for m in smtp.messages] == [end_user_a.email]  # "your password was changed"
    assert login(Client(HTTP_HOST="acme.localhost"), end_user_a.email, NEW_PASSWORD) == 302


# --- password reset --------------------------------------------------------------------------------


def test_a_reset_link_uses_the_validated_host_never_a_forwarded_one(end_user_a: User, smtp: Mailbox) -> None:
    portal = Client(HTTP_HOST="acme.localhost", HTTP_X_FORWARDED_HOST="evil.example")
    portal.get("/accounts/password/reset/")
    assert portal.post("/accounts/password/reset/", {"email": end_user_a.email}).status_code == 302
    body = smtp.bodies()[0]
    assert "http://acme.localhost/accounts/password/reset/key/" in body
    assert "evil" not in body


def test_a_reset_asked_on_an_unknown_host_is_refused_and_sends_nothing(
    end_user_a: User, smtp: Mailbox
) -> None:
    stranger = Client(HTTP_HOST="evil.example")
    assert stranger.post("/accounts/password/reset/", {"email": end_user_a.email}).status_code == 404
    assert smtp.messages == []


def test_a_portal_sends_reset_links_only_to_its_own_users(
    end_user_a: User, end_user_b: User, smtp: Mailbox
) -> None:
    acme = Client(HTTP_HOST="acme.localhost")
    acme.get("/accounts/password/reset/")
    assert acme.post("/accounts/password/reset/", {"email": end_user_b.email}).status_code == 302
    assert [m["To"] for m in smtp.messages] == [end_user_b.email]  # allauth's "no account here" notice
    assert "reset/key" not in smtp.bodies()[0]
    globex = Client(HTTP_HOST="globex.localhost")
    globex.get("/accounts/password/reset/")
    globex.post("/accounts/password/reset/", {"email": end_user_b.email})
    assert "http://globex.localhost/accounts/password/reset/key/" in smtp.bodies()[1]


def test_a_reset_on_the_console_links_to_the_console(tech_a: User, smtp: Mailbox) -> None:
    console = Client(HTTP_HOST="localhost")
    console.get("/accounts/password/reset/")
    assert console.post("/accounts/password/reset/", {"email": tech_a.email}).status_code == 302
    assert "http://localhost/accounts/password/reset/key/" in smtp.bodies()[0]


def test_a_reset_ends_every_session_and_is_recorded(
    end_user_a: User, client_for: Callable[..., Client], smtp: Mailbox
) -> None:
    console = client_for(end_user_a)
    assert console.get("/me/profile/").status_code == 200
    portal = Client(HTTP_HOST="acme.localhost", REMOTE_ADDR="192.0.2.55")
    portal.get("/accounts/password/reset/")
    portal.post("/accounts/password/reset/", {"email": end_user_a.email})
    link = re.search(r"http://acme\.localhost(/accounts/password/reset/key/\S+/)", smtp.bodies()[0])
    assert link is not None
    form = portal.get(link.group(1), follow=True)
    set_path = form.redirect_chain[-1][0] if form.redirect_chain else link.group(1)
    short = portal.post(set_path, {"password1": "too-short", "password2": "too-short"})
    assert short.status_code == 200 and "too short" in short.content.decode()
    assert portal.post(set_path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code == 302

    response = console.get("/me/profile/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    end_user_a.refresh_from_db()
    assert end_user_a.session_epoch == 1
    event = SecurityEvent.objects.get(verb="password.reset")
    assert (event.user_id, event.ip, event.details) == (
        end_user_a.pk,
        "192.0.2.55",
        {"host": "acme.localhost"},
    )
