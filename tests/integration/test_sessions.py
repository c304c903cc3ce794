"""Sessions: host-only and bound to their host, a new session id at sign-in, sign out everywhere (the
session epoch), and access that ends within one request when a user is deactivated or loses a role."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client

from conftest import PASSWORD
from controlplane.accounts.models import (
    ProviderMembership,
    SecurityEvent,
    TenantGrant,
    TenantMembership,
    User,
)
from controlplane.accounts.services import tenant_membership_set, user_sign_out_everywhere
from tenants.models import Tenant

INCIDENTS_PAGE = "/t/acme/incidents/"
INCIDENTS_API = "/api/v1/t/acme/incidents/"


def sign_in(host: str, email: str, password: str = PASSWORD) -> Client:
    """A browser signed in through allauth's form on ``host``."""
    client = Client(HTTP_HOST=host)
    client.get("/accounts/login/")
    response = client.post("/accounts/login/", {"login": email, "password": password})
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def refused_page(response: object) -> bool:
    status = getattr(response, "status_code", 0)
    location = getattr(response, "headers", {}).get("Location", "")
    return status == 302 and "/accounts/login/" in location


def test_sign_in_gives_a_new_session_id(tech_a: User) -> None:
    client = Client(HTTP_HOST="testserver")
    client.get("/accounts/login/")  # the CSRF cookie; put something in the anonymous session too
    session = client.session
    session["before"] = "x"
    session.save()
    before = client.cookies["sessionid"].value
    client.post("/accounts/login/", {"login": tech_a.email, "password": PASSWORD})
    after = client.cookies["sessionid"].value
    assert after != before
    assert client.session["_auth_user_id"] == str(tech_a.pk)
    assert (
        not Client(HTTP_HOST="testserver", HTTP_COOKIE=f"sessionid={before}")
        .get("/")
        .wsgi_request.user.is_authenticated
    )


def test_a_portal_session_is_not_honoured_on_another_portal_or_the_console(
    end_user_a: User, end_user_b: User
) -> None:
    acme = sign_in("acme.localhost", end_user_a.email)
    cookie = acme.cookies["sessionid"]
    assert cookie["domain"] == ""  # host-only: the browser never sends it elsewhere
    for host in ("globex.localhost", "testserver"):
        copied = Client(HTTP_HOST=host)
        copied.cookies["sessionid"] = cookie.value
        response = copied.get("/")
        assert refused_page(response), host
    assert acme.get("/").status_code == 200  # still valid where it was issued


def test_sign_out_everywhere_from_the_portal_ends_every_session_on_every_host(end_user_a: User) -> None:
    portal = sign_in("acme.localhost", end_user_a.email)
    console = sign_in("testserver", end_user_a.email)
    other_portal_browser = sign_in("acme.localhost", end_user_a.email)
    assert console.get("/me/profile/").status_code == 200
    page = portal.get("/account/")
    assert page.status_code == 200
    assert "Sign out everywhere" in page.content.decode()

    response = portal.post("/account/sign-out-everywhere/", REMOTE_ADDR="192.0.2.9")
    assert refused_page(response)
    assert refused_page(portal.get("/"))
    assert refused_page(console.get("/me/profile/"))
    assert refused_page(other_portal_browser.get("/account/"))
    event = SecurityEvent.objects.get(verb="session.ended_everywhere")
    assert (event.user_id, event.ip) == (end_user_a.pk, "192.0.2.9")
    assert event.tenant_id == end_user_a.tenant_memberships.get().tenant_id
    assert sign_in("acme.localhost", end_user_a.email).get("/").status_code == 200  # signing in again works


