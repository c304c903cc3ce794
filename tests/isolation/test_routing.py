"""Tenant isolation through the three entrances: console paths, portal hosts, and what they share.

Rules from ../shared/ARCHITECTURE.md ("Three entrances", "Rules that keep tenants apart") and the
django-tenants traps in ../shared/PITFALLS.md.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import ProgrammingError, connection, transaction
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import PASSWORD, actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant
from controlplane.providers.models import Provider
from modules.incidents.models import Incident
from modules.incidents.services import incident_create
from tenants.models import Tenant
from tenants.services import tenant_provision


def incident_numbers(tenant: Tenant) -> set[str]:
    with tenant_context(tenant):
        return set(Incident.objects.values_list("short_description", flat=True))


def test_technician_without_a_grant_gets_the_same_404_as_for_no_tenant(
    client_for: Callable[..., Client], tech_a: User, tenant_b: Tenant
) -> None:
    client = client_for(tech_a)
    denied = client.get("/t/globex/incidents/")
    missing = client.get("/t/no-such-client/incidents/")
    assert denied.status_code == missing.status_code == 404
    assert client.get("/t/acme/incidents/").status_code == 200


def test_denied_console_write_writes_nothing(
    client_for: Callable[..., Client], tech_a: User, tenant_b: Tenant
) -> None:
    client = client_for(tech_a)
    response = client.post(
        "/t/globex/incidents/new/",
        {"short_description": "sneaky", "impact": 2, "urgency": 2, "contact_type": "phone"},
    )
    assert response.status_code == 404
    assert incident_numbers(tenant_b) == set()


def test_grants_are_explicit_and_the_home_lists_only_granted_tenants(
    client_for: Callable[..., Client], tech_a: User, tenant_b: Tenant
) -> None:
    page = client_for(tech_a).get("/").content.decode()
    assert "/t/acme/" in page
    assert "/t/globex/" not in page


def test_end_users_do_not_enter_the_console_of_another_tenant(
    client_for: Callable[..., Client], end_user_a: User, tenant_b: Tenant
) -> None:
    assert client_for(end_user_a).get("/t/globex/incidents/").status_code == 404


def test_two_tabs_on_two_tenants_never_write_into_each_other(
    client_for: Callable[..., Client], tech_ab: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """One browser session, two tabs: interleaved writes land in the tenant of their own path."""
    browser = client_for(tech_ab)
    for index in range(3):
        for slug in ("acme", "globex"):
            response = browser.post(
                f"/t/{slug}/incidents/new/",
                {
                    "short_description": f"{slug} issue {index}",
                    "impact": 2,
                    "urgency": 2,
                    "contact_type": "phone",
                },
            )
            assert response.status_code == 302, response.content[:500]
    assert incident_numbers(tenant_a) == {f"acme issue {i}" for i in range(3)}
    assert incident_numbers(tenant_b) == {f"globex issue {i}" for i in range(3)}


def test_a_savepoint_rollback_in_one_tenant_does_not_leak_into_the_next_request(
    client_for: Callable[..., Client], tech_ab: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """django-tenants #1262: a rolled-back savepoint must not leave the connection on the old schema."""
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_ab)
        incident_create(actor=actor, short_description="only in acme")
        with pytest.raises(RuntimeError), transaction.atomic():
            incident_create(actor=actor, short_description="rolled back")
            raise RuntimeError("roll back to the savepoint")
    page = client_for(tech_ab).get("/t/globex/incidents/").content.decode()
    assert "only in acme" not in page
    assert incident_numbers(tenant_a) == {"only in acme"}


def test_unknown_hosts_get_404_not_the_public_site(client_for: Callable[..., Client], tech_a: User) -> None:
    assert client_for(None, host="evil.example").get("/").status_code == 404
    assert client_for(None, host="nope.localhost").get("/accounts/login/").status_code == 404
    assert client_for(tech_a, host="evil.example").get("/t/acme/incidents/").status_code == 404


def test_x_forwarded_host_does_not_choose_the_tenant(
    client_for: Callable[..., Client], end_user_a: User, tenant_b: Tenant
) -> None:
    client = client_for(None, host="evil.example")
    assert client.get("/", HTTP_X_FORWARDED_HOST="acme.localhost").status_code == 404


