"""The provider's team page (roles, "all clients", grants) and a client's users page, with their audit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from conftest import make_user
from controlplane.accounts.models import (
    ProviderMembership,
    SecurityEvent,
    TenantGrant,
    TenantMembership,
    User,
)
from controlplane.accounts.services import (
    provider_member_update,
    provider_membership_set,
    tenant_membership_set,
)
from controlplane.problems import PermissionDenied
from controlplane.providers.models import Provider
from tenants.models import Tenant

ClientFor = Callable[..., Client]


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


def _writes() -> tuple[int, int, int, int, int]:
    return (
        User.objects.count(),
        ProviderMembership.objects.count(),
        TenantGrant.objects.count(),
        TenantMembership.objects.count(),
        SecurityEvent.objects.count(),
    )


def test_an_owner_adds_a_technician_who_reaches_no_client_until_granted(
    owner: User, tenant_a: Tenant, tenant_b: Tenant, client_for: ClientFor
) -> None:
    console = client_for(owner)
    added = console.post(
        "/team/", {"email": "New.Tech@Northwind.example", "full_name": "New Tech", "role": "technician"}
    )
    assert added.status_code == 302
    member = ProviderMembership.objects.get(user__email="new.tech@northwind.example")
    assert (member.role, member.all_clients, member.grants.count()) == ("technician", False, 0)
    assert not member.user.has_usable_password()  # "forgot password" or the provider's SSO
    tech = client_for(member.user)
    assert tech.get("/t/acme/incidents/").status_code == 404  # deny by default
    saved = console.post(
        f"/team/{member.pk}/", {"role": "technician", "tenants": [tenant_a.pk]}, REMOTE_ADDR="192.0.2.9"
    )
    assert saved.status_code == 302
    assert tech.get("/t/acme/incidents/").status_code == 200
    assert tech.get("/t/globex/incidents/").status_code == 404
    events = list(SecurityEvent.objects.filter(user_id=member.user_id).order_by("id"))
    assert [(e.verb, e.actor_user_id) for e in events] == [
        ("membership.added", owner.pk),
        ("membership.changed", owner.pk),
    ]
    assert events[1].details == {"grants_added": [tenant_a.pk]} and events[1].ip == "192.0.2.9"
    # Removing the grant ends the access on the next request.
    console.post(f"/team/{member.pk}/", {"role": "technician"})
    assert tech.get("/t/acme/incidents/").status_code == 404


def test_only_owners_make_owners_and_the_last_owner_stays(
    owner: User, admin: User, tenant_a: Tenant, client_for: ClientFor
) -> None:
    admin_membership = ProviderMembership.objects.get(user=admin)
    owner_membership = ProviderMembership.objects.get(user=owner)
    before = _writes()
    refused = client_for(admin).post("/team/", {"email": "boss@northwind.example", "role": "owner"})
    assert refused.status_code == 403
    with pytest.raises(PermissionDenied):
        provider_member_update(
            actor=admin, membership=owner_membership, role="technician", all_clients=False, tenant_ids=[]
        )
    with pytest.raises(PermissionDenied):  # one's own membership: ask another administrator
        provider_member_update(
            actor=owner, membership=owner_membership, role="admin", all_clients=True, tenant_ids=[]
        )
    second = make_user("second.owner@northwind.example")
    provider_membership_set(user=second, provider=owner_membership.provider, role="owner")
    before = _writes()
    provider_member_update(
        actor=second, membership=owner_membership, role="admin", all_clients=True, tenant_ids=[]
    )  # another owner may change an owner
    last = ProviderMembership.objects.get(user=second)
    for actor in (owner, admin, second):  # the last owner: an admin now, an admin, and themself
        with pytest.raises(PermissionDenied):
            provider_member_update(
                actor=actor, membership=last, role="admin", all_clients=True, tenant_ids=[]
            )
    assert _writes()[4] == before[4] + 1  # only the accepted change was audited
    assert ProviderMembership.objects.get(user=second).role == "owner"
    assert ProviderMembership.objects.get(user=admin).role == admin_membership.role


def test_technicians_and_client_staff_cannot_open_the_team_and_write_nothing(
    owner: User, tech_a: User, end_user_a: User, tenant_a: Tenant, client_for: ClientFor
) -> None:
    target = ProviderMembership.objects.get(user=tech_a)
    before = _writes()
    for user in (tech_a, end_user_a):
        console = client_for(user)
        assert console.get("/team/").status_code == 403
        assert console.post("/team/", {"email": "x@northwind.example", "role": "admin"}).status_code == 403
        assert console.post(f"/team/{target.pk}/", {"role": "admin", "all_clients": "on"}).status_code == 403
        assert console.post(f"/team/{target.pk}/remove/").status_code == 403
    assert _writes() == before


def test_another_providers_member_is_not_found(
    owner: User, other_provider: Provider, client_for: ClientFor
) -> None:
    stranger = make_user("stranger@contoso.example")
    theirs = provider_membership_set(user=stranger, provider=other_provider, role="technician")
    before = _writes()
    console = client_for(owner)
    assert console.get(f"/team/{theirs.pk}/").status_code == 404
    assert console.post(f"/team/{theirs.pk}/remove/").status_code == 404
    assert _writes() == before


def test_a_client_admin_manages_the_clients_users_and_a_removed_user_is_refused_at_once(
    tenant_a: Tenant, tech_a: User, end_user_a: User, client_for: ClientFor
) -> None:
    it_lead = make_user("it.lead@acme.example")
    tenant_membership_set(user=it_lead, tenant=tenant_a, role="client_admin")
    console = client_for(it_lead)
    made = console.post("/t/acme/users/", {"email": "manager@acme.example", "role": "approver"})
    assert made.status_code == 302
    manager = User.objects.get(email="manager@acme.example")
    assert TenantMembership.objects.get(user=manager, tenant=tenant_a).role == "approver"
    console.post("/t/acme/users/", {"email": "manager@acme.example", "role": "cab_member"})
    changed = SecurityEvent.objects.filter(user_id=manager.pk).order_by("id")
    assert [(e.verb, e.details["role"], e.tenant_id) for e in changed] == [
        ("tenant_membership.added", "approver", tenant_a.pk),
        ("tenant_membership.changed", ["approver", "cab_member"], tenant_a.pk),
    ]
    # The provider's technician enters by grant, never as a tenant member.
    before = _writes()
    staff = console.post("/t/acme/users/", {"email": tech_a.email, "role": "client_admin"})
    assert staff.status_code == 422 and "provider" in staff.content.decode()
    # An end user cannot open the page; nothing is written.
    alice = client_for(end_user_a)
    assert alice.get("/t/acme/users/").status_code == 403
    assert (
        alice.post("/t/acme/users/", {"email": "evil@acme.example", "role": "client_admin"}).status_code
        == 403
    )
    assert _writes() == before
    # Removing Alice's role ends her access with her next request, on the console and the portal.
    portal = client_for(end_user_a, host="acme.localhost")
    assert portal.get("/").status_code == 200
    alice_membership = TenantMembership.objects.get(user=end_user_a, tenant=tenant_a)
    assert console.post(f"/t/acme/users/{alice_membership.pk}/remove/").status_code == 302
    assert alice.get("/t/acme/incidents/").status_code == 404
    assert portal.get("/").status_code == 403
    assert SecurityEvent.objects.filter(verb="tenant_membership.removed", user_id=end_user_a.pk).count() == 1
