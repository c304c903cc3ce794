"""An administrator resets someone's two-factor authentication (they lost their device): on the
provider's team page (owners and admins, owners only for owners) and on a client's users page (the
client's admins, for users who sign in to no other organisation). Real authenticators (allauth's own
activation for TOTP and recovery codes), the real SMTP server; every refusal writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from conftest import make_user
from controlplane.accounts.models import ProviderMembership, SecurityEvent, TenantMembership, User
from controlplane.accounts.services import (
    provider_membership_set,
    tenant_membership_set,
    user_mfa_reset,
)
from controlplane.problems import Conflict, NotFound, PermissionDenied
from controlplane.providers.models import Provider
from tenants.models import Tenant
from tests.integration.conftest import Mailbox

ClientFor = Callable[..., Client]
CONFIRM = {"confirm": "on"}


@pytest.fixture
def owner(provider: Provider) -> User:
    user = make_user("owner@northwind.example")
    provider_membership_set(user=user, provider=provider, role="owner")
    return user


@pytest.fixture
def admin(provider: Provider) -> User:
    user = make_user("admin@northwind.example")
    provider_membership_set(user=user, provider=provider, role="admin")
    return user


@pytest.fixture
def client_admin(tenant_a: Tenant) -> User:
    user = make_user("it.lead@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="client_admin")
    return user


def enrol(user: User, *, security_key: bool = False) -> None:
    """An authenticator app and recovery codes, as allauth's set-up page makes them; a security key row
    too when asked (its credential is never read here)."""
    TOTP.activate(user, generate_totp_secret())
    RecoveryCodes.activate(user)
    if security_key:
        Authenticator.objects.create(
            user=user, type=Authenticator.Type.WEBAUTHN, data={"name": "YubiKey", "credential": {}}
        )


def types_of(user: User) -> list[str]:
    return sorted(Authenticator.objects.filter(user=user).values_list("type", flat=True))


def writes(*users: User) -> tuple[Any, ...]:
    """What a reset changes: every authenticator, the audit, the users' session epochs."""
    return (
        sorted(Authenticator.objects.values_list("user_id", "type")),
        SecurityEvent.objects.count(),
        [User.objects.get(pk=u.pk).session_epoch for u in users],
    )


def last_message(response: Any) -> str:
    """The message the response's request added (earlier ones stay stored while no page shows them)."""
    return [m.message for m in get_messages(response.wsgi_request)][-1]