def portal_login(client: Client, email: str, password: str = PASSWORD) -> int:
    client.get("/accounts/login/")
    return client.post("/accounts/login/", {"login": email, "password": password}).status_code


def test_end_user_signs_in_on_their_portal_and_sees_only_their_incidents(
    end_user_a: User, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        incident_create(actor=actor_in(tenant_a, end_user_a, "end_user"), short_description="my laptop")
        incident_create(actor=actor_in(tenant_a, tech_a), short_description="someone else's server")
    portal = Client(HTTP_HOST="acme.localhost")
    assert portal_login(portal, end_user_a.email) == 302
    page = portal.get("/").content.decode()
    assert "my laptop" in page
    assert "someone else" not in page
    cookie = portal.cookies["sessionid"]
    assert cookie["domain"] == ""  # host-only: never sent to another tenant's host


def test_portal_sign_in_is_refused_to_users_of_other_tenants(
    end_user_a: User, end_user_b: User, tech_a: User
) -> None:
    globex = Client(HTTP_HOST="globex.localhost")
    assert portal_login(globex, end_user_a.email) == 200  # the form again, with an error
    assert "_auth_user_id" not in globex.session
    acme = Client(HTTP_HOST="acme.localhost")
    assert portal_login(acme, tech_a.email) == 200  # technicians work in the console, not the portal
    assert "_auth_user_id" not in acme.session


def test_a_session_from_one_portal_does_not_open_another(end_user_a: User, end_user_b: User) -> None:
    acme = Client(HTTP_HOST="acme.localhost")
    assert portal_login(acme, end_user_a.email) == 302
    stolen = Client(HTTP_HOST="globex.localhost")
    stolen.cookies["sessionid"] = acme.cookies["sessionid"].value
    response = stolen.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_signed_in_user_without_a_role_on_a_portal_gets_403_not_a_loop(
    end_user_b: User, tenant_a: Tenant
) -> None:
    portal = Client(HTTP_HOST="acme.localhost")
    portal.force_login(end_user_b)
    response = portal.get("/")
    assert response.status_code == 403
    assert "no access" in response.content.decode()


def test_a_suspended_tenant_is_not_served(
    client_for: Callable[..., Client], tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    Tenant.objects.filter(pk=tenant_a.pk).update(status=Tenant.Status.SUSPENDED)
    assert client_for(tech_a).get("/t/acme/incidents/").status_code == 404
    assert client_for(end_user_a, host="acme.localhost").get("/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_pooled_connections_start_every_request_on_the_right_schema(
    client_for: Callable[..., Client],
) -> None:
    """Requests return their connection to psycopg's pool with whatever search_path they left; the next
    request on that connection must still run where its own routing says."""
    provider = Provider.objects.create(name="Northwind MSP", slug="northwind")
    tenants = [
        tenant_provision(provider=provider, name=n, slug=s)
        for n, s in (("Acme", "acme"), ("Globex", "globex"))
    ]
    try:
        user = make_user("tech@northwind.example")
        membership = provider_membership_set(user=user, provider=provider, role="technician")
        for tenant in tenants:
            tenant_grant(membership=membership, tenant=tenant)
        browser = client_for(user)
        for slug in ("acme", "globex", "acme", "globex"):
            created = browser.post(
                f"/t/{slug}/incidents/new/",
                {"short_description": f"{slug} only", "impact": 2, "urgency": 2, "contact_type": "phone"},
            )
            assert created.status_code == 302
            connection.close()  # what request_finished does outside the test client: back to the pool
            with connection.cursor() as cursor:  # likely the same server connection, path left on the tenant
                cursor.execute("SHOW search_path")
                assert cursor.fetchone()[0] == "public"
                with pytest.raises(ProgrammingError):
                    cursor.execute("SELECT count(*) FROM incidents_incident")  # no tenant table is visible
        for tenant in tenants:
            assert incident_numbers(tenant) == {f"{tenant.slug} only"}
    finally:
        with connection.cursor() as cursor:
            for tenant in tenants:
                cursor.execute(f'DROP SCHEMA "{tenant.schema_name}" CASCADE')