def test_sign_out_everywhere_from_the_console_profile(
    tech_a: User, client_for: Callable[..., Client]
) -> None:
    console = sign_in("testserver", tech_a.email)
    second = client_for(tech_a)  # force_login goes through user_logged_in too: it gets the epoch
    assert second.get(INCIDENTS_PAGE).status_code == 200
    assert "Sign out everywhere" in console.get("/me/profile/").content.decode()
    assert console.get("/me/sign-out-everywhere/").status_code == 405  # a button, never a link
    assert refused_page(console.post("/me/sign-out-everywhere/"))
    assert refused_page(second.get(INCIDENTS_PAGE))
    assert second.get(INCIDENTS_API).status_code == 401
    assert SecurityEvent.objects.filter(verb="session.ended_everywhere", user_id=tech_a.pk).count() == 1


def test_sign_out_everywhere_needs_a_signed_in_user(tech_a: User) -> None:
    response = Client(HTTP_HOST="testserver").post("/me/sign-out-everywhere/")
    assert refused_page(response)
    tech_a.refresh_from_db()
    assert tech_a.session_epoch == 0
    assert not SecurityEvent.objects.filter(verb="session.ended_everywhere").exists()


def test_a_session_without_an_epoch_is_signed_out(tech_a: User, client_for: Callable[..., Client]) -> None:
    """A session made before the epoch existed (or tampered with) is not trusted."""
    client = client_for(tech_a)
    session = client.session
    del session["_session_epoch"]
    session.save()
    assert refused_page(client.get(INCIDENTS_PAGE))


def test_the_service_ends_sessions_made_elsewhere(tech_a: User, client_for: Callable[..., Client]) -> None:
    client = client_for(tech_a)
    assert client.get(INCIDENTS_API).status_code == 200
    assert user_sign_out_everywhere(user=tech_a, ip="192.0.2.1") == 1
    assert client.get(INCIDENTS_API).status_code == 401


def test_a_deactivated_user_is_refused_on_the_next_request(
    tech_a: User, end_user_a: User, client_for: Callable[..., Client]
) -> None:
    console = client_for(tech_a)
    portal = client_for(end_user_a, host="acme.localhost")
    assert console.get(INCIDENTS_PAGE).status_code == 200
    assert console.get(INCIDENTS_API).status_code == 200
    assert portal.get("/").status_code == 200
    User.objects.filter(pk__in=[tech_a.pk, end_user_a.pk]).update(is_active=False)
    assert refused_page(console.get(INCIDENTS_PAGE))
    assert console.get(INCIDENTS_API).status_code == 401
    assert refused_page(portal.get("/"))


def test_removing_a_grant_or_membership_ends_access_on_the_next_request(
    tech_a: User, end_user_a: User, tenant_a: Tenant, client_for: Callable[..., Client]
) -> None:
    console = client_for(tech_a)
    portal = client_for(end_user_a, host="acme.localhost")
    assert console.get(INCIDENTS_PAGE).status_code == 200
    assert portal.get("/").status_code == 200

    TenantGrant.objects.filter(membership__user=tech_a, tenant=tenant_a).delete()
    assert console.get(INCIDENTS_PAGE).status_code == 404
    assert console.get(INCIDENTS_API).status_code == 404

    TenantMembership.objects.filter(user=end_user_a, tenant=tenant_a).delete()
    response = portal.get("/")
    assert response.status_code == 403 and "no access" in response.content.decode()


def test_removing_a_provider_membership_ends_access_on_the_next_request(
    tech_a: User, client_for: Callable[..., Client]
) -> None:
    console = client_for(tech_a)
    assert console.get(INCIDENTS_API).status_code == 200
    ProviderMembership.objects.filter(user=tech_a).delete()
    assert console.get(INCIDENTS_PAGE).status_code == 404
    assert console.get(INCIDENTS_API).status_code == 404


def test_a_role_given_back_works_without_signing_in_again(
    end_user_a: User, tenant_a: Tenant, client_for: Callable[..., Client]
) -> None:
    portal = client_for(end_user_a, host="acme.localhost")
    TenantMembership.objects.filter(user=end_user_a).delete()
    assert portal.get("/").status_code == 403
    tenant_membership_set(user=end_user_a, tenant=tenant_a, role="end_user")
    assert portal.get("/").status_code == 200