def test_an_owner_resets_a_technician_who_is_signed_out_everywhere_and_told_by_email(
    owner: User,
    tech_a: User,
    client_for: ClientFor,
    smtp: Mailbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    enrol(tech_a, security_key=True)
    tech = client_for(tech_a)
    assert tech.get("/me/profile/").status_code == 200
    epoch = User.objects.get(pk=tech_a.pk).session_epoch
    member = ProviderMembership.objects.get(user=tech_a)
    console = client_for(owner)
    page = console.get(f"/team/{member.pk}/").content.decode()
    assert "On: authenticator app, security key, recovery codes." in page
    assert f'action="/team/{member.pk}/mfa-reset/"' in page
    assert "On: authenticator app, security key, recovery codes." in console.get("/team/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(f"/team/{member.pk}/mfa-reset/", CONFIRM, REMOTE_ADDR="192.0.2.41")
    assert (response.status_code, response["Location"]) == (302, f"/team/{member.pk}/")
    assert (
        last_message(response)
        == f"Two-factor authentication of {tech_a.email} reset; they were signed out everywhere."
    )
    assert types_of(tech_a) == []
    assert User.objects.get(pk=tech_a.pk).session_epoch == epoch + 1
    assert tech.get("/me/profile/").status_code == 302  # the session on their lost device ended
    event = SecurityEvent.objects.get(verb="mfa.reset")
    assert (event.user_id, event.actor_user_id, event.provider_id, event.tenant_id, event.ip) == (
        tech_a.pk,
        owner.pk,
        member.provider_id,
        None,
        "192.0.2.41",
    )
    assert event.details == {"removed": ["recovery_codes", "totp", "webauthn"], "scope": "provider"}
    [mail] = smtp.messages
    assert mail["To"] == tech_a.email
    assert str(mail["Subject"]).strip() == "[MSP ITSM] Your two-factor authentication was reset"
    body = " ".join(smtp.bodies()[0].split())
    assert f"Your two-factor authentication was reset by {owner.email} on " in body
    assert "If you did not ask for this, contact your administrator." in body
    # The user sees it among their own security events; the member's page offers no reset any more.
    tech_a.refresh_from_db()  # signing in again stamps the new epoch
    profile = client_for(tech_a).get("/me/profile/").content.decode()
    assert "Two-factor authentication reset by an administrator" in profile
    page = console.get(f"/team/{member.pk}/").content.decode()
    assert "mfa-reset" not in page and "Off." in page


def test_an_admin_cannot_reset_an_owner_nobody_resets_themself_and_another_owner_may(
    owner: User,
    admin: User,
    provider: Provider,
    client_for: ClientFor,
    smtp: Mailbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    enrol(owner)
    enrol(admin)
    owner_membership = ProviderMembership.objects.get(user=owner)
    admin_membership = ProviderMembership.objects.get(user=admin)
    before = writes(owner, admin)
    with django_capture_on_commit_callbacks(execute=True):
        refused = client_for(admin).post(f"/team/{owner_membership.pk}/mfa-reset/", CONFIRM)
        assert refused.status_code == 302
        assert last_message(refused) == "only an owner resets an owner's two-factor authentication"
        with pytest.raises(PermissionDenied, match="only an owner"):
            user_mfa_reset(actor=admin, target_user=owner, provider=provider)
        for actor, membership in ((owner, owner_membership), (admin, admin_membership)):
            mine = client_for(actor).post(f"/team/{membership.pk}/mfa-reset/", CONFIRM)
            assert (
                last_message(mine)
                == "you cannot reset your own two-factor authentication; use your account's security pages"
            )
            with pytest.raises(PermissionDenied, match="your own"):
                user_mfa_reset(actor=actor, target_user=actor, provider=provider)
    assert writes(owner, admin) == before and smtp.messages == []
    # The member's own page offers no reset of oneself.
    assert "mfa-reset" not in client_for(owner).get(f"/team/{owner_membership.pk}/").content.decode()

    second = make_user("second.owner@northwind.example")
    provider_membership_set(user=second, provider=provider, role="owner")
    with django_capture_on_commit_callbacks(execute=True):
        assert user_mfa_reset(actor=second, target_user=owner, provider=provider) == [
            "recovery_codes",
            "totp",
        ]
    assert types_of(owner) == [] and [m["To"] for m in smtp.messages] == [owner.email]


def test_technicians_client_staff_and_other_providers_cannot_reset_and_write_nothing(
    owner: User,
    tech_a: User,
    end_user_a: User,
    client_admin: User,
    provider: Provider,
    other_provider: Provider,
    client_for: ClientFor,
    smtp: Mailbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    enrol(owner)
    enrol(tech_a)
    stranger = make_user("stranger@contoso.example")
    theirs = provider_membership_set(user=stranger, provider=other_provider, role="technician")
    enrol(stranger)
    target = ProviderMembership.objects.get(user=owner)
    before = writes(owner, tech_a, stranger)
    with django_capture_on_commit_callbacks(execute=True):
        for user in (tech_a, end_user_a, client_admin):
            assert client_for(user).post(f"/team/{target.pk}/mfa-reset/", CONFIRM).status_code == 403
        with pytest.raises(PermissionDenied, match="owners and admins"):
            user_mfa_reset(actor=tech_a, target_user=owner, provider=provider)
        # Another provider's member: not found on this team's pages, and not this provider's to reset.
        assert client_for(owner).post(f"/team/{theirs.pk}/mfa-reset/", CONFIRM).status_code == 404
        with pytest.raises(NotFound):
            user_mfa_reset(actor=owner, target_user=stranger, provider=provider)
        # Unconfirmed: the box was not ticked.
        member = ProviderMembership.objects.get(user=tech_a)
        unticked = client_for(owner).post(f"/team/{member.pk}/mfa-reset/")
        assert unticked.status_code == 302 and "tick the box" in last_message(unticked)
    assert writes(owner, tech_a, stranger) == before and smtp.messages == []


def test_nothing_to_reset_is_a_conflict_that_writes_nothing(
    owner: User,
    tech_a: User,
    provider: Provider,
    client_for: ClientFor,
    smtp: Mailbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    member = ProviderMembership.objects.get(user=tech_a)
    before = writes(tech_a)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(Conflict, match="nothing to reset"):
            user_mfa_reset(actor=owner, target_user=tech_a, provider=provider)
        response = client_for(owner).post(f"/team/{member.pk}/mfa-reset/", CONFIRM)
    assert (
        last_message(response) == f"nothing to reset: {tech_a.email} has no two-factor authentication set up"
    )
    assert writes(tech_a) == before and smtp.messages == []


def test_a_client_admin_resets_a_user_who_signs_in_to_their_client_only(
    client_admin: User,
    end_user_a: User,
    tenant_a: Tenant,
    client_for: ClientFor,
    smtp: Mailbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    enrol(end_user_a)
    portal = client_for(end_user_a, host="acme.localhost")
    assert portal.get("/").status_code == 200
    membership = TenantMembership.objects.get(user=end_user_a, tenant=tenant_a)
    console = client_for(client_admin)
    page = console.get("/t/acme/users/").content.decode()
    assert "On: authenticator app, recovery codes." in page
    assert f'action="/t/acme/users/{membership.pk}/mfa-reset/"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(
            f"/t/acme/users/{membership.pk}/mfa-reset/", CONFIRM, REMOTE_ADDR="192.0.2.42"
        )
    assert (response.status_code, response["Location"]) == (302, "/t/acme/users/")
    assert types_of(end_user_a) == []
    assert portal.get("/").status_code == 302  # signed out on the portal too
    event = SecurityEvent.objects.get(verb="mfa.reset")
    assert (event.user_id, event.actor_user_id, event.provider_id, event.tenant_id, event.ip) == (
        end_user_a.pk,
        client_admin.pk,
        tenant_a.provider_id,
        tenant_a.pk,
        "192.0.2.42",
    )
    assert event.details == {"removed": ["recovery_codes", "totp"], "scope": "tenant"}
    [mail] = smtp.messages
    assert mail["To"] == end_user_a.email
    # Named after the client's portal, which is where this user signs in.
    assert str(mail["Subject"]).strip() == "[Acme Corp · IT help] Your two-factor authentication was reset"
    body = " ".join(smtp.bodies()[0].split())
    assert f"reset by {client_admin.email} on " in body and "Hello from Acme Corp · IT help!" in body


def test_a_client_admin_cannot_reset_someone_who_signs_in_elsewhere_or_themself(
    client_admin: User,
    owner: User,
    end_user_a: User,
    tenant_a: Tenant,
    tenant_b: Tenant,
    other_provider: Provider,
    client_for: ClientFor,
    smtp: Mailbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    tenant_membership_set(user=end_user_a, tenant=tenant_b, role="end_user")  # Alice uses Globex's portal too
    contractor = make_user("contractor@contoso.example")  # another provider's technician, an end user here
    provider_membership_set(user=contractor, provider=other_provider, role="technician")
    tenant_membership_set(user=contractor, tenant=tenant_a, role="end_user")
    for user in (end_user_a, contractor, client_admin):
        enrol(user)
    console = client_for(client_admin)
    page = console.get("/t/acme/users/").content.decode()
    assert "mfa-reset" not in page  # no reset offered for them, nor for oneself
    assert page.count("Also signs in to other organisations") == 2
    before = writes(end_user_a, contractor, client_admin)
    elsewhere = "this person also signs in to other organisations; ask the provider's administrators"
    with django_capture_on_commit_callbacks(execute=True):
        for user in (end_user_a, contractor):
            membership = TenantMembership.objects.get(user=user, tenant=tenant_a)
            response = console.post(f"/t/acme/users/{membership.pk}/mfa-reset/", CONFIRM)
            assert response.status_code == 302 and last_message(response) == elsewhere
            for actor in (client_admin, owner):  # the provider's owner on this page neither
                with pytest.raises(PermissionDenied, match="other organisations"):
                    user_mfa_reset(actor=actor, target_user=user, tenant=tenant_a)
        mine = TenantMembership.objects.get(user=client_admin, tenant=tenant_a)
        response = console.post(f"/t/acme/users/{mine.pk}/mfa-reset/", CONFIRM)
        assert "your own" in last_message(response)
        # Globex's membership of Alice is no user of Acme's page.
        globex = TenantMembership.objects.get(user=end_user_a, tenant=tenant_b)
        assert console.post(f"/t/acme/users/{globex.pk}/mfa-reset/", CONFIRM).status_code == 404
        with pytest.raises(PermissionDenied):  # Acme's admin has no right in Globex
            user_mfa_reset(actor=client_admin, target_user=end_user_a, tenant=tenant_b)
    assert writes(end_user_a, contractor, client_admin) == before and smtp.messages == []


def test_end_users_cannot_reset_and_the_users_page_reads_two_factor_in_one_query(
    client_admin: User,
    end_user_a: User,
    tenant_a: Tenant,
    client_for: ClientFor,
    smtp: Mailbox,
) -> None:
    other = make_user("carol@acme.example")
    tenant_membership_set(user=other, tenant=tenant_a, role="approver")
    enrol(other)
    membership = TenantMembership.objects.get(user=other, tenant=tenant_a)
    before = writes(other)
    assert (
        client_for(end_user_a).post(f"/t/acme/users/{membership.pk}/mfa-reset/", CONFIRM).status_code == 403
    )
    assert writes(other) == before and smtp.messages == []

    console = client_for(client_admin)
    console.get("/t/acme/users/")  # warm: the session and the middleware's lookups
    with CaptureQueriesContext(connection) as few:
        console.get("/t/acme/users/")
    for n in range(3):
        user = make_user(f"user{n}@acme.example")
        tenant_membership_set(user=user, tenant=tenant_a, role="end_user")
        enrol(user)
    with CaptureQueriesContext(connection) as more:
        page = console.get("/t/acme/users/").content.decode()
    assert page.count("On: authenticator app, recovery codes.") == 4
    assert len(more.captured_queries) == len(few.captured_queries)
